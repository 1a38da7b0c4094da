//! Sessions (refresh families), their refresh tokens, and the ending of sessions. Rotation
//! lives in [`rotation`](super::rotation).
use entity::{refresh_tokens, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::ending::{EndReason, EndedSession, SessionScope, end_sessions_in};
use super::types::{ClientMeta, EventKind};
use super::{Store, StoreError};
use crate::ids::{SessionId, UserId};

/// A live session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_refreshed_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// False for a login with `"remember": false`: its cookie has no `Max-Age`.
    pub persistent: bool,
}

impl SessionInfo {
    /// The session's user.
    pub fn user(&self) -> UserId {
        UserId::from(self.user_id.as_str())
    }

    /// The session's id, typed.
    pub fn session(&self) -> SessionId {
        SessionId::from(self.id.as_str())
    }

    /// When the session ends unless refreshed.
    pub fn expires_at(&self) -> i64 {
        crate::policy::session_end(self.idle_expires_at, self.absolute_expires_at)
    }

    pub(super) fn is_live(&self, now: i64) -> bool {
        crate::policy::is_live(self.idle_expires_at, self.absolute_expires_at, now)
    }
}

impl From<sessions::Model> for SessionInfo {
    fn from(m: sessions::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            created_at: m.created_at,
            last_refreshed_at: m.last_refreshed_at,
            idle_expires_at: m.idle_expires_at,
            absolute_expires_at: m.absolute_expires_at,
            user_agent: m.user_agent,
            ip: m.ip,
            persistent: m.persistent,
        }
    }
}

/// What login stores.
#[derive(Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub now: i64,
    pub idle_secs: i64,
    pub max_secs: i64,
    pub meta: ClientMeta,
    /// Hash of the first refresh token.
    pub token_hash: Vec<u8>,
    /// The password hash the login verified: the session opens only if it is still the user's
    /// (and the user still enabled) when the session commits.
    pub verified_password_hash: String,
    /// Most live sessions the user may have; the oldest beyond it end. 0: no limit.
    pub max_sessions: u64,
    /// False for `"remember": false` (the caller already shortened `max_secs`).
    pub persistent: bool,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// A session that login opened, and the user's oldest sessions it ended to stay within the
/// per-user limit.
#[derive(Debug)]
pub struct Opened {
    pub session: SessionInfo,
    pub evicted: Vec<EndedSession>,
}

impl Store {
    /// Opens a session with its first refresh token, records the `login` event and ends the
    /// user's oldest sessions beyond `max_sessions`, in one transaction. `None` when the
    /// password hash the login verified is no longer the user's, or the user was disabled,
    /// before this commits: no session outlives the change that should have ended it.
    pub async fn create_session(&self, new: NewSession) -> Result<Option<Opened>, StoreError> {
        let idle = crate::policy::idle_deadline(new.now, new.idle_secs, new.now + new.max_secs);
        let row = sessions::Model {
            id: new.id.clone(),
            user_id: new.user_id.clone(),
            created_at: new.now,
            last_refreshed_at: new.now,
            idle_expires_at: idle,
            absolute_expires_at: new.now + new.max_secs,
            user_agent: new.meta.user_agent.clone(),
            ip: new.meta.ip.clone(),
            persistent: new.persistent,
        };
        let (txn, _gate) = self.begin_write().await?;
        let inserted = txn
            .execute(&insert_if_credentials_hold(
                &row,
                &new.verified_password_hash,
            )?)
            .await?
            .rows_affected();
        if inserted == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        insert_token(&txn, new.token_hash, &new.id, 0, new.now).await?;
        super::events::record(
            &txn,
            &new.user_id,
            EventKind::Login,
            new.now,
            Some(&new.id),
            &new.meta,
        )
        .await?;
        let evicted = if new.max_sessions > 0 {
            let scope = SessionScope::BeyondNewest {
                keep: new.max_sessions,
                new: SessionId::from(new.id.as_str()),
                now: new.now,
            };
            let meta = ClientMeta::default();
            end_sessions_in(
                &txn,
                &UserId::from(new.user_id.as_str()),
                &scope,
                EndReason::Evicted,
                new.now,
                &meta,
            )
            .await?
        } else {
            Vec::new()
        };
        txn.commit().await?;
        Ok(Some(Opened {
            session: row.into(),
            evicted,
        }))
    }

    /// The live session a refresh token (current or rotated) belongs to, and when the token
    /// was rotated (`None`: it is the current one).
    pub async fn session_of_token(
        &self,
        hash: Vec<u8>,
        now: i64,
    ) -> Result<Option<(SessionInfo, Option<i64>)>, StoreError> {
        let Some(token) = refresh_tokens::Entity::find_by_id(hash)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let session = sessions::Entity::find_by_id(token.session_id)
            .one(&self.db)
            .await?
            .map(SessionInfo::from)
            .filter(|s| s.is_live(now));
        Ok(session.map(|s| (s, token.used_at)))
    }

