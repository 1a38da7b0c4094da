//! Accounts.
use entity::users;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
};

use super::types::{ClientMeta, EventKind};
use super::{Store, StoreError};

/// An account as the rest of the server sees it.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub email_verified: bool,
    /// A JSON object, as stored (checked when written).
    pub app_metadata: Option<String>,
    /// The user's own session cap; `None`: the server's.
    pub max_sessions: Option<u64>,
}

impl User {
    /// What this user's access tokens say about them.
    pub fn profile(&self) -> Profile {
        Profile {
            email: self.email.clone(),
            email_verified: self.email_verified,
            app_metadata: self.app_metadata.clone(),
        }
    }
}

/// What an access token says about its user, read with the session it is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub email: String,
    pub email_verified: bool,
    /// A JSON object, as stored.
    pub app_metadata: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl From<users::Model> for User {
    fn from(m: users::Model) -> Self {
        Self {
            id: m.id,
            email: m.email,
            password_hash: m.password_hash,
            disabled: m.disabled,
            created_at: m.created_at,
            updated_at: m.updated_at,
            email_verified: m.email_verified,
            app_metadata: m.app_metadata,
            max_sessions: m.max_sessions.and_then(|n| u64::try_from(n).ok()),
        }
    }
}

/// What registration stores.
#[derive(Clone)]
pub struct NewUser {
    pub id: String,
    /// Already normalised.
    pub email: String,
    pub password_hash: String,
    pub now: i64,
    pub email_verified: bool,
    /// An admin's request: recorded as `user_created` with its actor. `None`: registration.
    pub created_by: Option<ClientMeta>,
}

impl Store {
    /// Creates a user; `Ok(false)` when the email is taken (decided by the unique index, so two
    /// racing registrations cannot both win).
    pub async fn create_user(&self, new: NewUser) -> Result<bool, StoreError> {
        let row = users::ActiveModel {
            id: Set(new.id.clone()),
            email: Set(new.email),
            password_hash: Set(new.password_hash),
            disabled: Set(false),
            created_at: Set(new.now),
            updated_at: Set(new.now),
            email_verified: Set(new.email_verified),
            app_metadata: Set(None),
            max_sessions: Set(None),
        };
        let (txn, _gate) = self.begin_write().await?;
        match users::Entity::insert(row)
            .exec_without_returning(&txn)
            .await
        {
            Ok(_) => {
                if let Some(meta) = &new.created_by {
                    let kind = EventKind::UserCreated;
                    super::events::record(&txn, &new.id, kind, new.now, None, meta).await?;
                }
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

    /// The user with this (normalised) email.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(&self.db)
            .await?
            .map(User::from))
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(users::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .map(User::from))
    }

    /// Every user, oldest first (for `authd users list`).
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        Ok(users::Entity::find()
            .order_by_asc(users::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(User::from)
            .collect())
    }
}

/// The user's row, locked until `txn` ends (Postgres `FOR UPDATE`; SQLite's writer lock is
/// already held): what every change to a user takes first, so that it orders with a login
/// committing for that user (see `sessions::insert_if_credentials_hold`).
pub(super) async fn lock_user(
    txn: &sea_orm::DatabaseTransaction,
    id: &str,
) -> Result<Option<users::Model>, StoreError> {
    // No stored id holds a NUL, and Postgres refuses one in a parameter.
    if id.contains('\0') {
        return Ok(None);
    }
    Ok(users::Entity::find_by_id(id.to_owned())
        .lock_exclusive()
        .one(txn)
        .await?)
}
