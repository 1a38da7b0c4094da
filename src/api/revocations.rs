//! `GET /auth/revocations`: the feed of ended sessions, for resource servers that verify
//! access tokens themselves (see [`crate::feed`] and [`crate::store::feed`]).
use std::time::Duration;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::service::ServiceKeyAuth;
use super::{AppState, Tag, timestamp};
use crate::api::error::codes::*;
use crate::api::error::{ApiError, Errors};
use crate::store::feed::{FeedEntry, FeedPage, FeedPosition};
use crate::tokens::Scope;

/// Entries per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 1000;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RevocationReason {
    /// Its holder logged out (any scope of `POST /auth/logout`).
    Logout,
    /// Ended from another session, by an operator, or to make room under the session limit.
    SessionRevoked,
    /// A rotated refresh token came back: the session was taken over.
    RefreshTokenReused,
    /// The user changed their password.
    PasswordChanged,
    /// The user reset their password.
    PasswordReset,
    /// The user was disabled.
    UserDisabled,
    /// The user was deleted.
    UserDeleted,
}

impl RevocationReason {
    fn parse(stored: &str) -> Self {
        match stored {
            "logout" => Self::Logout,
            "refresh_token_reused" => Self::RefreshTokenReused,
            "password_changed" => Self::PasswordChanged,
            "password_reset" => Self::PasswordReset,
            "user_disabled" => Self::UserDisabled,
            "user_deleted" => Self::UserDeleted,
            _ => Self::SessionRevoked,
        }
    }
}

/// A session that ended: refuse its access tokens until `expires_at`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Revocation {
    /// The session (`sid` of its access tokens).
    pub session_id: String,
    /// Its user (`sub`).
    pub user_id: String,
    /// When it ended.
    pub revoked_at: OffsetDateTime,
    /// After this time no access token of the session can verify anyway: forget the entry.
    pub expires_at: OffsetDateTime,
    // No doc comment: it would wrap the enum's reference in an `allOf`, which some SDK
    // generators cannot read; the enum's own description says what it is.
    pub reason: RevocationReason,
}

impl From<FeedEntry> for Revocation {
    fn from(e: FeedEntry) -> Self {
        Self {
            session_id: e.session_id,
            user_id: e.user_id,
            revoked_at: timestamp(e.revoked_at),
            expires_at: timestamp(e.expires_at),
            reason: RevocationReason::parse(&e.reason),
        }
    }
}

/// A page of the feed.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RevocationPage {
    /// Oldest first. An entry can come twice (delivery is at least once); applying it again is
    /// harmless.
    pub entries: Vec<Revocation>,
    /// Send it back as `cursor` to read what follows: at once while `more` is true, then
    /// with `wait` to be answered as soon as a session ends.
    pub cursor: String,
    /// More entries are ready: ask again now.
    pub more: bool,
}

impl poem_openapi::types::Example for Revocation {
    fn example() -> Self {
        Self {
            session_id: "0b9e3c8e-5d0a-4f8e-a1c2-7e4d9b6f2a35".into(),
            user_id: "5f0c6d1e-8a4b-4c39-9e51-2d7a3b9c0f11".into(),
            revoked_at: timestamp(1_790_000_000),
            expires_at: timestamp(1_790_000_330),
            reason: RevocationReason::Logout,
        }
    }
}

impl poem_openapi::types::Example for RevocationPage {
    fn example() -> Self {
        Self {
            entries: vec![Revocation::example()],
            cursor: "eyJoaWdoIjo0MiwiZ2FwcyI6W119.3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .into(),
            more: false,
        }
    }
}

/// `listRevocations`' answer.
#[derive(ApiResponse)]
pub enum RevocationsResponse {
    /// Entries after the cursor (or the snapshot's next page).
    #[oai(status = 200)]
    Ok(Json<RevocationPage>),
}

/// The revocation feed.
#[derive(Default)]
pub struct RevocationsApi;

#[OpenApi(tag = "Tag::ResourceServers")]
impl RevocationsApi {
    /// Sessions that ended
    ///
    /// For resource servers that verify access tokens themselves: refuse the tokens whose `sid`
    /// is listed, until the entry's `expires_at`. Without `cursor`: a snapshot of every entry
    /// still in force, a page at a time (follow `cursor` while `more` is true). With `cursor`:
    /// what was recorded after it; with `wait`, the request is held until the first new entry
    /// (answered at once) or for `wait` seconds (then no entries and a cursor to use next).
    /// Needs a service key with the scope `revocations:read`.
    #[oai(
        path = "/auth/revocations",
        method = "get",
        operation_id = "listRevocations"
    )]
    async fn revocations(
        &self,
        state: Data<&AppState>,
        auth: ServiceKeyAuth,
        /// Where the previous answer left off; none for the snapshot.
        #[oai(validator(max_length = 8192))]
        cursor: Query<Option<String>>,
        /// Most entries in the answer (default 1000).
        #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
        limit: Query<Option<u32>>,
        /// Seconds to hold the request when nothing is new yet (default 0; only with `cursor`).
        #[oai(validator(maximum(value = "30")))]
        wait: Query<Option<u32>>,
    ) -> Result<
        RevocationsResponse,
        Errors<
            {
                INVALID_REQUEST
                    | INVALID_SERVICE_KEY
                    | INSUFFICIENT_SCOPE
                    | CURSOR_EXPIRED
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let key = auth.require(Scope::RevocationsRead)?;
        let limit = u64::from(limit.0.unwrap_or(DEFAULT_LIMIT));
        // At most 30 s (the validator), and under the HTTP request timeout.
        let wait = Duration::from_secs(u64::from(wait.0.unwrap_or(0))).min(state.feed_max_wait);
        let page = match &cursor.0 {
            None => read(&state, &FeedPosition::default(), limit).await?,
            Some(c) => {
                let pos = state.feed.decode(c).ok_or(ApiError::CursorExpired)?;
                if wait.is_zero() {
                    read(&state, &pos, limit).await?
                } else {
                    held(&state, &key.id, pos, limit, wait).await?
                }
            }
        };
        Ok(RevocationsResponse::Ok(Json(RevocationPage {
            cursor: state.feed.encode(&page.next),
            more: page.more,
            entries: page.entries.into_iter().map(Revocation::from).collect(),
        })))
    }
}

async fn read(state: &AppState, pos: &FeedPosition, limit: u64) -> Result<FeedPage, ApiError> {
    Ok(state
        .store()
        .read_feed(pos, limit, state.clock.now())
        .await?)
}

/// Reads after `pos`; while there is nothing, waits for the bell (holding no database
/// connection) until `wait` has passed or the server stops.
async fn held(
    state: &AppState,
    key_id: &str,
    mut pos: FeedPosition,
    limit: u64,
    wait: Duration,
) -> Result<FeedPage, ApiError> {
    let _place = state.feed.hold(key_id).map_err(|busy| {
        tracing::warn!(?busy, "revocation feed: too many held requests");
        ApiError::ServiceUnavailable
    })?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut bell = state.feed.bell();
    let mut closing = state.feed.closing();
    loop {
        bell.borrow_and_update();
        let page = read(state, &pos, limit).await?;
        if !page.entries.is_empty() || page.more || *closing.borrow() {
            return Ok(page);
        }
        pos = page.next;
        let woken = tokio::select! {
            r = bell.changed() => r.is_ok(),
            _ = tokio::time::sleep_until(deadline) => false,
            _ = closing.changed() => false,
        };
        if !woken {
            return Ok(FeedPage {
                entries: Vec::new(),
                next: pos,
                more: false,
            });
        }
    }
}
