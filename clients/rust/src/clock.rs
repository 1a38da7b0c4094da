//! The time the verifier judges tokens, staleness and forgotten entries by.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time. The default is [`SystemClock`]; tests pass a clock they can
/// move, so that expiry and staleness are tested without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |s| -s),
    }
}

/// The time `millis` after the Unix epoch.
pub(crate) fn from_unix_millis(millis: i64) -> SystemTime {
    let magnitude = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_round_trip_on_both_sides_of_the_epoch() {
        for millis in [0, 1, 1_700_000_000_123, -1_500] {
            assert_eq!(unix_millis(from_unix_millis(millis)), millis);
        }
        assert_eq!(
            unix_secs(from_unix_millis(1_700_000_000_999)),
            1_700_000_000
        );
    }
}
