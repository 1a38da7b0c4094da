//! `/auth/sessions` and `/auth/events`: the caller's sessions and security log.
use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use time::OffsetDateTime;

use super::{AppState, BearerAuth, Tag};
use super::{NoContent, timestamp};
use crate::api::error::codes::*;
use crate::api::error::{ApiError, Errors};
use crate::store::{EndReason, SessionId, SessionScope};

/// How many events `GET /auth/events` returns.
const EVENT_PAGE: u64 = 50;
/// At most this many of them are `login_failed`.
const EVENT_PAGE_FAILURES: u64 = 10;

/// Most sessions one answer of `GET /auth/sessions` lists (the most recently refreshed): the
/// default per-user limit, so that a raised limit cannot make one answer unbounded.
const MAX_LISTED_SESSIONS: u64 = 100;

/// One live session of the caller.
#[derive(Debug, Object)]
#[oai(example)]
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
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// Client IP at login.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// Is this the session of the access token making the request?
    pub current: bool,
}

/// One security event.
#[derive(Debug, Object)]
#[oai(example)]
pub struct SecurityEvent {
    /// `login`, `login_failed`, `logout`, `session_revoked`, `refresh_token_reused` or
    /// `password_changed`.
    pub kind: String,
    /// When it happened.
    pub at: OffsetDateTime,
    /// The session concerned, if any.
    #[oai(nullable)]
    pub session_id: Option<String>,
    /// Client IP of the request that caused it.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// User agent of the request that caused it.
    #[oai(nullable)]
    pub user_agent: Option<String>,
}

impl poem_openapi::types::Example for Session {
    fn example() -> Self {
        Self {
            id: "0b9e3c8e-5d0a-4f8e-a1c2-7e4d9b6f2a35".into(),
            created_at: timestamp(1_790_000_000),
            last_refreshed_at: timestamp(1_790_003_600),
            expires_at: timestamp(1_791_213_200),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
            ip: Some("203.0.113.7".into()),
            current: true,
        }
    }
}

impl poem_openapi::types::Example for SecurityEvent {
    fn example() -> Self {
        Self {
            kind: "refresh_token_reused".into(),
            at: timestamp(1_790_003_600),
            session_id: Some("0b9e3c8e-5d0a-4f8e-a1c2-7e4d9b6f2a35".into()),
            ip: Some("198.51.100.23".into()),
            user_agent: Some("curl/8.5.0".into()),
        }
    }
}

/// `listSessions`' answer.
#[derive(ApiResponse)]
pub enum SessionList {
    /// The caller's live sessions, most recently refreshed first.
    #[oai(status = 200)]
    Ok(Json<Vec<Session>>),
}

/// `listSecurityEvents`' answer.
#[derive(ApiResponse)]
pub enum EventList {
    /// The caller's most recent security events, newest first.
    #[oai(status = 200)]
    Ok(Json<Vec<SecurityEvent>>),
}

/// The caller's sessions and security events.
#[derive(Default)]
pub struct SessionsApi;

#[OpenApi(tag = "Tag::Sessions")]
impl SessionsApi {
    /// List my sessions
    ///
    /// The caller's live sessions, most recently refreshed first, at most 100; `current` marks
    /// the session of the access token used.
    #[oai(path = "/auth/sessions", method = "get", operation_id = "listSessions")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<SessionList, Errors<{ INVALID_TOKEN | SERVICE_UNAVAILABLE }>> {
        let sessions = state
            .store()
            .list_sessions(&auth.0.sub, state.clock.now(), MAX_LISTED_SESSIONS)
            .await?;
        Ok(SessionList::Ok(Json(
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
        )))
    }

    /// End one of my sessions
    ///
    /// Ends the session (its refresh token stops working and its access tokens are refused at
    /// once). 404 for an id that is not one of the caller's live sessions.
    #[oai(
        path = "/auth/sessions/:id",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        /// The session id.
        #[oai(validator(max_length = 64))]
        id: Path<String>,
    ) -> Result<
        NoContent,
        Errors<{ INVALID_REQUEST | INVALID_TOKEN | NOT_FOUND | SERVICE_UNAVAILABLE }>,
    > {
        let reason = if id.0 == auth.0.sid {
            EndReason::Logout
        } else {
            EndReason::Revoked
        };
        let one = SessionScope::One(SessionId::from(id.0));
        let meta = state.client_meta(req);
        let ended = state
            .sessions
            .end(&auth.0.user(), one, reason, &meta)
            .await?;
        if ended.is_empty() {
            return Err(ApiError::NotFound.into());
        }
        Ok(NoContent::Done)
    }

    /// List my security events
    ///
    /// The caller's 50 most recent security events, newest first, of which at most 10 are
    /// `login_failed`: anyone who knows the email can cause those, so they never push the others
    /// out.
    #[oai(
        path = "/auth/events",
        method = "get",
        operation_id = "listSecurityEvents"
    )]
    async fn events(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<EventList, Errors<{ INVALID_TOKEN | SERVICE_UNAVAILABLE }>> {
        let events = state
            .store()
            .recent_events(&auth.0.sub, EVENT_PAGE, EVENT_PAGE_FAILURES)
            .await?;
        Ok(EventList::Ok(Json(
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
        )))
    }
}
