//! The lifecycle rules, each in one place: pure functions of their inputs, the time passed in,
//! no I/O. The store, the token code, the HTTP handlers and the CLI all ask here; none of them
//! restates a rule.
//!
//! - sessions: when one is live, when it goes idle, how many a user may keep;
//! - rotation: the grace window and what a rotated token's return means;
//! - revocation: how long an ended session's entry lasts, how long a retired key verifies, and
//!   what the pruning may remove (all from [`IssuingPolicy`], the settings the database records);
//! - logout: which sessions a scope covers, and when the answer may expire the cookie;
//! - emails: how an address is normalised and which ones are refused.

/// Seconds since the unix epoch.
pub type UnixTime = i64;

// --- sessions ------------------------------------------------------------------------------

/// When a session ends unless refreshed: its idle deadline or its absolute end, whichever
/// comes first.
pub fn session_end(idle_expires_at: UnixTime, absolute_expires_at: UnixTime) -> UnixTime {
    idle_expires_at.min(absolute_expires_at)
}

/// Is a session with these deadlines live at `now`?
pub fn is_live(idle_expires_at: UnixTime, absolute_expires_at: UnixTime, now: UnixTime) -> bool {
    now < session_end(idle_expires_at, absolute_expires_at)
}

/// The idle deadline a login or a rotation at `now` sets: `idle_secs` on, never past the
/// session's absolute end.
pub fn idle_deadline(now: UnixTime, idle_secs: i64, absolute_expires_at: UnixTime) -> UnixTime {
    now.saturating_add(idle_secs).min(absolute_expires_at)
}

// --- rotation ------------------------------------------------------------------------------

/// The most rotations a replayed token may be behind its session's current token. Tabs
/// refreshing at once put it a few behind; a token many rotations behind is no lost response.
pub const MAX_REPLAY_HOPS: usize = 16;

/// What is known about a presented token that was already rotated.
#[derive(Debug, Clone, Copy)]
pub struct Rotated {
    /// When it was rotated.
    pub used_at: UnixTime,
    /// How many sealed links lead from it to its session's current token; `None` when the
    /// chain is broken (pruned) or longer than [`MAX_REPLAY_HOPS`].
    pub hops_to_current: Option<usize>,
}

/// What to do with a refresh token that was already rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Answer with the session's current token (a lost response, or tabs refreshing at once).
    Replay,
    /// Reuse: the token was stolen, or its holder is out of sync. End the whole session.
    RevokeFamily,
}

/// Is `now` within the grace window of a token rotated at `used_at`? The window starts at the
/// first rotation and never slides.
pub fn in_grace_window(used_at: UnixTime, now: UnixTime, grace_secs: i64) -> bool {
    grace_secs > 0 && now < used_at.saturating_add(grace_secs)
}

/// The reuse policy: within the grace window a rotated token is answered with its session's
/// current token: its own successor when that is unused, otherwise the newest token of the
/// chain, so that a late request from one tab cannot end a session another tab has already
/// moved on. Any other presentation is reuse.
pub fn decide(rotated: Rotated, now: UnixTime, grace_secs: i64) -> Decision {
    let reachable = rotated
        .hops_to_current
        .is_some_and(|h| (1..=MAX_REPLAY_HOPS).contains(&h));
    if in_grace_window(rotated.used_at, now, grace_secs) && reachable {
        Decision::Replay
    } else {
        Decision::RevokeFamily
    }
}

/// Is a rotated token presented at `now` (at logout, say) reuse rather than a racing tab?
pub fn is_reuse(used_at: Option<UnixTime>, now: UnixTime, grace_secs: i64) -> bool {
    used_at.is_some_and(|u| !in_grace_window(u, now, grace_secs))
}

// --- revocation horizons and pruning -------------------------------------------------------

/// The largest access-token lifetime, leeway and grace window any server of one database has
/// run with, as the database records them. Revocation horizons, pruning cut-offs and the key
/// overlap follow from it, whoever computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuingPolicy {
    pub access_ttl_secs: i64,
    pub leeway_secs: i64,
    pub reuse_grace_secs: i64,
}

