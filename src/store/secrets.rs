//! Keys the instances share that are not signing keys.
use entity::secrets;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::{Store, StoreError};

impl Store {
    /// The shared secret `name`; the first instance that asks creates it with `generate`
    /// (two instances asking at once both read the one that was stored).
    pub async fn shared_secret(
        &self,
        name: &str,
        now: i64,
        generate: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        if let Some(s) = secrets::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
        {
            return Ok(s.value);
        }
        let (txn, _gate) = self.begin_write().await?;
        secrets::Entity::insert(secrets::ActiveModel {
            name: Set(name.to_owned()),
            value: Set(generate()),
            created_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(secrets::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        let stored = secrets::Entity::find_by_id(name.to_owned())
            .one(&txn)
            .await?;
        txn.commit().await?;
        stored
            .map(|s| s.value)
            .ok_or_else(|| StoreError::Internal(format!("the secret {name} was not stored")))
    }
}
