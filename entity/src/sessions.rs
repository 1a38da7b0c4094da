//! A session is one login on one device: the family of every refresh token minted from it.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    /// Unix seconds (all times in this table).
    pub created_at: i64,
    pub last_refreshed_at: i64,
    /// Ends the session when no refresh happens before it.
    pub idle_expires_at: i64,
    /// Ends the session whatever happens.
    pub absolute_expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// False for a login with `"remember": false`: a cookie without `Max-Age` and a short
    /// absolute limit.
    pub persistent: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
