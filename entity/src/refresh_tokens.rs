//! One refresh token of a session, stored only as the SHA-256 hash of the token.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    /// SHA-256 of the token as the client holds it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: Vec<u8>,
    pub session_id: String,
    /// Place in the chain: 0 for the token issued at login, +1 per rotation.
    pub generation: i64,
    pub created_at: i64,
    /// When this token was rotated (unix seconds); `None` while it is the current one.
    pub used_at: Option<i64>,
    /// Hash of the token that replaced this one.
    pub successor_hash: Option<Vec<u8>>,
    /// The successor, sealed under a key derived from this token (for the grace window);
    /// cleared once the window has passed.
    pub successor_sealed: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
