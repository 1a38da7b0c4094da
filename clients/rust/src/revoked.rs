//! The revoked-session set: session id -> the time after which no access token of that session
//! can verify. Entries are forgotten once that time plus the leeway has passed, so the set holds
//! at most the revocations of one access-token lifetime.
use std::collections::HashMap;

/// Ended sessions, by id, with their horizon (`expires_at`, Unix seconds).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RevokedMap {
    horizons: HashMap<String, i64>,
}

impl RevokedMap {
    /// Records an ended session. Delivery is at least once: a second insert of the same session
    /// keeps the later horizon.
    pub(crate) fn insert(&mut self, session_id: &str, expires_at: i64) {
        match self.horizons.get_mut(session_id) {
            Some(horizon) => *horizon = (*horizon).max(expires_at),
            None => {
                self.horizons.insert(session_id.to_owned(), expires_at);
            }
        }
    }

    /// Whether `session_id` has ended.
    pub(crate) fn contains(&self, session_id: &str) -> bool {
        self.horizons.contains_key(session_id)
    }

    /// Forgets the sessions whose horizon plus `leeway` is before `now` (both in seconds): no
    /// token of theirs can verify any more.
    pub(crate) fn purge(&mut self, now: i64, leeway: i64) {
        self.horizons
            .retain(|_, horizon| now <= horizon.saturating_add(leeway));
    }

    /// How many sessions are held.
    pub(crate) fn len(&self) -> usize {
        self.horizons.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserting_an_entry_twice_keeps_the_later_horizon() {
        let mut map = RevokedMap::default();
        map.insert("s1", 200);
        map.insert("s1", 100);
        map.insert("s1", 150);
        assert_eq!(map.len(), 1);
        map.purge(180, 0);
        assert!(
            map.contains("s1"),
            "the horizon is 200, not the later-delivered 150"
        );
        map.purge(201, 0);
        assert!(!map.contains("s1"));
    }

    #[test]
    fn an_entry_is_kept_until_its_horizon_plus_the_leeway_has_passed() {
        let mut map = RevokedMap::default();
        map.insert("s1", 100);
        map.insert("s2", 500);
        map.purge(130, 30);
        assert!(map.contains("s1"), "kept at exactly horizon + leeway");
        map.purge(131, 30);
        assert!(!map.contains("s1"));
        assert!(map.contains("s2"));
        assert_eq!(map.len(), 1);
    }
}
