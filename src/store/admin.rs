//! What the admin API reads and changes: users found by email prefix, edited and deleted, and
//! the audit trail. Every change is one transaction that locks the user's row first, so that it
//! orders with a login committing for that user (see `sessions::insert_if_credentials_hold`).
use entity::{security_events, users};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr};

use super::ending::{EndReason, EndedSession, SessionScope, end_sessions_in};
use super::types::{ClientMeta, EventKind};
use super::users::{User, lock_user};
use super::{Store, StoreError};
use crate::ids::UserId;

/// The changes an admin asks for; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub disabled: Option<bool>,
    /// Normalised. A new address is unverified unless `email_verified` says otherwise.
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    /// `Some(None)` removes it. A JSON object, checked by the caller.
    pub app_metadata: Option<Option<String>>,
    /// `Some(None)`: back to the server's cap.
    pub max_sessions: Option<Option<u64>>,
}

/// What an edit came to.
#[derive(Debug)]
pub enum Patched {
    /// The user as it is now, and the sessions a disable ended.
    Updated {
        user: Box<User>,
        ended: Vec<EndedSession>,
    },
    NotFound,
    /// The new email is another account's.
    EmailTaken,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub user_id: Option<String>,
    pub kind: Option<EventKind>,
    /// Only events at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Only events older than this one (the cursor).
    pub before_id: Option<i64>,
}

/// One event of the audit trail.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: i64,
    pub user_id: String,
    pub kind: String,
    pub at: i64,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub actor: Option<String>,
}

impl Store {
    /// Users whose email starts with `prefix` (normalised), in email order after `after`: at
    /// most `limit`. Paging by the last email seen (not by offset) neither repeats nor skips a
    /// user when others are created or deleted between pages.
    pub async fn search_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<User>, StoreError> {
        let mut query = users::Entity::find();
        if !prefix.is_empty() {
            let pattern = format!("{}%", escape_like(prefix));
            query = query
                .filter(Expr::col(users::Column::Email).like(LikeExpr::new(pattern).escape('\\')));
        }
        if let Some(after) = after {
            query = query.filter(users::Column::Email.gt(after));
        }
        Ok(query
            .order_by_asc(users::Column::Email)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// Applies `patch` to the user, records an event per changed field (with `meta`'s actor)
    /// and, when it disables the user, ends every session: one transaction.
    pub async fn update_user(
        &self,
        id: &UserId,
        patch: UserPatch,
        now: i64,
        meta: &ClientMeta,
    ) -> Result<Patched, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let Some(before) = lock_user(&txn, id.as_str()).await?.map(User::from) else {
            txn.rollback().await?;
            return Ok(Patched::NotFound);
        };
        let mut after = before.clone();
        let mut changes = users::Entity::update_many().filter(users::Column::Id.eq(id.as_str()));
        let mut kinds = Vec::new();
        if let Some(email) = patch.email.filter(|e| *e != before.email) {
            changes = changes.col_expr(users::Column::Email, Expr::value(email.clone()));
            after.email = email;
            after.email_verified = false;
            kinds.push(EventKind::EmailChanged);
        }
        if let Some(verified) = patch.email_verified {
            after.email_verified = verified;
        }
        if after.email_verified != before.email_verified {
            changes = changes.col_expr(
                users::Column::EmailVerified,
                Expr::value(after.email_verified),
            );
            kinds.push(EventKind::EmailVerificationChanged);
        }
        if let Some(disabled) = patch.disabled.filter(|d| *d != before.disabled) {
            changes = changes.col_expr(users::Column::Disabled, Expr::value(disabled));
            after.disabled = disabled;
            kinds.push(if disabled {
                EventKind::UserDisabled
            } else {
                EventKind::UserEnabled
            });
        }
        if let Some(metadata) = patch.app_metadata.filter(|m| *m != before.app_metadata) {
            changes = changes.col_expr(users::Column::AppMetadata, Expr::value(metadata.clone()));
            after.app_metadata = metadata;
            kinds.push(EventKind::AppMetadataChanged);
        }
        if let Some(cap) = patch.max_sessions.filter(|c| *c != before.max_sessions) {
            let stored = cap.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
            changes = changes.col_expr(users::Column::MaxSessions, Expr::value(stored));
            after.max_sessions = cap;
            kinds.push(EventKind::SessionLimitChanged);
        }
        if kinds.is_empty() {
            txn.rollback().await?;
            return Ok(Patched::Updated {
                user: Box::new(before),
                ended: Vec::new(),
            });
        }
        after.updated_at = now;
        changes = changes.col_expr(users::Column::UpdatedAt, Expr::value(now));
        match changes.exec(&txn).await {
            Ok(_) => {}
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                txn.rollback().await?;
                return Ok(Patched::EmailTaken);
            }
            Err(e) => return Err(e.into()),
        }
        for kind in kinds {
            super::events::record(&txn, id.as_str(), kind, now, None, meta).await?;
        }
        let ended = if after.disabled && !before.disabled {
            end_sessions_in(&txn, id, &SessionScope::All, EndReason::Disabled, now, meta).await?
        } else {
            Vec::new()
        };
        txn.commit().await?;
        Ok(Patched::Updated {
            user: Box::new(after),
            ended,
        })
    }