impl IssuingPolicy {
    /// Until a server has recorded its settings: the largest values a server accepts (fail
    /// closed: entries and keys are kept longest).
    pub const UNRECORDED: Self = Self {
        access_ttl_secs: 86_400,
        leeway_secs: 300,
        reuse_grace_secs: 300,
    };

    /// The recorded policy after a server with `own` settings starts: each value raised to the
    /// server's own, never lowered (tokens issued under the larger value may still be live).
    pub fn raised_to(self, own: Self) -> Self {
        Self {
            access_ttl_secs: self.access_ttl_secs.max(own.access_ttl_secs),
            leeway_secs: self.leeway_secs.max(own.leeway_secs),
            reuse_grace_secs: self.reuse_grace_secs.max(own.reuse_grace_secs),
        }
    }

    /// How long a retired key keeps verifying after it stopped signing, and how long any access
    /// token can verify after it was issued.
    pub fn key_overlap_secs(&self) -> i64 {
        self.access_ttl_secs + self.leeway_secs
    }

    /// Until when an access token issued for a session up to `now` may still verify: how long
    /// the revoked-set entry of a session ended at `now` must last.
    pub fn revocation_horizon(&self, now: UnixTime) -> UnixTime {
        now + self.key_overlap_secs()
    }

    /// Sealed successors of tokens rotated at or before this may be pruned: their grace window
    /// has closed on every server.
    pub fn sealed_successor_cutoff(&self, now: UnixTime) -> UnixTime {
        now - self.reuse_grace_secs
    }

    /// Keys retired at or before this may be pruned: nothing they signed verifies any more.
    pub fn retired_key_cutoff(&self, now: UnixTime) -> UnixTime {
        now - self.key_overlap_secs()
    }
}

/// How long security events are kept, in seconds (90 days).
pub const EVENT_RETENTION_SECS: i64 = 90 * 24 * 3600;

/// Events at or before this may be pruned.
pub fn event_cutoff(now: UnixTime) -> UnixTime {
    now - EVENT_RETENTION_SECS
}

// --- logout --------------------------------------------------------------------------------

/// Which sessions a logout ends, seen from the session that asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogoutScope {
    /// This session.
    #[default]
    Local,
    /// Every other session of the user.
    Others,
    /// Every session of the user.
    Global,
}

impl LogoutScope {
    /// The scope a logout gets: a rotated refresh token proves less than the current one (or a
    /// live access token) and ends only its own session.
    pub fn granted(self, by_current_credential: bool) -> Self {
        if by_current_credential {
            self
        } else {
            Self::Local
        }
    }

    /// Does it end the asking session?
    pub fn ends_own(self) -> bool {
        matches!(self, Self::Local | Self::Global)
    }

    /// Does it end the user's other sessions?
    pub fn ends_others(self) -> bool {
        matches!(self, Self::Others | Self::Global)
    }
}

/// May a logout answer expire the refresh cookie? Only a `204` (an error ends nothing, and
/// dropping the cookie of a session that is still alive would leave it unkillable from the
/// browser), never to a request from a foreign page (browsers apply a `Set-Cookie` even there,
/// so obeying would let any page log the browser out), and not when a cookie that was left
/// unused still names a live session.
pub fn logout_expires_cookie(from_foreign_page: bool, unused_cookie_still_live: bool) -> bool {
    !from_foreign_page && !unused_cookie_still_live
}

// --- emails --------------------------------------------------------------------------------

/// Longest accepted email, in bytes (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Normalises an email and checks it is plausible; `None` when it is not. Every entry point
/// (registration, login, the admin API, the command line) goes through it, so one address is
/// one account however it is typed:
///
/// - trimmed, Unicode NFKC (full-width `ｊｏｈｎ` is `john`), lower-cased;
/// - the domain in its IDNA (UTS #46) ASCII form: `Bücher.example` is `xn--bcher-kva.example`,
///   and a look-alike domain (`gıthub.com` with a dotless i) is stored and shown as what it is,
///   `xn--gthub-n4a.com`, never as something that reads like `github.com`;
/// - the local part must then be ASCII: internationalised local parts are refused, because
///   they are where look-alikes of a local part hide (`johı` beside `john`) and few mail
///   systems deliver them.
pub fn normalize_email(raw: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let forbidden =
        |c: char| c.is_whitespace() || c.is_control() || is_invisible(c) || c == '<' || c == '>';
    // Before normalising, which would quietly drop some of them (IDNA ignores a soft hyphen).
    let trimmed = raw.trim();
    if trimmed.chars().any(forbidden) {
        return None;
    }
    let folded: String = trimmed.nfkc().collect::<String>().to_lowercase();
    let (local, domain) = folded.split_once('@')?;
    if !local.is_ascii() || domain.contains('@') {
        return None;
    }
    let domain = idna::domain_to_ascii(domain).ok()?;
    let email = format!("{local}@{domain}");
    let ok = email.len() <= MAX_EMAIL_LEN
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(forbidden);
    ok.then_some(email)
}

