//! In-memory token buckets for login, registration and refresh.
//!
//! Login is throttled three ways: every attempt per client IP, and failed attempts per account
//! from one IP (tight) and per account from all IPs (loose). An attacker guessing one account
//! from one address is stopped after a few tries without touching the real user, who logs in
//! from another address; a distributed attack can only slow the account to the loose rate, and
//! the user's wait is a few seconds (`Retry-After`), never a lockout. Buckets live in each
//! instance's memory: behind a load balancer the effective limits are per instance.
use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::SharedClock;

/// A bucket size and its refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Requests allowed in a burst.
    pub burst: f64,
    /// Tokens added per second.
    pub per_sec: f64,
}

/// The limits authd applies (documented in docs/security.md, "Rate limits").
pub mod limits {
    use super::Limit;
    /// Password checks per client IP (login and password change): 20, then one every 3 s.
    pub const LOGIN_PER_IP: Limit = Limit {
        burst: 20.0,
        per_sec: 1.0 / 3.0,
    };
    /// Failed logins per account and IP: 5, then one a minute.
    pub const LOGIN_FAILURES_PER_ACCOUNT_IP: Limit = Limit {
        burst: 5.0,
        per_sec: 1.0 / 60.0,
    };
    /// Failed logins per known device (one holding a device token of the account): 5, then one
    /// a minute. Such failures never count against the account.
    pub const LOGIN_FAILURES_PER_DEVICE: Limit = Limit {
        burst: 5.0,
        per_sec: 1.0 / 60.0,
    };
    /// Failed logins per account from all IPs, by clients without a device token of it: 20,
    /// then one every 6 s.
    pub const LOGIN_FAILURES_PER_ACCOUNT: Limit = Limit {
        burst: 20.0,
        per_sec: 1.0 / 6.0,
    };
    /// Wrong current passwords per user at `POST /auth/password`: 5, then one a minute.
    pub const PASSWORD_FAILURES_PER_USER: Limit = Limit {
        burst: 5.0,
        per_sec: 1.0 / 60.0,
    };
    /// `login_failed` events recorded per account: 10, then one a minute (the attempts beyond
    /// are still refused and counted in the metrics, just not written to the account's log).
    pub const FAILURE_EVENTS_PER_ACCOUNT: Limit = Limit {
        burst: 10.0,
        per_sec: 1.0 / 60.0,
    };
    /// Registrations per client IP: 20, then one every 30 s.
    pub const REGISTER_PER_IP: Limit = Limit {
        burst: 20.0,
        per_sec: 1.0 / 30.0,
    };
    /// Refused service keys per client IP: 20, then one every 3 s (as password checks per IP).
    pub const SERVICE_KEY_FAILURES_PER_IP: Limit = Limit {
        burst: 20.0,
        per_sec: 1.0 / 3.0,
    };
    /// Refreshes per client IP: 300, then 20 a second.
    pub const REFRESH_PER_IP: Limit = Limit {
        burst: 300.0,
        per_sec: 20.0,
    };
    /// Mail-sending requests (forgot password, verification, email change) per client IP: 10,
    /// then one every 30 s.
    pub const MAIL_PER_IP: Limit = Limit {
        burst: 10.0,
        per_sec: 1.0 / 30.0,
    };
    /// Mails asked for one address or one user: 3, then one every 5 minutes (nobody's inbox
    /// can be flooded through authd).
    pub const MAIL_PER_RECIPIENT: Limit = Limit {
        burst: 3.0,
        per_sec: 1.0 / 300.0,
    };
    /// Spending a mailed token (reset, verify, confirm) per client IP: 20, then one every 3 s
    /// (256-bit tokens cannot be guessed; this bounds argon2 work and noise).
    pub const TOKEN_PER_IP: Limit = Limit {
        burst: 20.0,
        per_sec: 1.0 / 3.0,
    };
}

/// Most keys kept per limiter before full buckets are swept out.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: f64,
}

/// One family of buckets (for example "login attempts per IP").
pub struct Limiter {
    limit: Limit,
    clock: SharedClock,
    buckets: Mutex<HashMap<String, Bucket>>,
    enabled: bool,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter; with `enabled = false` it allows everything.
    pub fn new(limit: Limit, clock: SharedClock, enabled: bool) -> Self {
        Self {
            limit,
            clock,
            buckets: Mutex::new(HashMap::new()),
            enabled,
        }
    }

    fn refill(&self, b: &mut Bucket, now: f64) {
        let elapsed = (now - b.at).max(0.0);
        b.tokens = (b.tokens + elapsed * self.limit.per_sec).min(self.limit.burst);
        b.at = now;
    }

