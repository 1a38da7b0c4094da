//! One-time email tokens: issued with the mail that carries them, spent with the change they
//! allow, in one transaction each. Only a token's SHA-256 is stored; a token serves one purpose
//! for one user and one address, is spent by a conditional delete (of two concurrent spends one
//! wins), and dies when the next one of the same purpose is issued.
use entity::{email_tokens, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, SqlErr,
};

use super::ending::{EndReason, EndedSession, SessionScope, end_sessions_in};
use super::outbox::{Mail, enqueue_in};
use super::types::{ClientMeta, EventKind};
use super::users::lock_user;
use super::{Store, StoreError};
use crate::ids::UserId;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    EmailVerification,
    EmailChange,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
            Self::EmailChange => "email_change",
        }
    }

    /// How long a token of this purpose lives: a reset 30 minutes, the others a day.
    pub fn lifetime_secs(self) -> i64 {
        match self {
            Self::PasswordReset => 30 * 60,
            Self::EmailVerification | Self::EmailChange => 24 * 3600,
        }
    }
}

/// A token to issue, with the mails that go with it.
#[derive(Debug)]
pub struct NewToken<'a> {
    pub user_id: &'a str,
    pub purpose: Purpose,
    /// The address it is mailed to (for an email change, the new one).
    pub email: &'a str,
    pub hash: Vec<u8>,
    pub now: i64,
    /// The link's mail first; a notice may follow (to the old address of an email change).
    pub mails: Vec<Mail>,
    /// Recorded for the user, if any.
    pub event: Option<EventKind>,
    pub meta: &'a ClientMeta,
}

/// What confirming an email change came to.
#[derive(Debug)]
pub enum EmailChanged {
    /// The user's address is the new one, verified.
    Changed { user_id: String },
    /// The token was not a live email-change token.
    Invalid,
    /// Another account took the address meanwhile; the token stays unspent.
    Taken,
}

/// A spent token: whose, and for which address.
struct Spent {
    user_id: String,
    email: String,
}

