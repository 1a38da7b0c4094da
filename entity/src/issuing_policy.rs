//! The largest access-token lifetime, leeway and grace window any server of this database has
//! run with (one row, `id = 1`; empty until a server records its settings).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "issuing_policy")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub access_ttl_secs: Option<i64>,
    pub leeway_secs: Option<i64>,
    pub reuse_grace_secs: Option<i64>,
    pub updated_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
