//! The issuing policy recorded in the database: the largest access-token lifetime, leeway and
//! reuse grace window any server of this database has run with. Revocation horizons, the
//! pruning's cut-offs and the key overlap are computed from it, so they hold whoever computes
//! them: a server, or a command run with other settings or none but `DATABASE_URL`.
use entity::issuing_policy;
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{Store, StoreError};

/// What tokens issued against this database may need: see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuingPolicy {
    pub access_ttl_secs: i64,
    pub leeway_secs: i64,
    pub reuse_grace_secs: i64,
}

impl IssuingPolicy {
    /// Until a server has recorded its settings: the largest values a server accepts (fail
    /// closed: entries and keys are kept longest).
    pub const UNRECORDED: Self = Self {
        access_ttl_secs: 86_400,
        leeway_secs: 300,
        reuse_grace_secs: 300,
    };

    /// Until when an access token issued for a session up to `now` may still verify: the
    /// horizon of a revoked-session entry.
    pub fn revocation_horizon(&self, now: i64) -> i64 {
        now + self.key_overlap_secs()
    }

    /// How long a retired key keeps verifying after it stopped signing.
    pub fn key_overlap_secs(&self) -> i64 {
        self.access_ttl_secs + self.leeway_secs
    }

    fn from_row(row: Option<issuing_policy::Model>) -> Self {
        let u = Self::UNRECORDED;
        let row = row.unwrap_or(issuing_policy::Model {
            id: 1,
            access_ttl_secs: None,
            leeway_secs: None,
            reuse_grace_secs: None,
            updated_at: None,
        });
        Self {
            access_ttl_secs: row.access_ttl_secs.unwrap_or(u.access_ttl_secs),
            leeway_secs: row.leeway_secs.unwrap_or(u.leeway_secs),
            reuse_grace_secs: row.reuse_grace_secs.unwrap_or(u.reuse_grace_secs),
        }
    }
}

/// The policy as recorded, read on `db` (a transaction or the pool).
pub(super) async fn read<C: ConnectionTrait>(db: &C) -> Result<IssuingPolicy, StoreError> {
    let row = issuing_policy::Entity::find_by_id(1).one(db).await?;
    Ok(IssuingPolicy::from_row(row))
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
