//! Signing keys, shared by every instance through the database.
use entity::signing_keys;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter};

use super::{Store, StoreError};
/// A signing key as the database keeps it (the private key stays out of `Debug`).
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    /// PKCS#8 DER of the private key.
    pub private_pkcs8: Vec<u8>,
    /// Raw 32-byte public key.
    pub public_key: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl From<signing_keys::Model> for StoredKey {
    fn from(m: signing_keys::Model) -> Self {
        Self {
            kid: m.kid,
            private_pkcs8: m.private_pkcs8,
            public_key: m.public_key,
            created_at: m.created_at,
            retired_at: m.retired_at,
        }
    }
}

fn row(key: StoredKey) -> signing_keys::ActiveModel {
    signing_keys::ActiveModel {
        kid: Set(key.kid),
        algorithm: Set("EdDSA".to_owned()),
        private_pkcs8: Set(key.private_pkcs8),
        public_key: Set(key.public_key),
        created_at: Set(key.created_at),
        retired_at: Set(key.retired_at),
    }
}

impl Store {
    /// The keys that still verify at `now`: unretired ones, and retired ones whose last
    /// tokens may not have expired yet (retired after `now - overlap_secs`).
    pub async fn live_keys(
        &self,
        now: i64,
        overlap_secs: i64,
    ) -> Result<Vec<StoredKey>, StoreError> {
        Ok(signing_keys::Entity::find()
            .filter(
                Condition::any()
                    .add(signing_keys::Column::RetiredAt.is_null())
                    .add(signing_keys::Column::RetiredAt.gt(now - overlap_secs)),
            )
            .all(&self.db)
            .await?
            .into_iter()
            .map(StoredKey::from)
            .collect())
    }

    /// Stores `key` as the only current key if there is none yet (first start). Two instances
    /// starting at once may both insert; the newest then signs, and both verify.
    pub async fn ensure_key(&self, key: StoredKey) -> Result<bool, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let any = signing_keys::Entity::find()
            .filter(signing_keys::Column::RetiredAt.is_null())
            .one(&txn)
            .await?
            .is_some();
        if !any {
            signing_keys::Entity::insert(row(key))
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(!any)
    }

    /// Removes the key `kid` at once (a leaked key): it stops verifying on every instance at
    /// their next sync, cached tokens included, and leaves the JWKS. When it was the current
    /// key, `replacement` becomes current in the same transaction, so signing never stops.
    /// `None` when there is no such key; `Some(true)` when the replacement was needed.
    pub async fn revoke_key(
        &self,
        kid: &str,
        replacement: StoredKey,
    ) -> Result<Option<bool>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let Some(key) = signing_keys::Entity::find_by_id(kid.to_owned())
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        signing_keys::Entity::delete_by_id(kid.to_owned())
            .exec(&txn)
            .await?;
        let was_current = key.retired_at.is_none();
        let others_current = signing_keys::Entity::find()
            .filter(signing_keys::Column::RetiredAt.is_null())
            .one(&txn)
            .await?
            .is_some();
        let replace = was_current && !others_current;
        if replace {
            signing_keys::Entity::insert(row(replacement))
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(Some(replace))
    }

    /// Makes `key` current from its `created_at` and retires every other current key at that
    /// moment, atomically.
    pub async fn rotate_key(&self, key: StoredKey) -> Result<(), StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::RetiredAt, Expr::value(key.created_at))
            .filter(signing_keys::Column::RetiredAt.is_null())
            .exec(&txn)
            .await?;
        signing_keys::Entity::insert(row(key))
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}
