//! Response hygiene: the headers every answer carries, by path.
use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

/// The docs page: Swagger UI with its script, styles and the spec inline, calling only authd
/// itself; nothing may frame it.
const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// Runs `ep` and sets the headers every answer of `path` carries.
pub async fn headers<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let mut resp = ep.call(req).await?.into_response();
    let is_405 = resp.status() == StatusCode::METHOD_NOT_ALLOWED;
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // No page of authd is meant to be framed, and no URL of it should leak as a referrer.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if path == "/docs" || path.starts_with("/docs/") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
    }
    if path.starts_with("/auth/") || path == "/me" {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    let plain_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"application/json"));
    if plain_json {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    if is_405 {
        // RFC 9110: a 405 lists the methods the path supports.
        if let Some(allow) =
            crate::api::spec::allowed_methods(&path).and_then(|a| HeaderValue::from_str(&a).ok())
        {
            headers.insert(header::ALLOW, allow);
        }
    }
    Ok(resp)
}
