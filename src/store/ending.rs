//! Ending sessions: which of a user's sessions a request covers, why they end, and the one
//! transaction step that deletes them, records their revoked-set entries (until the recorded
//! policy's horizon) and their security events. Every end goes through [`end_sessions_in`].
use entity::{revoked_sessions, security_events, sessions};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::StoreError;
use super::types::{ClientMeta, EventKind};
use crate::ids::{SessionId, UserId};

/// Which of a user's sessions to end.
#[derive(Debug, Clone)]
pub enum SessionScope {
    One(SessionId),
    AllExcept(SessionId),
    All,
    /// Every live session but `new` and the `keep - 1` newest others (by login time).
    BeyondNewest {
        keep: u64,
        new: SessionId,
        now: i64,
    },
}

/// Why sessions end; decides the security event recorded for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The session's own holder logged out.
    Logout,
    /// Ended by a logout `others` or `global` from another of the user's sessions.
    LogoutElsewhere,
    /// Ended from another session (`DELETE /auth/sessions/{id}`).
    Revoked,
    /// A rotated refresh token was presented again.
    Reused,
    /// The password changed.
    PasswordChanged,
    /// The password was reset through a mailed link.
    PasswordReset,
    /// An operator disabled the user.
    Disabled,
    /// The user was deleted (by an admin or by themselves).
    Deleted,
    /// An operator revoked the user's sessions.
    Operator,
    /// A login went past the per-user session limit; the oldest session made room.
    Evicted,
}

impl EndReason {
    /// The `cause` label of `authd_sessions_revoked_total` and of the "session ended" log line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Revoked | Self::LogoutElsewhere => "revoked",
            Self::Reused => "reuse",
            Self::PasswordChanged => "password_change",
            Self::PasswordReset => "password_reset",
            Self::Operator | Self::Disabled => "operator",
            Self::Deleted => "user_deleted",
            Self::Evicted => "session_limit",
        }
    }

    /// The `reason` of the session's entry in the revocation feed.
    pub fn feed_reason(self) -> &'static str {
        match self {
            Self::Logout | Self::LogoutElsewhere => "logout",
            Self::Revoked | Self::Operator | Self::Evicted => "session_revoked",
            Self::Reused => "refresh_token_reused",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::Disabled => "user_disabled",
            Self::Deleted => "user_deleted",
        }
    }

    fn event(self) -> EventKind {
        match self {
            Self::Logout => EventKind::Logout,
            Self::Reused => EventKind::RefreshTokenReused,
            Self::LogoutElsewhere
            | Self::Revoked
            | Self::PasswordChanged
            | Self::PasswordReset
            | Self::Disabled
            | Self::Deleted
            | Self::Operator
            | Self::Evicted => EventKind::SessionRevoked,
        }
    }
}

/// Sessions ended per statement (the event insert binds 6 parameters per session).
const END_CHUNK: usize = 1000;

/// A session that just ended; its access tokens must be refused until `horizon`.
#[derive(Debug, Clone)]
pub struct EndedSession {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub horizon: i64,
}

pub(crate) async fn end_sessions_in<C: ConnectionTrait>(
    db: &C,
    user: &UserId,
    scope: &SessionScope,
    reason: EndReason,
    now: i64,
    meta: &ClientMeta,
) -> Result<Vec<EndedSession>, StoreError> {
    // No stored id holds a NUL (Postgres text cannot), and Postgres rejects one in a parameter
    // with an error: such an id names no session, on either backend.
    if let SessionScope::One(id) = scope
        && id.as_str().contains('\0')
    {
        return Ok(Vec::new());
    }
    let user_id = user.as_str();
    let mut query = sessions::Entity::find().filter(sessions::Column::UserId.eq(user_id));
    query = match scope {
        SessionScope::One(id) => query.filter(sessions::Column::Id.eq(id.as_str())),
        SessionScope::AllExcept(id) => query.filter(sessions::Column::Id.ne(id.as_str())),
        SessionScope::All => query,
        SessionScope::BeyondNewest { keep, new, now } => {
            // The session just opened always stays (within one second, "newest" cannot tell
            // logins apart).
            let mut kept: Vec<String> = sessions::Entity::find()
                .select_only()
                .column(sessions::Column::Id)
                .filter(sessions::Column::UserId.eq(user_id))
                .filter(sessions::Column::Id.ne(new.as_str()))
                .filter(sessions::Column::IdleExpiresAt.gt(*now))
                .filter(sessions::Column::AbsoluteExpiresAt.gt(*now))
                .order_by_desc(sessions::Column::CreatedAt)
                .order_by_desc(sessions::Column::LastRefreshedAt)
                .order_by_desc(sessions::Column::Id)
                .limit(keep.saturating_sub(1))
                .into_tuple()
                .all(db)
                .await?;
            if (kept.len() as u64) < keep.saturating_sub(1) {
                return Ok(Vec::new());
            }
            kept.push(new.as_str().to_owned());
            query
                .filter(sessions::Column::IdleExpiresAt.gt(*now))
                .filter(sessions::Column::AbsoluteExpiresAt.gt(*now))
                .filter(sessions::Column::Id.is_not_in(kept))
        }
    };
    // Locked in id order: two revocations of overlapping sets queue instead of deadlocking, and
    // the later one finds the rows gone and records nothing twice.
    let ids: Vec<String> = query
        .select_only()
        .column(sessions::Column::Id)
        .order_by_asc(sessions::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Whoever ends the session, its entry lasts as long as the recorded policy says any of its
    // access tokens may verify.
    let horizon = super::policy::read(db).await?.revocation_horizon(now);
    // In chunks: one statement per chunk keeps every statement under the databases' limits on
    // bound parameters (SQLite 32,766; Postgres 65,535), whatever the number of sessions.
    for chunk in ids.chunks(END_CHUNK) {
        // Refresh tokens go with their session (ON DELETE CASCADE).
        sessions::Entity::delete_many()
            .filter(sessions::Column::Id.is_in(chunk.iter().cloned()))
            .exec(db)
            .await?;
        revoked_sessions::Entity::insert_many(chunk.iter().map(|id| {
            revoked_sessions::ActiveModel {
                id: NotSet,
                session_id: Set(id.clone()),
                user_id: Set(user_id.to_owned()),
                revoked_at: Set(now),
                expires_at: Set(horizon),
                reason: Set(reason.feed_reason().to_owned()),
            }
        }))
        .exec_without_returning(db)
        .await?;
        security_events::Entity::insert_many(
            chunk
                .iter()
                .map(|id| super::events::row(user_id, reason.event(), now, Some(id), meta)),
        )
        .exec_without_returning(db)
        .await?;
    }
    // The rows were locked (and so this transaction had its Postgres xid) before the entries
    // took their ids: what the feed's gap bookkeeping relies on (see `store::feed`).
    super::feed::announce(db).await?;
    Ok(ids
        .into_iter()
        .map(|session_id| EndedSession {
            session_id: SessionId(session_id),
            user_id: user.clone(),
            horizon,
        })
        .collect())
}
