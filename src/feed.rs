//! The revocation feed's service: cursors, the wake-up of held requests, and the caps on them.
//!
//! A cursor is a [`FeedPosition`] signed with a key of the database (HMAC-SHA256, shared by
//! every instance through the `secrets` table): a cursor from another database, a mangled one
//! or garbage does not verify, and the client reloads the snapshot (410 `cursor_expired`).
//! Pruning never makes a cursor unservable: it removes only entries whose horizon has passed,
//! which a client would forget anyway.
//!
//! A held request waits on the bell, not on the database: the bell rings when this instance
//! ends a session (after the commit) and when the sync loop reads entries another instance
//! wrote (at once on Postgres, where a `NOTIFY` wakes the sync loop; within one sync interval
//! otherwise).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::watch;

use crate::store::feed::{FeedPosition, MAX_GAPS};

/// Longest cursor accepted (a position with every gap it may carry fits well within it).
const MAX_CURSOR_LEN: usize = 8192;

/// Why a request may not be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Too many held requests in all.
    Total,
    /// Too many held requests of this key.
    PerKey,
}

/// The caps on held requests.
#[derive(Debug, Clone, Copy)]
pub struct FeedLimits {
    pub max_waiters: usize,
    pub max_waiters_per_key: usize,
}

/// The feed's shared state. Cheap to share (`Arc` it).
pub struct Feed {
    key: hmac::Key,
    bell: watch::Sender<u64>,
    closing: watch::Sender<bool>,
    waiters: Mutex<Waiters>,
    limits: FeedLimits,
}

#[derive(Default)]
struct Waiters {
    total: usize,
    per_key: HashMap<String, usize>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A held request's place under the caps; released when dropped.
pub struct Held {
    feed: Arc<Feed>,
    key_id: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut w = self.feed.waiters.lock().unwrap_or_else(|e| e.into_inner());
        w.total = w.total.saturating_sub(1);
        if let Some(n) = w.per_key.get_mut(&self.key_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                w.per_key.remove(&self.key_id);
            }
        }
    }
}

impl Feed {
    /// A feed whose cursors are signed with `cursor_key`.
    pub fn new(cursor_key: &[u8], limits: FeedLimits) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, cursor_key),
            bell: watch::channel(0).0,
            closing: watch::channel(false).0,
            waiters: Mutex::default(),
            limits,
        }
    }

    /// New entries may exist: wakes every held request.
    pub fn ring(&self) {
        self.bell.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The bell, to wait on. Subscribe before reading, so that a ring between the read and the
    /// wait is not missed.
    pub fn bell(&self) -> watch::Receiver<u64> {
        self.bell.subscribe()
    }

    /// The server is stopping: held requests answer at once.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once the server is stopping.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Takes a place for a held request of key `key_id`, or says which cap is full.
    pub fn hold(self: &Arc<Self>, key_id: &str) -> Result<Held, Busy> {
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if w.total >= self.limits.max_waiters {
            return Err(Busy::Total);
        }
        let mine = w.per_key.get(key_id).copied().unwrap_or(0);
        if mine >= self.limits.max_waiters_per_key {
            return Err(Busy::PerKey);
        }
        w.total += 1;
        w.per_key.insert(key_id.to_owned(), mine + 1);
        Ok(Held {
            feed: self.clone(),
            key_id: key_id.to_owned(),
        })
    }

    /// Requests held right now.
    pub fn held(&self) -> usize {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// The cursor a client sends back to continue after `pos`.
    pub fn encode(&self, pos: &FeedPosition) -> String {
        let payload = serde_json::to_vec(pos).unwrap_or_default();
        let tag = hmac::sign(&self.key, &payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The position a cursor stands for; `None` for anything this database did not sign.
    pub fn decode(&self, cursor: &str) -> Option<FeedPosition> {
        if cursor.len() > MAX_CURSOR_LEN {
            return None;
        }
        let (payload, tag) = cursor.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, &payload, &tag).ok()?;
        let pos: FeedPosition = serde_json::from_slice(&payload).ok()?;
        let sane = pos.high >= 0
            && pos.gaps.len() <= 2 * MAX_GAPS
            && pos
                .gaps
                .iter()
                .all(|g| 0 < g.from && g.from <= g.to && g.to < pos.high);
        sane.then_some(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::feed::Gap;

    fn feed() -> Arc<Feed> {
        Arc::new(Feed::new(
            b"0123456789abcdef0123456789abcdef",
            FeedLimits {
                max_waiters: 3,
                max_waiters_per_key: 2,
            },
        ))
    }

    #[test]
    fn a_cursor_reads_back_only_where_it_was_signed() {
        let f = feed();
        let pos = FeedPosition {
            high: 42,
            gaps: vec![Gap {
                from: 40,
                to: 41,
                xmax: 7,
            }],
        };
        let cursor = f.encode(&pos);
        assert_eq!(f.decode(&cursor), Some(pos));
        let other = Feed::new(
            b"another database's key.........!",
            FeedLimits {
                max_waiters: 1,
                max_waiters_per_key: 1,
            },
        );
        assert_eq!(other.decode(&cursor), None);
        let (payload, tag) = cursor.split_once('.').unwrap();
        let mut forged = URL_SAFE_NO_PAD.decode(payload).unwrap();
        forged[10] ^= 1;
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(forged));
        assert_eq!(f.decode(&forged), None);
        for garbage in ["", ".", "abc", "a.b", &"x".repeat(10_000)] {
            assert_eq!(f.decode(garbage), None, "{garbage:.20}");
        }
    }

    #[test]
    fn held_requests_are_capped_per_key_and_in_all_and_released_when_dropped() {
        let f = feed();
        let a1 = f.hold("a").unwrap();
        let _a2 = f.hold("a").unwrap();
        assert!(matches!(f.hold("a"), Err(Busy::PerKey)));
        let _b1 = f.hold("b").unwrap();
        assert!(matches!(f.hold("c"), Err(Busy::Total)));
        assert_eq!(f.held(), 3);
        drop(a1);
        assert_eq!(f.held(), 2);
        let _a3 = f.hold("a").unwrap();
    }
}
