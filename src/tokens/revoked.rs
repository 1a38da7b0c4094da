//! The sessions that ended while their access tokens may still be unexpired. Every access-token
//! check reads this set, in memory; it is loaded from the database at start and kept fresh by
//! polling, and entries drop out once the tokens they cover have expired.
use std::collections::HashMap;
use std::sync::RwLock;

/// session id -> the time after which none of its access tokens can verify anyway.
#[derive(Debug, Default)]
pub struct RevokedSet {
    inner: RwLock<HashMap<String, i64>>,
}

impl RevokedSet {
    /// Marks a session as ended until `expires_at` (unix seconds).
    pub fn insert(&self, session_id: &str, expires_at: i64) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(session_id.to_owned()).or_insert(expires_at);
        *entry = (*entry).max(expires_at);
    }

    /// Has this session ended?
    pub fn contains(&self, session_id: &str) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(session_id)
    }

    /// Drops the entries whose tokens have all expired by `now`.
    pub fn purge(&self, now: i64) -> usize {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|_, expires_at| *expires_at > now);
        before - map.len()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Is the set empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
