//! The middleware every request passes: CORS for the allow-list, the body limit (413) and
//! content-type rule (415) before any parsing, the single JSON error body for every failure
//! (poem's own errors included, whose text never reaches a client), and response hygiene
//! (`Cache-Control: no-store`, `nosniff`, charset).
use poem::http::{HeaderValue, Method, StatusCode, header};
use std::time::Instant;

use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;

use super::AppState;
use crate::api::error::{ApiError, CsrfCheck};

/// Largest accepted request body, in bytes: ample for a 1024-character password in JSON.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The docs page: Swagger UI with its script, styles and the spec inline, calling only authd
/// itself; nothing may frame it.
const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

const CORS_METHODS: &str = "GET, POST, DELETE, OPTIONS";
const CORS_HEADERS: &str = "authorization, content-type, x-requested-with";

/// Runs `ep` for `req` under every rule of this module.
pub async fn guard<E: Endpoint>(
    ep: &E,
    state: &AppState,
    mut req: Request,
) -> poem::Result<Response> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| state.origins.is_allowed_cross_origin(o))
        .map(str::to_owned);
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let started = Instant::now();
    let request_id = request_id(&req);

    let mut operation = None;
    let preflight_from = (req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD))
    .then(|| req.headers().get(header::ORIGIN))
    .flatten()
    .map(|o| o.to_str().unwrap_or("(not text)").to_owned());
    let mut resp = if req.method() == Method::OPTIONS && origin.is_some() {
        preflight()
    } else if let Some(foreign) = preflight_from {
        // A browser asks before a cross-origin call from a page authd does not allow. Without
        // this answer the page sees only "Failed to fetch" and the log a bare 405.
        tracing::warn!(
            origin = %foreign,
            "CORS preflight refused: this origin is not in AUTHD_ALLOWED_ORIGINS"
        );
        ApiError::CsrfRejected(CsrfCheck::ForeignOrigin).into_response()
    } else {
        match check_body(&mut req).await {
            Err(e) => e.into_response(),
            Ok(body) => match ep.call(req).await {
                Ok(r) => {
                    let r = r.into_response();
                    operation = r.data::<OperationId>().map(|o| o.0);
                    r
                }
                Err(err) => {
                    operation = err.data::<OperationId>().map(|o| o.0);
                    error_response(err, &path, &method, &body)
                }
            },
        }
    };

    let status = resp.status().as_u16();
    let route = operation.unwrap_or_else(|| route_label(&path));
    let elapsed = started.elapsed();
    let status_label = status.to_string();
    state
        .metrics
        .requests
        .with_label_values(&[route, &status_label])
        .inc();
    state
        .metrics
        .latency
        .with_label_values(&[route, &status_label])
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "authd::http",
        %method,
        route,
        status,
        latency_ms = elapsed.as_micros() as f64 / 1000.0,
        request_id = %request_id,
        "request"
    );

    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
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
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        // RFC 9110: a 405 lists the methods the path supports.
        if let Some(allow) =
            super::spec::allowed_methods(&path).and_then(|a| HeaderValue::from_str(&a).ok())
        {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
    }
    Ok(resp)
}

/// The label of a request that reached no API operation.
fn route_label(path: &str) -> &'static str {
    match path {
        "/openapi.json" | "/openapi.yaml" => "spec",
        "/metrics" => "metrics",
        p if p == "/docs" || p.starts_with("/docs/") => "docs",
        _ => "unmatched",
    }
}

/// The caller's `X-Request-Id` when it is short and plain, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

fn preflight() -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, CORS_METHODS)
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, CORS_HEADERS)
        .header(header::ACCESS_CONTROL_MAX_AGE, "600")
        .finish()
}

/// Refuses oversized bodies (by `Content-Length`, and by counting when it is absent) and
/// non-JSON bodies, before any handler parses or hashes anything. Returns the body (a cheap
/// handle), kept to explain a parse failure.
async fn check_body(req: &mut Request) -> Result<bytes::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.parse::<usize>()
                .map_err(|_| ApiError::invalid("the Content-Length header is not a number"))
        })
        .transpose()?;
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    let body = req.take_body();
    let bytes = body
        .into_bytes_limit(MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => ApiError::PayloadTooLarge,
            _ => ApiError::invalid("the body could not be read"),
        })?;
    if bytes.is_empty() {
        // An empty body stands for "no body" whatever its content type; poem-openapi wants a
        // JSON content type even for an optional body, so give it one.
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    } else {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == mime::APPLICATION
                    && m.subtype() == mime::JSON
                    && m.get_param(mime::CHARSET).is_none_or(|c| c == mime::UTF_8)
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        // Every request body of the API is a JSON object (see the spec): a bare `null` is not a
        // way to say "no body" (send none).
        if bytes.trim_ascii() == b"null" {
            return Err(ApiError::invalid(
                "the body is `null`: send a JSON object, or no body at all",
            ));
        }
    }
    req.set_body(bytes.clone());
    Ok(bytes)
}

/// Every error becomes the JSON error body. Our own errors carry their response; poem's are
/// mapped by status so their text (which may quote internals or the request's values) never
/// reaches the client. A refused parameter or body is named (see [`super::diagnose`]).
fn error_response(err: poem::Error, path: &str, method: &Method, body: &[u8]) -> Response {
    use poem_openapi::error::{ParseParamError, ParsePathError, ParseRequestPayloadError};
    if err.is::<ApiError>() {
        return err.into_response();
    }
    let status = err.status();
    let api = if let Some(p) = err.downcast_ref::<ParseParamError>() {
        ApiError::invalid(format!("the parameter `{}` is not valid", p.name))
    } else if let Some(p) = err.downcast_ref::<ParsePathError>() {
        ApiError::invalid(format!("the path segment `{}` is not valid", p.name))
    } else if err.is::<ParseRequestPayloadError>() {
        let method = method.as_str().to_ascii_lowercase();
        super::diagnose::body_problem(super::spec::published(), path, &method, body)
            .map_or_else(ApiError::invalid_request, ApiError::invalid)
    } else {
        ApiError::from_status(status)
    };
    if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
    } else {
        tracing::debug!(error = %err, status = status.as_u16(), "request refused");
    }
    api.into_response()
}
