//! Keys that resource servers and back offices present (`Authorization: Bearer authd_sk_...`).
//! Only the SHA-256 hash of each key is stored.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Unique among the keys not revoked.
    pub name: String,
    /// SHA-256 of the whole key.
    pub key_hash: Vec<u8>,
    /// Comma-separated scopes (`revocations:read`, `introspect`, `admin`).
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