impl Store {
    /// Issues a token: the user's earlier tokens of the same purpose die, the token's hash is
    /// stored, its mails are queued and the event recorded, in one transaction. `false` when the
    /// user no longer exists.
    pub async fn issue_email_token(&self, new: NewToken<'_>) -> Result<bool, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        if lock_user(&txn, new.user_id).await?.is_none() {
            txn.rollback().await?;
            return Ok(false);
        }
        email_tokens::Entity::delete_many()
            .filter(email_tokens::Column::UserId.eq(new.user_id))
            .filter(email_tokens::Column::Purpose.eq(new.purpose.as_str()))
            .exec(&txn)
            .await?;
        email_tokens::Entity::insert(email_tokens::ActiveModel {
            token_hash: Set(new.hash),
            user_id: Set(new.user_id.to_owned()),
            purpose: Set(new.purpose.as_str().to_owned()),
            email: Set(new.email.to_owned()),
            created_at: Set(new.now),
            expires_at: Set(new.now + new.purpose.lifetime_secs()),
        })
        .exec_without_returning(&txn)
        .await?;
        for mail in &new.mails {
            enqueue_in(&txn, mail, new.now).await?;
        }
        if let Some(kind) = new.event {
            super::events::record(&txn, new.user_id, kind, new.now, None, new.meta).await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// Spends a password-reset token: sets the password hash, ends every session of the user
    /// (feed reason `password_reset`), records `password_reset` and queues `notice(email)`, in
    /// one transaction. `None` when the token is not a live reset token of an enabled user whose
    /// address is still the one it was mailed to.
    pub async fn reset_password(
        &self,
        hash: Vec<u8>,
        password_hash: String,
        now: i64,
        meta: &ClientMeta,
        notice: impl FnOnce(&str) -> Mail,
    ) -> Result<Option<Vec<EndedSession>>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let Some(user) = spend_for_user(&txn, hash, Purpose::PasswordReset, now).await? else {
            txn.rollback().await?;
            return Ok(None);
        };
        let id = UserId::from(user.id.as_str());
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user.id.as_str()))
            .exec(&txn)
            .await?;
        let kind = EventKind::PasswordReset;
        super::events::record(&txn, &user.id, kind, now, None, meta).await?;
        let ended = end_sessions_in(
            &txn,
            &id,
            &SessionScope::All,
            EndReason::PasswordReset,
            now,
            meta,
        )
        .await?;
        enqueue_in(&txn, &notice(&user.email), now).await?;
        txn.commit().await?;
        Ok(Some(ended))
    }

    /// Spends an email-verification token: the user's address is verified. `None` when the
    /// token is not a live verification token for the user's current address.
    pub async fn verify_email(
        &self,
        hash: Vec<u8>,
        now: i64,
        meta: &ClientMeta,
    ) -> Result<Option<String>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let Some(user) = spend_for_user(&txn, hash, Purpose::EmailVerification, now).await? else {
            txn.rollback().await?;
            return Ok(None);
        };
        users::Entity::update_many()
            .col_expr(users::Column::EmailVerified, Expr::value(true))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user.id.as_str()))
            .exec(&txn)
            .await?;
        let kind = EventKind::EmailVerified;
        super::events::record(&txn, &user.id, kind, now, None, meta).await?;
        txn.commit().await?;
        Ok(Some(user.id))
    }

    /// Spends an email-change token: the user's address becomes the new one, verified (the
    /// link reached it). Sessions stay.
    pub async fn confirm_email_change(
        &self,
        hash: Vec<u8>,
        now: i64,
        meta: &ClientMeta,
    ) -> Result<EmailChanged, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let Some(spent) = spend(&txn, hash, Purpose::EmailChange, now).await? else {
            txn.rollback().await?;
            return Ok(EmailChanged::Invalid);
        };
        if lock_user(&txn, &spent.user_id)
            .await?
            .is_none_or(|u| u.disabled)
        {
            txn.rollback().await?;
            return Ok(EmailChanged::Invalid);
        }
        let changed = users::Entity::update_many()
            .col_expr(users::Column::Email, Expr::value(spent.email.clone()))
            .col_expr(users::Column::EmailVerified, Expr::value(true))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(spent.user_id.as_str()))
            .exec(&txn)
            .await;
        match changed {
            Ok(_) => {}
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                txn.rollback().await?;
                return Ok(EmailChanged::Taken);
            }
            Err(e) => return Err(e.into()),
        }
        let kind = EventKind::EmailChanged;
        super::events::record(&txn, &spent.user_id, kind, now, None, meta).await?;
        txn.commit().await?;
        Ok(EmailChanged::Changed {
            user_id: spent.user_id,
        })
    }
}

/// Spends the token with `hash` if it is live and of `purpose`: a conditional delete, so of two
/// transactions spending one token, one deletes it and the other finds nothing.
async fn spend(
    txn: &DatabaseTransaction,
    hash: Vec<u8>,
    purpose: Purpose,
    now: i64,
) -> Result<Option<Spent>, StoreError> {
    let Some(row) = email_tokens::Entity::find_by_id(hash.clone())
        .one(txn)
        .await?
        .filter(|t| t.purpose == purpose.as_str() && t.expires_at > now)
    else {
        return Ok(None);
    };
    let deleted = email_tokens::Entity::delete_many()
        .filter(email_tokens::Column::TokenHash.eq(hash))
        .filter(email_tokens::Column::Purpose.eq(purpose.as_str()))
        .exec(txn)
        .await?
        .rows_affected;
    Ok((deleted == 1).then_some(Spent {
        user_id: row.user_id,
        email: row.email,
    }))
}

/// Spends the token and locks its user, who must be enabled and still have the address the
/// token was mailed to (a link sent to a former address opens nothing).
async fn spend_for_user(
    txn: &DatabaseTransaction,
    hash: Vec<u8>,
    purpose: Purpose,
    now: i64,
) -> Result<Option<users::Model>, StoreError> {
    let Some(spent) = spend(txn, hash, purpose, now).await? else {
        return Ok(None);
    };
    Ok(lock_user(txn, &spent.user_id)
        .await?
        .filter(|u| !u.disabled && u.email == spent.email))
}
