//! Sessions that ended while some of their access tokens may still be unexpired.
//! Every instance mirrors this table in memory and rejects those sessions' access tokens.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "revoked_sessions")]
pub struct Model {
    /// Change cursor for the instances that poll this table.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub session_id: String,
    pub user_id: String,
    pub revoked_at: i64,
    /// After this time no access token of the session can verify; the row can go.
    pub expires_at: i64,
    /// Why the session ended, as the revocation feed names it (`logout`, `user_disabled`, ...).
    pub reason: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