    /// Ends the user's sessions in `scope`, records an event for each and adds them to the
    /// revoked list until the recorded policy's horizon. Returns the sessions that ended.
    pub async fn end_sessions(
        &self,
        user_id: &UserId,
        scope: SessionScope,
        reason: EndReason,
        now: i64,
        meta: &ClientMeta,
    ) -> Result<Vec<EndedSession>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let ended = end_sessions_in(&txn, user_id, &scope, reason, now, meta).await?;
        txn.commit().await?;
        Ok(ended)
    }

    /// The user's live sessions, most recently refreshed first, at most `limit`.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        now: i64,
        limit: u64,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        Ok(sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id))
            .filter(sessions::Column::IdleExpiresAt.gt(now))
            .filter(sessions::Column::AbsoluteExpiresAt.gt(now))
            .order_by_desc(sessions::Column::LastRefreshedAt)
            .order_by_desc(sessions::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(SessionInfo::from)
            .collect())
    }

    /// Changes the password hash, ends every other session of the user and records
    /// `password_changed`, in one transaction.
    pub async fn change_password(
        &self,
        user: &UserId,
        keep_session: &SessionId,
        password_hash: String,
        now: i64,
        meta: &ClientMeta,
    ) -> Result<Vec<EndedSession>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user.as_str()))
            .exec(&txn)
            .await?;
        super::events::record(
            &txn,
            user.as_str(),
            EventKind::PasswordChanged,
            now,
            Some(keep_session.as_str()),
            meta,
        )
        .await?;
        let ended = end_sessions_in(
            &txn,
            user,
            &SessionScope::AllExcept(keep_session.clone()),
            EndReason::PasswordChanged,
            now,
            meta,
        )
        .await?;
        txn.commit().await?;
        Ok(ended)
    }

    /// Disables or enables a user by email; disabling ends all their sessions in the same
    /// transaction. `None` when there is no such user.
    pub async fn set_user_disabled(
        &self,
        email: &str,
        disabled: bool,
        now: i64,
    ) -> Result<Option<Vec<EndedSession>>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let Some(user) = users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        users::Entity::update_many()
            .col_expr(users::Column::Disabled, Expr::value(disabled))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user.id.clone()))
            .exec(&txn)
            .await?;
        let ended = if disabled {
            let meta = ClientMeta::default();
            end_sessions_in(
                &txn,
                &UserId::from(user.id.as_str()),
                &SessionScope::All,
                EndReason::Disabled,
                now,
                &meta,
            )
            .await?
        } else {
            Vec::new()
        };
        txn.commit().await?;
        Ok(Some(ended))
    }
}

/// `INSERT INTO sessions ... SELECT ... FROM users WHERE id = ? AND password_hash = ? AND NOT
/// disabled`, reading the user row `FOR SHARE` on Postgres: a password change or a disable that
/// is committing makes this wait and then insert nothing, and one that starts later waits for
/// this to commit and then sees (and ends) the session. SQLite's single writer orders them the
/// same way.
fn insert_if_credentials_hold(
    row: &sessions::Model,
    verified_hash: &str,
) -> Result<sea_orm::sea_query::InsertStatement, StoreError> {
    use sea_orm::sea_query::{ExprTrait, Query};
    use sessions::Column as S;
    use users::Column as U;
    let select = Query::select()
        .exprs([
            Expr::val(row.id.clone()),
            Expr::col((users::Entity, U::Id)),
            Expr::val(row.created_at),
            Expr::val(row.last_refreshed_at),
            Expr::val(row.idle_expires_at),
            Expr::val(row.absolute_expires_at),
            Expr::val(row.user_agent.clone()),
            Expr::val(row.ip.clone()),
            Expr::val(row.persistent),
        ])
        .from(users::Entity)
        .and_where(Expr::col((users::Entity, U::Id)).eq(row.user_id.clone()))
        .and_where(Expr::col((users::Entity, U::PasswordHash)).eq(verified_hash))
        .and_where(Expr::col((users::Entity, U::Disabled)).eq(false))
        .lock_shared()
        .to_owned();
    let mut insert = Query::insert();
    insert.into_table(sessions::Entity).columns([
        S::Id,
        S::UserId,
        S::CreatedAt,
        S::LastRefreshedAt,
        S::IdleExpiresAt,
        S::AbsoluteExpiresAt,
        S::UserAgent,
        S::Ip,
        S::Persistent,
    ]);
    insert
        .select_from(select)
        .map_err(|e| StoreError::Internal(format!("session insert: {e}")))?;
    Ok(insert)
}

async fn insert_token<C: ConnectionTrait>(
    db: &C,
    hash: Vec<u8>,
    session_id: &str,
    generation: i64,
    now: i64,
) -> Result<(), StoreError> {
    refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
        token_hash: Set(hash),
        session_id: Set(session_id.to_owned()),
        generation: Set(generation),
        created_at: Set(now),
        used_at: Set(None),
        successor_hash: Set(None),
        successor_sealed: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}
