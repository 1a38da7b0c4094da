//! `/admin/*`: the admin API for back offices and support tools, with a service key of scope
//! `admin`. Users (search, create, read, edit, delete), their sessions, and the audit trail.
//! Every change is a security event naming the key; disabling and deleting end sessions through
//! the sessions service like every other end, so they reach every instance and every verifier.
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::AppState;
use crate::api::error::ApiError;
use crate::store::ClientMeta;
use crate::tokens::{Scope, ServiceKey};

mod events;
mod types;
mod users;

pub use events::AdminEventsApi;
pub use users::AdminUsersApi;

/// Most items in one page of a list.
const MAX_PAGE: u32 = 200;
/// Items per page unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 50;

/// A service key with the scope `admin` (`authd service-keys create --scope admin`), as
/// `Authorization: Bearer authd_sk_...`. A key without that scope is refused with 403
/// `insufficient_scope`; an access token is never accepted.
#[derive(SecurityScheme)]
#[oai(
    rename = "adminKey",
    ty = "bearer",
    bearer_format = "authd_sk_...",
    checker = "check_admin_key"
)]
pub struct AdminKey(pub Arc<ServiceKey>);

async fn check_admin_key(req: &Request, bearer: Bearer) -> poem::Result<Arc<ServiceKey>> {
    let key = super::service::check_service_key(req, bearer).await?;
    if !key.allows(Scope::Admin) {
        tracing::info!(key = %key.name, "service key lacks scope admin");
        return Err(ApiError::InsufficientScope(Scope::Admin).into());
    }
    Ok(key)
}

impl AdminKey {
    /// Where the request came from, naming the key as the actor of what it causes.
    fn meta(&self, state: &AppState, req: &Request) -> ClientMeta {
        ClientMeta {
            actor: Some(format!("service_key:{}", self.0.name)),
            ..state.client_meta(req)
        }
    }
}

/// An opaque page cursor: `tag` and the position, base64url.
fn encode_cursor(tag: char, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}{position}"))
}

/// The position in a cursor made by [`encode_cursor`] with `tag`; anything else is
/// `invalid_request`.
fn decode_cursor(tag: char, cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.strip_prefix(tag).map(str::to_owned))
        .ok_or_else(|| ApiError::invalid("cursor"))
}

/// A page size from `limit`.
fn page_size(limit: Option<u32>) -> u64 {
    u64::from(limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE))
}