/// A search prefix for addresses as [`normalize_email`] stores them: a whole address is
/// normalised as one; part of one is trimmed, NFKC-folded and lower-cased (a partly typed
/// Unicode domain has no ASCII form to match: type it whole, or in its `xn--` form).
pub fn normalize_email_prefix(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    normalize_email(raw).unwrap_or_else(|| raw.trim().nfkc().collect::<String>().to_lowercase())
}

/// The key a login (or a request for mail) is throttled on: the account's address as
/// [`normalize_email`] makes it, so every way of typing one address (`ｊｏｈｎ@`, `JOHN@`,
/// `john@Bücher.example`) shares one allowance; an address that does not normalise is keyed as
/// typed, trimmed and lower-cased. Valid or not, existing or not, the same rule (so a `429`
/// says nothing about accounts).
pub fn throttle_key(raw_email: &str) -> String {
    normalize_email(raw_email).unwrap_or_else(|| raw_email.trim().to_lowercase())
}

/// Characters that change how an address is displayed without being seen: bidirectional
/// controls (`a\u{202e}moc.elpmaxe@b` reads as another address in a log or an admin's list),
/// zero-width characters and the soft hyphen (two addresses that look the same).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_emails_are_one_account_or_refused_or_shown_as_what_they_are() {
        let n = |s: &str| normalize_email(s);
        // One account: width, case and spaces do not make another address.
        assert_eq!(
            n(" ｊｏｈｎ@Example.com ").as_deref(),
            Some("john@example.com")
        );
        assert_eq!(n("JOHN@GITHUB.COM").as_deref(), Some("john@github.com"));
        assert_eq!(
            n("john@ｇｉｔｈｕｂ.ｃｏｍ").as_deref(),
            Some("john@github.com")
        );
        // Refused: a local part that is not ASCII once normalised.
        assert_eq!(n("johı@github.com"), None);
        assert_eq!(n("jöhn@example.com"), None);
        // Another domain, shown in the form that cannot pass for github.com.
        assert_eq!(
            n("john@gıthub.com").as_deref(),
            Some("john@xn--gthub-n4a.com")
        );
        assert_eq!(
            n("a@Bücher.example").as_deref(),
            Some("a@xn--bcher-kva.example")
        );
        // Still refused: what was refused before.
        for bad in [
            "a@b",
            "@b.co",
            "a@.b.co",
            "a@b..co",
            "a b@c.co",
            "a@b@c.co",
            "a\u{202e}@b.co",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
        assert_eq!(n("a@xn--.co"), None, "an invalid IDNA label");
    }

    #[test]
    fn a_session_lives_until_the_earlier_of_its_idle_and_absolute_ends() {
        assert_eq!(session_end(100, 200), 100);
        assert_eq!(session_end(300, 200), 200);
        assert!(is_live(100, 200, 99));
        assert!(!is_live(100, 200, 100));
        assert!(!is_live(300, 200, 200));
    }

    #[test]
    fn the_idle_deadline_never_passes_the_absolute_end() {
        assert_eq!(idle_deadline(100, 50, 1000), 150);
        assert_eq!(idle_deadline(100, 5000, 1000), 1000);
        assert_eq!(idle_deadline(i64::MAX - 1, 10, i64::MAX), i64::MAX);
    }

    #[test]
    fn the_window_starts_at_the_first_rotation_and_needs_a_chain_to_the_current_token() {
        let r = Rotated {
            used_at: 100,
            hops_to_current: Some(1),
        };
        assert_eq!(decide(r, 109, 10), Decision::Replay);
        assert_eq!(decide(r, 110, 10), Decision::RevokeFamily);
        assert_eq!(decide(r, 100, 0), Decision::RevokeFamily);
        let behind = |h| Rotated {
            hops_to_current: h,
            ..r
        };
        assert_eq!(decide(behind(Some(3)), 101, 10), Decision::Replay);
        assert_eq!(
            decide(behind(Some(MAX_REPLAY_HOPS)), 101, 10),
            Decision::Replay
        );
        assert_eq!(
            decide(behind(Some(MAX_REPLAY_HOPS + 1)), 101, 10),
            Decision::RevokeFamily
        );
        assert_eq!(decide(behind(None), 101, 10), Decision::RevokeFamily);
        assert_eq!(decide(behind(Some(0)), 101, 10), Decision::RevokeFamily);
    }

    #[test]
    fn a_rotated_token_is_reuse_only_once_its_window_has_closed() {
        assert!(!is_reuse(None, 1000, 10), "a current token is no reuse");
        assert!(!is_reuse(Some(995), 1000, 10));
        assert!(is_reuse(Some(990), 1000, 10));
        assert!(is_reuse(Some(999), 1000, 0), "grace 0: at once");
    }

    #[test]
    fn the_recorded_policy_only_grows_and_fixes_every_horizon() {
        let small = IssuingPolicy {
            access_ttl_secs: 60,
            leeway_secs: 5,
            reuse_grace_secs: 10,
        };
        let big = IssuingPolicy {
            access_ttl_secs: 3600,
            leeway_secs: 0,
            reuse_grace_secs: 60,
        };
        let p = small.raised_to(big);
        assert_eq!(
            p,
            IssuingPolicy {
                access_ttl_secs: 3600,
                leeway_secs: 5,
                reuse_grace_secs: 60
            }
        );
        assert_eq!(p.raised_to(small), p, "a smaller server lowers nothing");
        assert_eq!(p.revocation_horizon(1000), 1000 + 3605);
        assert_eq!(p.retired_key_cutoff(10_000), 10_000 - 3605);
        assert_eq!(p.sealed_successor_cutoff(1000), 940);
        assert!(IssuingPolicy::UNRECORDED.key_overlap_secs() >= p.key_overlap_secs());
    }

    #[test]
    fn a_stale_credential_logs_out_only_its_own_session() {
        assert_eq!(LogoutScope::Global.granted(true), LogoutScope::Global);
        assert_eq!(LogoutScope::Global.granted(false), LogoutScope::Local);
        assert_eq!(LogoutScope::Others.granted(false), LogoutScope::Local);
        assert!(LogoutScope::Local.ends_own() && !LogoutScope::Local.ends_others());
        assert!(!LogoutScope::Others.ends_own() && LogoutScope::Others.ends_others());
        assert!(LogoutScope::Global.ends_own() && LogoutScope::Global.ends_others());
    }

    #[test]
    fn the_cookie_is_expired_only_when_nothing_alive_depends_on_it() {
        assert!(logout_expires_cookie(false, false));
        assert!(!logout_expires_cookie(true, false), "a foreign page");
        assert!(!logout_expires_cookie(false, true), "an unused live cookie");
    }

    #[test]
    fn emails_are_normalised_once_and_invisible_characters_refused() {
        assert_eq!(
            normalize_email("  Ada@Example.COM "),
            Some("ada@example.com".into())
        );
        for bad in [
            "ada",
            "@example.com",
            "ada@example",
            "ada@.example.com",
            "a\u{202e}b@example.com",
            "pg\u{200b}@example.com",
            "ada@exa mple.com",
            "<ada>@example.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
        assert_eq!(throttle_key(" ADA@x "), "ada@x");
        // Every spelling of one account's address is one key, as it is one account.
        let key = throttle_key("john@example.com");
        for typed in [
            "ｊｏｈｎ@ｅｘａｍｐｌｅ.ｃｏｍ",
            " JOHN@Example.COM ",
            "john@EXAMPLE.com",
        ] {
            assert_eq!(throttle_key(typed), key, "{typed}");
        }
        assert_eq!(
            throttle_key("j@Bücher.example"),
            throttle_key("j@xn--bcher-kva.example")
        );
    }
}
