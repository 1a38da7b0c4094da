//! Bodies are checked before any handler parses or hashes anything, and every failure answers
//! the JSON error body.
use std::sync::Arc;

use poem::http::{HeaderValue, Method, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;

use crate::api::error::ApiError;

/// The one operation whose body is a form (`application/x-www-form-urlencoded`).
const FORM_PATH: &str = "/auth/introspect";

/// Largest accepted request body, in bytes: ample for a 1024-character password in JSON.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Runs `ep` on a checked body; any error becomes the JSON error body (keeping the operation's
/// id for the request log).
pub async fn checked<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = match check_body(&mut req).await {
        Ok(body) => body,
        Err(e) => return Ok(e.into_response()),
    };
    Ok(match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(err) => {
            let operation = err.data::<OperationId>().copied();
            let mut resp = error_response(err, &path, &method, &body);
            if let Some(op) = operation {
                resp.set_data(op);
            }
            resp
        }
    })
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
        // Introspection takes a form, as RFC 7662 says; every other body is JSON.
        let form = req.uri().path() == FORM_PATH
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<mime::Mime>().ok())
                .is_some_and(|m| m.essence_str() == "application/x-www-form-urlencoded");
        if !json && !form {
            return Err(ApiError::UnsupportedMediaType);
        }
        // Every request body of the API is a JSON object (see the spec): a bare `null` is not a
        // way to say "no body" (send none).
        if json && bytes.trim_ascii() == b"null" {
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
/// reaches the client. A refused parameter or body is named (see [`crate::api::diagnose`]).
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
        crate::api::diagnose::body_problem(crate::api::spec::published(), path, &method, body)
            .map_or_else(ApiError::invalid_request, ApiError::invalid)
    } else if status == poem::http::StatusCode::UNAUTHORIZED
        && crate::api::service::takes_service_key(path)
    {
        ApiError::InvalidServiceKey
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
