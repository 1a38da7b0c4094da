//! Which refresh token a request carries, and where from; what a logout request carries.
use poem::Request;

use super::types::{LogoutAuth, RefreshRequest};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::tokens::AccessClaims;

/// Where a refresh token came from: the answer goes back the same way.
pub enum Presented {
    Body(String),
    Cookie(String),
}

/// The refresh token carried by a body, if any: no body, `{}` and `{"refresh_token": null}`
/// carry none.
fn body_token(body: Option<RefreshRequest>) -> Option<String> {
    body.and_then(|b| b.refresh_token.0)
        .map(crate::api::strict::StrictString::into_inner)
}

/// The refresh token of a request: body, else cookie (CSRF-gated); both is an error.
pub fn presented_refresh_token(
    state: &AppState,
    req: &Request,
    body: Option<RefreshRequest>,
) -> Result<Option<Presented>, ApiError> {
    let cookie = state.http.cookies.read(req).filter(|c| !c.is_empty());
    match (body_token(body), cookie) {
        (Some(_), Some(_)) => Err(ApiError::AmbiguousRefreshToken),
        (Some(b), None) => Ok(Some(Presented::Body(b))),
        (None, Some(c)) => {
            state.http.origins.check_cookie_request(req)?;
            Ok(Some(Presented::Cookie(c)))
        }
        (None, None) => Ok(None),
    }
}

/// What a logout request carries.
pub struct LogoutCredentials {
    /// The claims of a live access token, if one came.
    pub claims: Option<AccessClaims>,
    /// A refresh token from the body, or from a cookie that passed the cross-site check.
    pub refresh: Option<String>,
    /// A cookie that came but is not used (it failed the cross-site check while a live access
    /// token names the session): expired only if it turns out dead.
    pub unchecked_cookie: Option<String>,
}

/// Gathers logout's credentials. A stale access token is no reason to ignore a refresh token
/// that names a live session; a cookie that fails the cross-site check is refused (403) unless
/// a live access token makes it unnecessary.
pub fn logout_credentials(
    state: &AppState,
    req: &Request,
    auth: &LogoutAuth,
    body: Option<RefreshRequest>,
) -> Result<LogoutCredentials, ApiError> {
    let claims = match auth {
        LogoutAuth::Bearer(bearer) => state.access.verify(&bearer.0.token).ok(),
        _ => None,
    };
    let cookie = state.http.cookies.read(req).filter(|c| !c.is_empty());
    let (refresh, unchecked_cookie) = match (body_token(body), cookie) {
        (Some(_), Some(_)) => return Err(ApiError::AmbiguousRefreshToken),
        (Some(b), None) => (Some(b), None),
        (None, Some(c)) => match state.http.origins.check_cookie_request(req) {
            Ok(()) => (Some(c), None),
            Err(_) if claims.is_some() => (None, Some(c)),
            Err(e) => return Err(e),
        },
        (None, None) => (None, None),
    };
    Ok(LogoutCredentials {
        claims,
        refresh,
        unchecked_cookie,
    })
}
