//! On Postgres, the other instances' announcements of new revocations (`NOTIFY` on
//! [`CHANNEL`](super::feed::CHANNEL), sent with each ending transaction's commit): each one
//! wakes the sync loop at once, so an end on one instance reaches the held feed requests of
//! every other in milliseconds. The sync loop's own polling stays the safety net: a lost
//! connection loses announcements, never entries.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseBackend;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::Notify;

use super::Store;
use super::feed::CHANNEL;

/// A task that notifies `kick` on every announcement (and after every reconnection); `None`
/// on SQLite, where every writer is this process or the CLI and the polling suffices, and
/// behind a transaction-mode pooler with no direct URL (a `LISTEN` there is lost with the
/// transaction that sent it, so only the polling is left).
pub fn announcements(store: &Store, kick: Arc<Notify>) -> Option<impl Future<Output = ()> + use<>> {
    if store.backend() != DatabaseBackend::Postgres {
        return None;
    }
    let via = match (store.is_transaction_pooled(), store.direct_url()) {
        (_, Some(url)) => Via::Url(url.to_owned()),
        (false, None) => Via::Pool(store.connection().get_postgres_connection_pool().clone()),
        (true, None) => return None,
    };
    Some(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match listen(&via, &kick).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "listening for revocations failed; polling meanwhile");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
}

/// Where the listening connection comes from.
enum Via {
    /// A connection of its own, opened with the pool's options.
    Pool(sea_orm::sqlx::PgPool),
    /// `AUTHD_DATABASE_DIRECT_URL`.
    Url(String),
}

/// Listens until the connection is lost (`Ok`) or cannot be had (`Err`).
async fn listen(via: &Via, kick: &Notify) -> Result<(), sea_orm::sqlx::Error> {
    let mut listener = match via {
        Via::Pool(pool) => PgListener::connect_with(pool).await?,
        Via::Url(url) => PgListener::connect(url).await?,
    };
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    // Whatever was announced before this point, the sync catches up on now.
    kick.notify_one();
    while listener.try_recv().await?.is_some() {
        kick.notify_one();
    }
    kick.notify_one();
    Ok(())
}