    /// Deletes the user: ends every session (feed reason `user_deleted`), removes the IP
    /// addresses and user agents from the user's events, deletes the account and records
    /// `user_deleted` with `meta` (whose address the caller clears when the user asked):
    /// one transaction. `None` when there is no such user.
    pub async fn delete_user(
        &self,
        id: &UserId,
        now: i64,
        meta: &ClientMeta,
    ) -> Result<Option<Vec<EndedSession>>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        if lock_user(&txn, id.as_str())
            .await?
            .map(User::from)
            .is_none()
        {
            txn.rollback().await?;
            return Ok(None);
        }
        let ended =
            end_sessions_in(&txn, id, &SessionScope::All, EndReason::Deleted, now, meta).await?;
        // Its mailed tokens name its address.
        entity::email_tokens::Entity::delete_many()
            .filter(entity::email_tokens::Column::UserId.eq(id.as_str()))
            .exec(&txn)
            .await?;
        security_events::Entity::update_many()
            .col_expr(security_events::Column::Ip, Expr::value(None::<String>))
            .col_expr(
                security_events::Column::UserAgent,
                Expr::value(None::<String>),
            )
            .filter(security_events::Column::UserId.eq(id.as_str()))
            .exec(&txn)
            .await?;
        users::Entity::delete_by_id(id.as_str().to_owned())
            .exec(&txn)
            .await?;
        super::events::record(&txn, id.as_str(), EventKind::UserDeleted, now, None, meta).await?;
        txn.commit().await?;
        Ok(Some(ended))
    }

    /// Events matching `filter`, newest first, at most `limit`. Paged by id: events recorded
    /// while a client pages never shift the pages it has not read yet.
    pub async fn audit_events(
        &self,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        use security_events::Column as E;
        let mut query = security_events::Entity::find();
        if let Some(user) = &filter.user_id {
            query = query.filter(E::UserId.eq(user.as_str()));
        }
        if let Some(kind) = filter.kind {
            query = query.filter(E::Kind.eq(kind.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(E::At.gte(since));
        }
        if let Some(before) = filter.before_id {
            query = query.filter(E::Id.lt(before));
        }
        Ok(query
            .order_by_desc(E::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|e| AuditEvent {
                id: e.id,
                user_id: e.user_id,
                kind: e.kind,
                at: e.at,
                session_id: e.session_id,
                ip: e.ip,
                user_agent: e.user_agent,
                actor: e.actor,
            })
            .collect())
    }
}

/// `s` with LIKE's wildcards and the escape character itself escaped.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_in_a_prefix_match_only_themselves() {
        assert_eq!(escape_like("a_b%c\\d"), "a\\_b\\%c\\\\d");
        assert_eq!(escape_like("plain@example"), "plain@example");
    }
}
