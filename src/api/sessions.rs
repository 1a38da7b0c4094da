//! `/auth/sessions` and `/auth/events`: the caller's sessions and security log.
use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use super::auth::NoContent;
use super::{AppState, BearerAuth, Tag};
use crate::error::codes::*;
use crate::error::{ApiError, Errors};
use crate::store::{EndReason, SessionScope};

/// How many events `GET /auth/events` returns.
const EVENT_PAGE: u64 = 50;

fn timestamp(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// One live session of the caller.
#[derive(Debug, Object)]
pub struct Session {
    /// Session id.
    pub id: String,
    /// When it was opened (login).
    pub created_at: OffsetDateTime,
    /// When its refresh token was last rotated.
    pub last_refreshed_at: OffsetDateTime,
    /// When it ends unless refreshed (the earlier of the idle and absolute limits).
    pub expires_at: OffsetDateTime,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// Is this the session of the access token making the request?
    pub current: bool,
}

/// One security event.
#[derive(Debug, Object)]
pub struct SecurityEvent {
    /// `login`, `login_failed`, `logout`, `session_revoked`, `refresh_token_reused` or
    /// `password_changed`.
    pub kind: String,
    /// When it happened.
    pub at: OffsetDateTime,
    /// The session concerned, if any.
    pub session_id: Option<String>,
    /// Client IP of the request that caused it.
    pub ip: Option<String>,
    /// User agent of the request that caused it.
    pub user_agent: Option<String>,
}

/// The caller's sessions and security events.
pub struct SessionsApi;

#[OpenApi(tag = "Tag::Sessions")]
impl SessionsApi {
    /// List my sessions
    ///
    /// The caller's live sessions, most recently refreshed first; `current` marks the session
    /// of the access token used.
    #[oai(path = "/auth/sessions", method = "get", operation_id = "listSessions")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<Session>>, Errors<{ E401 | E503 }>> {
        let sessions = state.store.list_sessions(&auth.0.sub, state.clock.now()).await?;
        Ok(Json(
            sessions
                .into_iter()
                .map(|s| Session {
                    current: s.id == auth.0.sid,
                    created_at: timestamp(s.created_at),
                    last_refreshed_at: timestamp(s.last_refreshed_at),
                    expires_at: timestamp(s.expires_at()),
                    id: s.id,
                    user_agent: s.user_agent,
                    ip: s.ip,
                })
                .collect(),
        ))
    }

    /// End one of my sessions
    ///
    /// Ends the session (its refresh token stops working and its access tokens are refused at
    /// once). 404 for an id that is not one of the caller's live sessions.
    #[oai(path = "/auth/sessions/:id", method = "delete", operation_id = "revokeSession")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        /// The session id.
        #[oai(validator(max_length = 64))]
        id: Path<String>,
    ) -> Result<NoContent, Errors<{ E400 | E401 | E404 | E503 }>> {
        let reason = if id.0 == auth.0.sid { EndReason::Logout } else { EndReason::Revoked };
        let ended = state
            .store
            .end_sessions(
                &auth.0.sub,
                SessionScope::One(id.0),
                reason,
                state.clock.now(),
                state.token_horizon(),
                &state.client_meta(req),
            )
            .await?;
        if ended.is_empty() {
            return Err(ApiError::NotFound.into());
        }
        state.revoke_in_memory(&ended);
        Ok(NoContent::Done)
    }

    /// List my security events
    ///
    /// The caller's 50 most recent security events, newest first.
    #[oai(path = "/auth/events", method = "get", operation_id = "listSecurityEvents")]
    async fn events(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<SecurityEvent>>, Errors<{ E401 | E503 }>> {
        let events = state.store.recent_events(&auth.0.sub, EVENT_PAGE).await?;
        Ok(Json(
            events
                .into_iter()
                .map(|e| SecurityEvent {
                    kind: e.kind,
                    at: timestamp(e.at),
                    session_id: e.session_id,
                    ip: e.ip,
                    user_agent: e.user_agent,
                })
                .collect(),
        ))
    }
}
