//! The issuing policy recorded in the database (see [`IssuingPolicy`]): read, and raised by a
//! starting server. Revocation horizons, the pruning's cut-offs and the key overlap follow from
//! it, so they hold whoever computes them: a server, or a command run with other settings or
//! none but `DATABASE_URL`.
use entity::issuing_policy;
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{Store, StoreError};
pub use crate::policy::IssuingPolicy;

/// Reads a row into the policy (empty values: [`IssuingPolicy::UNRECORDED`]).
fn from_row(row: Option<issuing_policy::Model>) -> IssuingPolicy {
    let u = IssuingPolicy::UNRECORDED;
    let row = row.unwrap_or(issuing_policy::Model {
        id: 1,
        access_ttl_secs: None,
        leeway_secs: None,
        reuse_grace_secs: None,
        updated_at: None,
    });
    IssuingPolicy {
        access_ttl_secs: row.access_ttl_secs.unwrap_or(u.access_ttl_secs),
        leeway_secs: row.leeway_secs.unwrap_or(u.leeway_secs),
        reuse_grace_secs: row.reuse_grace_secs.unwrap_or(u.reuse_grace_secs),
    }
}

/// The policy as recorded, read on `db` (a transaction or the pool).
pub(super) async fn read<C: ConnectionTrait>(db: &C) -> Result<IssuingPolicy, StoreError> {
    let row = issuing_policy::Entity::find_by_id(1).one(db).await?;
    Ok(from_row(row))
}

/// `column` raised to `own` when it is empty or lower.
fn raised(column: issuing_policy::Column, own: i64) -> sea_orm::sea_query::SimpleExpr {
    CaseStatement::new()
        .case(
            Expr::col(column).is_null().or(Expr::col(column).lt(own)),
            own,
        )
        .finally(Expr::col(column))
        .into()
}

impl Store {
    /// The recorded policy (see [`IssuingPolicy::UNRECORDED`] when no server has run yet).
    pub async fn issuing_policy(&self) -> Result<IssuingPolicy, StoreError> {
        read(&self.db).await
    }

    /// Records a server's settings: each recorded value is raised to the server's own when that
    /// is larger, never lowered (tokens issued under the larger value may still be live).
    /// Returns the policy now recorded.
    pub async fn record_issuing_policy(
        &self,
        own: IssuingPolicy,
        now: i64,
    ) -> Result<IssuingPolicy, StoreError> {
        use issuing_policy::Column as P;
        let (txn, _gate) = self.begin_write().await?;
        issuing_policy::Entity::update_many()
            .col_expr(
                P::AccessTtlSecs,
                raised(P::AccessTtlSecs, own.access_ttl_secs),
            )
            .col_expr(P::LeewaySecs, raised(P::LeewaySecs, own.leeway_secs))
            .col_expr(
                P::ReuseGraceSecs,
                raised(P::ReuseGraceSecs, own.reuse_grace_secs),
            )
            .col_expr(P::UpdatedAt, Expr::value(now))
            .filter(P::Id.eq(1))
            .exec(&txn)
            .await?;
        let recorded = read(&txn).await?;
        txn.commit().await?;
        Ok(recorded)
    }
}
