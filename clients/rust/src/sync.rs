//! The background task: one long-poll loop on the revocation feed and one JWKS loop, sharing a
//! tokio task that ends when the last [`Verifier`](crate::Verifier) clone is dropped.
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::FetchError;
use crate::state::Shared;

/// The first retry delay after a failure.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The longest `Retry-After` obeyed.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);
/// While failing, a warning at most this often (the others go to debug).
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The next JWKS attempt after a failed one.
const JWKS_RETRY: Duration = Duration::from_secs(30);

/// Runs both loops until the task is aborted.
pub(crate) async fn run(shared: &Shared, cursor: String) {
    tokio::join!(feed_loop(shared, cursor), jwks_loop(shared));
}

/// Where the feed loop stands.
enum Position {
    /// Following the feed from this cursor.
    Follow(String),
    /// The cursor expired: the snapshot must be loaded again.
    Reload,
}

async fn feed_loop(shared: &Shared, cursor: String) {
    let mut position = Position::Follow(cursor);
    let mut backoff = Backoff::default();
    let mut failing = Failing::default();
    // Whether the cursor followed is a reload's: a 410 for it is not answered by a reload at once.
    let mut just_reloaded = false;
    loop {
        shared.purge_if_due();
        // After a failure the next poll does not wait, so that a recovery shows at once.
        let wait = if failing.since.is_none() {
            shared.config.poll_wait_secs
        } else {
            0
        };
        let result = match &position {
            Position::Follow(cursor) => follow(shared, cursor, wait).await,
            Position::Reload => reload(shared).await,
        };
        match result {
            Ok(cursor) => {
                just_reloaded = matches!(position, Position::Reload);
                position = Position::Follow(cursor);
                shared.synced();
                backoff.reset();
                failing.recovered();
            }
            Err(FetchError::CursorExpired) if matches!(position, Position::Follow(_)) => {
                position = Position::Reload;
                if just_reloaded {
                    let delay = backoff.next();
                    pause(shared, &mut failing, FetchError::CursorExpired, delay).await;
                } else {
                    tracing::info!(
                        "authd can no longer serve the feed's cursor; reloading the snapshot"
                    );
                }
            }
            Err(error) => {
                let delay = match &error {
                    FetchError::Unavailable {
                        retry_after: Some(after),
                        ..
                    } => (*after).min(RETRY_AFTER_MAX),
                    _ => backoff.next(),
                };
                pause(shared, &mut failing, error, delay).await;
            }
        }
    }
}

/// Reports a failure, then waits `delay` before the next attempt.
async fn pause(shared: &Shared, failing: &mut Failing, error: FetchError, delay: Duration) {
    failing.report(&error, delay);
    shared.failed(error);
    tokio::time::sleep(delay).await;
}

/// One poll, held up to `wait` seconds: applies its entries, returns the cursor to follow next.
async fn follow(shared: &Shared, cursor: &str, wait: u64) -> Result<String, FetchError> {
    let page = shared.client.page(Some(cursor), wait).await?;
    shared.apply(&page.entries)?;
    Ok(page.cursor)
}

/// Loads the JWKS and the whole snapshot again and swaps them in only once both are
/// complete, so that the sessions already known stay refused meanwhile. The keys go with the
/// snapshot: after a 410 authd may be another database, and the old database's keys must not
/// keep verifying tokens whose ended sessions just left the set.
async fn reload(shared: &Shared) -> Result<String, FetchError> {
    let keys = shared.client.jwks().await?;
    let (snapshot, cursor) = shared
        .client
        .snapshot(|| shared.now_secs(), shared.config.leeway_secs)
        .await?;
    tracing::info!(
        entries = snapshot.len(),
        keys = keys.len(),
        "revocation snapshot reloaded"
    );
    shared.set_keys(keys);
    shared.replace(snapshot);
    Ok(cursor)
}

async fn jwks_loop(shared: &Shared) {
    let mut next = shared.config.jwks_refresh_interval;
    loop {
        tokio::select! {
            () = shared.jwks_wanted.notified() => {}
            () = tokio::time::sleep(next) => {}
        }
        match shared.client.jwks().await {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "JWKS refetched");
                shared.set_keys(keys);
                next = shared.config.jwks_refresh_interval;
            }
            Err(error) => {
                tracing::warn!(%error, "the JWKS could not be refetched; keeping the keys held");
                next = JWKS_RETRY.min(shared.config.jwks_refresh_interval);
            }
        }
    }
}

/// Capped exponential backoff with jitter (each delay between half and all of its step).
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let step = BACKOFF_START
            .saturating_mul(1 << self.failures.min(16))
            .min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        // A random fraction without a dependency: RandomState is seeded from the OS.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(self.failures);
        let fraction = (hasher.finish() % 1000) as f64 / 1000.0;
        step.mul_f64(0.5 + fraction / 2.0)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Keeps failure logs to one warning a minute while authd stays unreachable.
#[derive(Default)]
struct Failing {
    since: Option<Instant>,
    last_warned: Option<Instant>,
}

impl Failing {
    fn report(&mut self, error: &FetchError, retry_in: Duration) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        if self
            .last_warned
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            self.last_warned = Some(now);
            tracing::warn!(
                %error,
                ?retry_in,
                "the revocation feed failed; enforcing the last known set of ended sessions"
            );
        } else {
            tracing::debug!(%error, ?retry_in, "the revocation feed failed again");
        }
    }

    fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(after = ?since.elapsed(), "the revocation feed answers again");
        }
        self.last_warned = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_to_at_most_5_s_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= BACKOFF_START);
        assert!(delays[3] >= Duration::from_millis(400) && delays[3] <= Duration::from_millis(800));
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX));
        assert!(delays[9] >= BACKOFF_MAX / 2);
        backoff.reset();
        assert!(backoff.next() <= BACKOFF_START);
    }
}
