//! What the verifier and its background task share: the key set, the revoked-session set, and
//! when authd last confirmed them.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::client::{self, AuthdClient, Entry};
use crate::clock::{self, Clock};
use crate::error::FetchError;
use crate::keys::KeySet;
use crate::revoked::RevokedMap;

/// The longest the revoked set goes unpurged while the feed answers.
const PURGE_EVERY_MS: i64 = 1000;

/// The settings fixed at build.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) base_url: String,
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) leeway_secs: i64,
    pub(crate) max_staleness: Option<Duration>,
    /// The long-poll's `wait`, in seconds (1..=30).
    pub(crate) poll_wait_secs: u64,
    /// The least time between two JWKS refetches asked for by unknown `kid`s.
    pub(crate) jwks_refetch_interval: Duration,
    /// How often the JWKS is refetched anyway, so that retired keys leave.
    pub(crate) jwks_refresh_interval: Duration,
}

/// The state behind every clone of a [`Verifier`](crate::Verifier) and its background task.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) client: AuthdClient,
    clock: Arc<dyn Clock>,
    keys: RwLock<Arc<KeySet>>,
    revoked: RwLock<RevokedMap>,
    /// When the feed last answered successfully (Unix milliseconds, by `clock`).
    last_sync_ms: AtomicI64,
    last_error: Mutex<Option<FetchError>>,
    last_purge_ms: AtomicI64,
    /// When an unknown `kid` last asked for a JWKS refetch (Unix milliseconds, by `clock`).
    last_refetch_ms: AtomicI64,
    /// Wakes the JWKS loop for a refetch.
    pub(crate) jwks_wanted: Notify,
}

impl Shared {
    /// The state after a successful build: `keys` and the snapshot `revoked`, synced now.
    pub(crate) fn new(
        config: Config,
        client: AuthdClient,
        clock: Arc<dyn Clock>,
        keys: KeySet,
        revoked: RevokedMap,
    ) -> Self {
        let now = clock::unix_millis(clock.now());
        Self {
            config,
            client,
            clock,
            keys: RwLock::new(Arc::new(keys)),
            revoked: RwLock::new(revoked),
            last_sync_ms: AtomicI64::new(now),
            last_error: Mutex::new(None),
            last_purge_ms: AtomicI64::new(now),
            last_refetch_ms: AtomicI64::new(i64::MIN),
            jwks_wanted: Notify::new(),
        }
    }

    /// The current time by the configured clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The current time in Unix seconds.
    pub(crate) fn now_secs(&self) -> i64 {
        clock::unix_secs(self.now())
    }

    /// The current key set.
    pub(crate) fn keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the key set.
    pub(crate) fn set_keys(&self, keys: KeySet) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }

    /// Whether `session_id` has ended.
    pub(crate) fn is_revoked(&self, session_id: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(session_id)
    }

    /// How many ended sessions are held.
    pub(crate) fn revoked_len(&self) -> usize {
        self.revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Adds a feed page's entries (all or none).
    pub(crate) fn apply(&self, entries: &[Entry]) -> Result<(), FetchError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut map = self.revoked.write().unwrap_or_else(PoisonError::into_inner);
        client::insert_all(&mut map, entries)
    }

    /// Swaps in a freshly loaded snapshot.
    pub(crate) fn replace(&self, snapshot: RevokedMap) {
        *self.revoked.write().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    /// Forgets the entries past their horizon plus the leeway, at most once a second (and at
    /// once if the clock went back).
    pub(crate) fn purge_if_due(&self) {
        let now = clock::unix_millis(self.now());
        let last = self.last_purge_ms.load(Ordering::Relaxed);
        if (last..last.saturating_add(PURGE_EVERY_MS)).contains(&now) {
            return;
        }
        self.last_purge_ms.store(now, Ordering::Relaxed);
        self.revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .purge(now.div_euclid(1000), self.config.leeway_secs);
    }

    /// Records a successful answer of the feed.
    pub(crate) fn synced(&self) {
        self.last_sync_ms
            .store(clock::unix_millis(self.now()), Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Records a failed request to the feed.
    pub(crate) fn failed(&self, error: FetchError) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    /// The latest failure since the last success.
    pub(crate) fn last_error(&self) -> Option<FetchError> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// When the feed last answered successfully.
    pub(crate) fn last_sync(&self) -> SystemTime {
        clock::from_unix_millis(self.last_sync_ms.load(Ordering::Relaxed))
    }

    /// The time since the feed last answered successfully (zero if the clock went back).
    pub(crate) fn staleness(&self) -> Duration {
        self.now()
            .duration_since(self.last_sync())
            .unwrap_or(Duration::ZERO)
    }

    /// Whether `max_staleness` is set and exceeded.
    pub(crate) fn is_stale(&self) -> bool {
        self.config
            .max_staleness
            .is_some_and(|max| self.staleness() > max)
    }

    /// Asks the background task to refetch the JWKS, unless an unknown `kid` already did within
    /// the refetch interval. Never blocks.
    pub(crate) fn want_jwks(&self) {
        let now = clock::unix_millis(self.now());
        let interval =
            i64::try_from(self.config.jwks_refetch_interval.as_millis()).unwrap_or(i64::MAX);
        let last = self.last_refetch_ms.load(Ordering::Relaxed);
        // A clock that went back does not hold refetches off until it catches up.
        if (last..last.saturating_add(interval)).contains(&now) {
            return;
        }
        if self
            .last_refetch_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.jwks_wanted.notify_one();
        }
    }
}
