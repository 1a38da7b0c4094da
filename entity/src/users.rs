//! An account: a normalised email and an argon2id password hash.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: String,
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Set by an admin (and, later, by a verification link).
    pub email_verified: bool,
    /// A JSON object (at most 2 KiB) that only admins write; access tokens carry it.
    #[sea_orm(column_type = "Text", nullable)]
    pub app_metadata: Option<String>,
    /// The user's own cap on live sessions; `None`: the server's.
    pub max_sessions: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