    /// Seconds to wait before one token is available for `key` (0 when there is one now),
    /// without taking it.
    pub fn wait_secs(&self, key: &str) -> u64 {
        if !self.enabled {
            return 0;
        }
        let now = self.clock.now() as f64;
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(b) = map.get_mut(key) else { return 0 };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            0
        } else {
            ((1.0 - b.tokens) / self.limit.per_sec).ceil().max(1.0) as u64
        }
    }

    /// Takes one token for `key`; `Err(retry_after_secs)` when there is none.
    pub fn take(&self, key: &str) -> Result<(), u64> {
        if !self.enabled {
            return Ok(());
        }
        let now = self.clock.now() as f64;
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            self.sweep(&mut map, now);
        }
        let b = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.limit.burst,
            at: now,
        });
        self.refill(b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.limit.per_sec).ceil().max(1.0) as u64)
        }
    }

    /// Drops buckets that have refilled completely (they carry no information).
    fn sweep(&self, map: &mut HashMap<String, Bucket>, now: f64) {
        let limit = self.limit;
        map.retain(|_, b| b.tokens + (now - b.at).max(0.0) * limit.per_sec < limit.burst);
    }

    /// Sweeps full buckets; called periodically.
    pub fn purge(&self) {
        let now = self.clock.now() as f64;
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        self.sweep(&mut map, now);
    }
}

/// Every limiter of the server.
#[derive(Debug)]
pub struct RateLimits {
    pub login_ip: Limiter,
    pub login_account_ip: Limiter,
    pub login_account: Limiter,
    pub login_device: Limiter,
    pub password_user: Limiter,
    pub failure_events: Limiter,
    pub register_ip: Limiter,
    pub refresh_ip: Limiter,
    pub service_key_ip: Limiter,
    pub mail_ip: Limiter,
    pub mail_recipient: Limiter,
    pub token_ip: Limiter,
}

impl RateLimits {
    /// The limiters of [`limits`]; all allow everything when `enabled` is false.
    pub fn new(clock: SharedClock, enabled: bool) -> Self {
        let l = |limit| Limiter::new(limit, clock.clone(), enabled);
        Self {
            login_ip: l(limits::LOGIN_PER_IP),
            login_account_ip: l(limits::LOGIN_FAILURES_PER_ACCOUNT_IP),
            login_account: l(limits::LOGIN_FAILURES_PER_ACCOUNT),
            login_device: l(limits::LOGIN_FAILURES_PER_DEVICE),
            password_user: l(limits::PASSWORD_FAILURES_PER_USER),
            failure_events: l(limits::FAILURE_EVENTS_PER_ACCOUNT),
            register_ip: l(limits::REGISTER_PER_IP),
            refresh_ip: l(limits::REFRESH_PER_IP),
            service_key_ip: l(limits::SERVICE_KEY_FAILURES_PER_IP),
            mail_ip: l(limits::MAIL_PER_IP),
            mail_recipient: l(limits::MAIL_PER_RECIPIENT),
            token_ip: l(limits::TOKEN_PER_IP),
        }
    }

    /// Sweeps every limiter.
    pub fn purge(&self) {
        for l in [
            &self.login_ip,
            &self.login_account_ip,
            &self.login_account,
            &self.login_device,
            &self.password_user,
            &self.failure_events,
            &self.register_ip,
            &self.refresh_ip,
            &self.service_key_ip,
            &self.mail_ip,
            &self.mail_recipient,
            &self.token_ip,
        ] {
            l.purge();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::TestClock;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let clock = TestClock::new();
        let l = Limiter::new(
            Limit {
                burst: 3.0,
                per_sec: 0.5,
            },
            Arc::new(clock.clone()),
            true,
        );
        for _ in 0..3 {
            assert_eq!(l.take("k"), Ok(()));
        }
        assert_eq!(l.take("k"), Err(2));
        assert_eq!(l.take("other"), Ok(()));
        clock.advance(2);
        assert_eq!(l.wait_secs("k"), 0);
        assert_eq!(l.take("k"), Ok(()));
        assert_eq!(l.take("k"), Err(2));
    }

    #[test]
    fn a_disabled_limiter_allows_everything() {
        let l = Limiter::new(
            Limit {
                burst: 1.0,
                per_sec: 0.001,
            },
            Arc::new(TestClock::new()),
            false,
        );
        for _ in 0..100 {
            assert_eq!(l.take("k"), Ok(()));
        }
    }
}
