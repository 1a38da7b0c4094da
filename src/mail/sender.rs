//! The background sender: one per process. It leases due mail from the outbox, hands each to
//! the transport, deletes what was sent and reschedules what failed (exponential backoff).
//!
//! Delivery is at least once. Each mail is sent once in normal operation, also with several
//! instances (a lease is taken `FOR UPDATE SKIP LOCKED`); it can go out twice when a process
//! dies (or its database write fails) after the mail server accepted it and before the row was
//! deleted: another sender takes it again when the lease has passed.
use std::sync::Arc;
use std::time::Duration;

use super::Mailer;
use crate::clock::SharedClock;
use crate::store::Store;

/// How long a lease lasts: longer than one SMTP exchange may take (its timeout is 30 s).
const LEASE_SECS: i64 = 60;
/// Mails leased at once.
const BATCH: u64 = 10;
/// How often the outbox is looked at when nothing rang (mail queued by another instance).
const POLL: Duration = Duration::from_secs(1);
/// A mail not sent within this long after it was queued is dropped: its links have expired.
const GIVE_UP_SECS: i64 = 24 * 3600;

/// Seconds before the next try after `attempts` failed ones: 5 s, doubling, at most 15 min.
pub fn backoff_secs(attempts: i32) -> i64 {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    (5_i64 << exp).min(900)
}

/// Sends mail until the process ends.
pub async fn run(store: Store, mailer: Arc<Mailer>, clock: SharedClock) {
    loop {
        let now = clock.now();
        let leased = match store.lease_mail(now, now + LEASE_SECS, BATCH).await {
            Ok(leased) => leased,
            Err(e) => {
                tracing::warn!(error = %e, "mail: cannot read the outbox");
                Vec::new()
            }
        };
        let busy = !leased.is_empty();
        for mail in leased {
            let outcome = mailer.deliver(&mail).await;
            let now = clock.now();
            let written = match outcome {
                Ok(()) => {
                    tracing::info!(mail_id = mail.id, attempts = mail.attempts, "mail sent");
                    store.remove_mail(mail.id).await
                }
                Err(e) if now - mail.created_at >= GIVE_UP_SECS => {
                    tracing::error!(mail_id = mail.id, error = %e, "mail dropped after a day of failures");
                    store.remove_mail(mail.id).await
                }
                Err(e) => {
                    let retry = backoff_secs(mail.attempts);
                    tracing::warn!(mail_id = mail.id, attempts = mail.attempts, retry_in_secs = retry, error = %e, "mail not sent");
                    store.mail_failed(mail.id, now + retry).await
                }
            };
            if let Err(e) = written {
                tracing::warn!(mail_id = mail.id, error = %e, "mail: cannot record the outcome");
            }
        }
        if !busy {
            tokio::select! {
                _ = mailer.bell.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_secs;

    #[test]
    fn retries_back_off_from_five_seconds_to_a_quarter_of_an_hour() {
        let waits: Vec<i64> = (1..=10).map(backoff_secs).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
        assert_eq!(backoff_secs(0), 5);
        assert_eq!(backoff_secs(i32::MAX), 900);
    }
}
