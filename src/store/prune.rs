//! Removes what can no longer matter: expired sessions (their refresh tokens go with them) in
//! batches of 1,000, each its own transaction, so no transaction holds the write lock for long;
//! then in one transaction revoked-list entries whose access tokens have all expired, sealed
//! successors past the grace window, security events past their retention, retired keys
//! past their overlap (cut-offs from the recorded issuing policy, `crate::policy`), and expired
//! email tokens.
use entity::{
    email_tokens, refresh_tokens, revoked_sessions, security_events, sessions, signing_keys,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Store, StoreError};

/// Rows deleted per statement.
const BATCH: u64 = 1000;

/// What one pruning pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: u64,
    pub revocations: u64,
    pub sealed_successors: u64,
    pub events: u64,
    pub keys: u64,
    pub email_tokens: u64,
}

impl Store {
    /// One pruning pass at `now`. The grace window and the key overlap come from the recorded
    /// issuing policy, never from the caller's settings: a prune run from any shell keeps every
    /// sealed successor and retired key a running server may still need.
    pub async fn prune(&self, now: i64) -> Result<Pruned, StoreError> {
        self.prune_with_progress(now, |_| {}).await
    }

    /// [`prune`](Self::prune), calling `progress` with the running totals after each batch
    /// (a large backlog of expired sessions is deleted 1000 at a time).
    pub async fn prune_with_progress(
        &self,
        now: i64,
        progress: impl Fn(&Pruned),
    ) -> Result<Pruned, StoreError> {
        let policy = self.issuing_policy().await?;
        let mut out = Pruned::default();
        loop {
            let ids: Vec<String> = sessions::Entity::find()
                .filter(
                    Condition::any()
                        .add(sessions::Column::IdleExpiresAt.lte(now))
                        .add(sessions::Column::AbsoluteExpiresAt.lte(now)),
                )
                .select_only()
                .column(sessions::Column::Id)
                .limit(BATCH)
                .into_tuple()
                .all(&self.db)
                .await?;
            if ids.is_empty() {
                break;
            }
            let (txn, _gate) = self.begin_write().await?;
            // Locked in id order first, as rotations and session endings lock them: a delete
            // takes its row locks in whatever order it meets the rows, and two writers that
            // lock the same sessions in different orders can deadlock.
            let _: Vec<String> = sessions::Entity::find()
                .filter(sessions::Column::Id.is_in(ids.clone()))
                .select_only()
                .column(sessions::Column::Id)
                .order_by_asc(sessions::Column::Id)
                .lock_exclusive()
                .into_tuple()
                .all(&txn)
                .await?;
            let n = sessions::Entity::delete_many()
                .filter(sessions::Column::Id.is_in(ids))
                .filter(
                    Condition::any()
                        .add(sessions::Column::IdleExpiresAt.lte(now))
                        .add(sessions::Column::AbsoluteExpiresAt.lte(now)),
                )
                .exec(&txn)
                .await?
                .rows_affected;
            txn.commit().await?;
            out.sessions += n;
            progress(&out);
            if n == 0 {
                break;
            }
        }
        // The rest in one write transaction (through this process's write queue on SQLite).
        let (txn, _gate) = self.begin_write().await?;
        out.revocations = revoked_sessions::Entity::delete_many()
            .filter(revoked_sessions::Column::ExpiresAt.lte(now))
            .exec(&txn)
            .await?
            .rows_affected;
        out.sealed_successors = refresh_tokens::Entity::update_many()
            .col_expr(
                refresh_tokens::Column::SuccessorSealed,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .filter(refresh_tokens::Column::SuccessorSealed.is_not_null())
            .filter(refresh_tokens::Column::UsedAt.lte(policy.sealed_successor_cutoff(now)))
            .exec(&txn)
            .await?
            .rows_affected;
        out.events = security_events::Entity::delete_many()
            .filter(security_events::Column::At.lte(crate::policy::event_cutoff(now)))
            .exec(&txn)
            .await?
            .rows_affected;
        out.keys = signing_keys::Entity::delete_many()
            .filter(signing_keys::Column::RetiredAt.lte(policy.retired_key_cutoff(now)))
            .exec(&txn)
            .await?
            .rows_affected;
        out.email_tokens = email_tokens::Entity::delete_many()
            .filter(email_tokens::Column::ExpiresAt.lte(now))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(out)
    }
}
