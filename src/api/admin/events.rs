//! `/admin/events`: the audit trail of security events, paged, filtered by user, kind and time.
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use time::OffsetDateTime;

use super::types::{AdminEvent, EventPage};
use super::{AdminKey, decode_cursor, encode_cursor, page_size};
use crate::api::error::codes::*;
use crate::api::error::{ApiError, Errors};
use crate::api::{AppState, Tag};
use crate::store::EventKind;
use crate::store::admin::EventFilter;

/// `adminListEvents`' answer.
#[derive(ApiResponse)]
pub enum EventPageResponse {
    /// The matching events, newest first.
    #[oai(status = 200)]
    Ok(Json<EventPage>),
}

/// The audit trail.
#[derive(Default)]
pub struct AdminEventsApi;

// Each query parameter is an argument: poem-openapi documents them that way.
#[allow(clippy::too_many_arguments)]
#[OpenApi(tag = "Tag::Admin")]
impl AdminEventsApi {
    /// Read the audit trail
    ///
    /// Security events of every user (or of `user_id`), newest first, a page at a time: follow
    /// `cursor` until it is `null`. Events recorded while you page appear on a new first page,
    /// never shifting the pages you have not read. Admin actions carry `actor`
    /// (`service_key:NAME`).
    #[oai(
        path = "/admin/events",
        method = "get",
        operation_id = "adminListEvents"
    )]
    async fn events(
        &self,
        state: Data<&AppState>,
        _key: AdminKey,
        /// Only this user's events.
        #[oai(validator(max_length = 64))]
        user_id: Query<Option<String>>,
        /// Only events of this kind (`login`, `user_deleted`, ...).
        #[oai(validator(max_length = 64))]
        kind: Query<Option<String>>,
        /// Only events at or after this time (RFC 3339).
        since: Query<Option<OffsetDateTime>>,
        /// Where the previous page ended.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
        /// Events per page: 1 to 200, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
    ) -> Result<
        EventPageResponse,
        Errors<
            {
                INVALID_REQUEST
                    | INVALID_SERVICE_KEY
                    | INSUFFICIENT_SCOPE
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let kind = match kind.0.as_deref() {
            Some(k) => Some(EventKind::parse(k).ok_or_else(|| ApiError::invalid("kind"))?),
            None => None,
        };
        let before_id = match cursor.0.as_deref() {
            Some(c) => Some(
                decode_cursor('e', c)?
                    .parse::<i64>()
                    .map_err(|_| ApiError::invalid("cursor"))?,
            ),
            None => None,
        };
        // No stored id holds a NUL (and Postgres text cannot): refused, never dropped, which
        // would widen the answer to every user's events.
        if user_id.0.as_deref().is_some_and(|u| u.contains('\0')) {
            return Err(ApiError::invalid("user_id").into());
        }
        let filter = EventFilter {
            user_id: user_id.0,
            kind,
            since: since.0.map(OffsetDateTime::unix_timestamp),
            before_id,
        };
        let limit = page_size(limit.0);
        let mut events = state.store().audit_events(&filter, limit + 1).await?;
        let more = events.len() as u64 > limit;
        events.truncate(limit as usize);
        let cursor = more
            .then(|| events.last().map(|e| encode_cursor('e', &e.id.to_string())))
            .flatten();
        Ok(EventPageResponse::Ok(Json(EventPage {
            events: events.into_iter().map(AdminEvent::from).collect(),
            cursor,
        })))
    }
}
