//! The issuing policy recorded in the database (see [`IssuingPolicy`]): read, and raised by a
//! starting server. Revocation horizons, the pruning's cut-offs and the key overlap follow from
//! it, so they hold whoever computes them: a server, or a command run with other settings or
//! none but `DATABASE_URL`.
use entity::issuing_policy;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::{Store, StoreError};
pub use crate::policy::IssuingPolicy;

/// What a row records: `None` until a server has recorded its settings (the columns are set
/// together).
fn recorded(row: &issuing_policy::Model) -> Option<IssuingPolicy> {
    Some(IssuingPolicy {
        access_ttl_secs: row.access_ttl_secs?,
        leeway_secs: row.leeway_secs?,
        reuse_grace_secs: row.reuse_grace_secs?,
    })
}

/// The policy as recorded, read on `db` (a transaction or the pool); nothing recorded yet:
/// [`IssuingPolicy::UNRECORDED`].
pub(super) async fn read<C: ConnectionTrait>(db: &C) -> Result<IssuingPolicy, StoreError> {
    let row = issuing_policy::Entity::find_by_id(1).one(db).await?;
    Ok(row
        .as_ref()
        .and_then(recorded)
        .unwrap_or(IssuingPolicy::UNRECORDED))
}

impl Store {
    /// The recorded policy (see [`IssuingPolicy::UNRECORDED`] when no server has run yet).
    pub async fn issuing_policy(&self) -> Result<IssuingPolicy, StoreError> {
        read(&self.db).await
    }

    /// Records a server's settings: each recorded value is raised to the server's own when that
    /// is larger, never lowered (`IssuingPolicy::raised_to`; tokens issued under the larger
    /// value may still be live). The row is locked while it is read and written, so two servers
    /// starting at once cannot lower each other's values. Returns the policy now recorded.
    pub async fn record_issuing_policy(
        &self,
        own: IssuingPolicy,
        now: i64,
    ) -> Result<IssuingPolicy, StoreError> {
        use issuing_policy::Column as P;
        let (txn, _gate) = self.begin_write().await?;
        let row = issuing_policy::Entity::find_by_id(1)
            .lock_exclusive()
            .one(&txn)
            .await?;
        let policy = row
            .as_ref()
            .and_then(recorded)
            .map_or(own, |r| r.raised_to(own));
        issuing_policy::Entity::update_many()
            .col_expr(P::AccessTtlSecs, Expr::value(policy.access_ttl_secs))
            .col_expr(P::LeewaySecs, Expr::value(policy.leeway_secs))
            .col_expr(P::ReuseGraceSecs, Expr::value(policy.reuse_grace_secs))
            .col_expr(P::UpdatedAt, Expr::value(now))
            .filter(P::Id.eq(1))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(policy)
    }
}
