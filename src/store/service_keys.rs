//! Service keys: created and revoked by the CLI, read into memory by every instance.
use entity::service_keys;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr, sea_query::Expr,
};

use super::{Store, StoreError};
use crate::tokens::{Scope, ServiceKey};

/// A service key as `authd service-keys list` shows it (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKeyInfo {
    pub key: ServiceKey,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn info(m: service_keys::Model) -> (Vec<u8>, ServiceKeyInfo) {
    // A scope this binary does not know (written by a newer one) grants nothing here.
    let scopes = m.scopes.split(',').filter_map(Scope::parse).collect();
    let info = ServiceKeyInfo {
        key: ServiceKey {
            id: m.id,
            name: m.name,
            scopes,
        },
        created_at: m.created_at,
        last_used_at: m.last_used_at,
        revoked_at: m.revoked_at,
    };
    (m.key_hash, info)
}

impl Store {
    /// Stores a new key; `false` when a key in force already has this name.
    pub async fn create_service_key(
        &self,
        name: &str,
        scopes: &[Scope],
        hash: Vec<u8>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let taken = service_keys::Entity::find()
            .filter(service_keys::Column::Name.eq(name))
            .filter(service_keys::Column::RevokedAt.is_null())
            .one(&txn)
            .await?
            .is_some();
        if taken {
            return Ok(false);
        }
        // A racing create of the same name fails on the unique index instead: reported as
        // taken too.
        let inserted = service_keys::Entity::insert(service_keys::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            name: Set(name.to_owned()),
            key_hash: Set(hash),
            scopes: Set(Scope::join(scopes)),
            created_at: Set(now),
            last_used_at: Set(None),
            revoked_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await;
        match inserted {
            Ok(_) => {
                txn.commit().await?;
                Ok(true)
            }
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                txn.rollback().await?;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every key, newest first, revoked ones included.
    pub async fn list_service_keys(&self) -> Result<Vec<ServiceKeyInfo>, StoreError> {
        Ok(service_keys::Entity::find()
            .order_by_desc(service_keys::Column::CreatedAt)
            .order_by_asc(service_keys::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| info(m).1)
            .collect())
    }

    /// The keys in force, with their hashes.
    pub async fn live_service_keys(&self) -> Result<Vec<(Vec<u8>, ServiceKey)>, StoreError> {
        Ok(service_keys::Entity::find()
            .filter(service_keys::Column::RevokedAt.is_null())
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| {
                let (hash, info) = info(m);
                (hash, info.key)
            })
            .collect())
    }

    /// Revokes the key in force named `name`; `false` when there is none.
    pub async fn revoke_service_key(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let done = service_keys::Entity::update_many()
            .col_expr(service_keys::Column::RevokedAt, Expr::value(now))
            .filter(service_keys::Column::Name.eq(name))
            .filter(service_keys::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(done > 0)
    }

    /// Records when keys were last used (never moving a time back).
    pub async fn touch_service_keys(&self, used: &[(String, i64)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        let (txn, _gate) = self.begin_write().await?;
        for (id, at) in used {
            service_keys::Entity::update_many()
                .col_expr(service_keys::Column::LastUsedAt, Expr::value(*at))
                .filter(service_keys::Column::Id.eq(id.as_str()))
                .filter(
                    sea_orm::Condition::any()
                        .add(service_keys::Column::LastUsedAt.is_null())
                        .add(service_keys::Column::LastUsedAt.lt(*at)),
                )
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }
}
