//! CORS with credentials for `AUTHD_ALLOWED_ORIGINS` only: a preflight from an allowed origin
//! is answered, one from any other origin refused (403) with a log line that names it, and
//! every answer to an allowed origin says so.
use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::api::OriginPolicy;
use crate::api::error::{ApiError, CsrfCheck};

const CORS_METHODS: &str = "GET, POST, DELETE, OPTIONS";
const CORS_HEADERS: &str = "authorization, content-type, x-requested-with";

/// Runs `ep` under the CORS rules of `origins`.
pub async fn allow_listed<E: Endpoint>(
    ep: Arc<E>,
    origins: &OriginPolicy,
    req: Request,
) -> poem::Result<Response> {
    let sent = req
        .headers()
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("(not text)").to_owned());
    let allowed = sent.clone().filter(|o| origins.is_allowed_cross_origin(o));
    let is_preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if req.method() == Method::OPTIONS && allowed.is_some() {
        preflight()
    } else if let Some(foreign) = sent.filter(|_| is_preflight && allowed.is_none()) {
        // A browser asks before a cross-origin call from a page authd does not allow. Without
        // this answer the page sees only "Failed to fetch" and the log a bare 405.
        tracing::warn!(
            origin = %foreign,
            "CORS preflight refused: this origin is not in AUTHD_ALLOWED_ORIGINS"
        );
        ApiError::CsrfRejected(CsrfCheck::ForeignOrigin).into_response()
    } else {
        ep.call(req).await?.into_response()
    };
    let headers = resp.headers_mut();
    if let Some(o) = allowed.and_then(|o| HeaderValue::from_str(&o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(resp)
}

fn preflight() -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, CORS_METHODS)
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_HEADERS)
        .header(header::ACCESS_CONTROL_MAX_AGE, "600")
        .finish()
}
