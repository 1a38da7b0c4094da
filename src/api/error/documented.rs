//! How errors are documented in the spec: a bit per error code (an operation lists the codes
//! it can answer), the table of documented errors with their example bodies, and the
//! [`Errors`] response type that turns an operation's bits into its error responses.
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};

use super::{ApiError, CsrfCheck, ErrorBody};
use crate::store::StoreError;

/// Bit flags naming the error codes an operation documents in the spec: one per code, and one
/// per status (every code of that status).
pub mod codes {
    pub const INVALID_REQUEST: u32 = 1 << 0;
    pub const INVALID_EMAIL: u32 = 1 << 1;
    pub const WEAK_PASSWORD: u32 = 1 << 2;
    pub const AMBIGUOUS_REFRESH_TOKEN: u32 = 1 << 3;
    pub const INVALID_CREDENTIALS: u32 = 1 << 4;
    pub const INVALID_TOKEN: u32 = 1 << 5;
    pub const INVALID_REFRESH_TOKEN: u32 = 1 << 6;
    pub const CSRF_REJECTED: u32 = 1 << 7;
    pub const NOT_FOUND: u32 = 1 << 8;
    pub const EMAIL_TAKEN: u32 = 1 << 9;
    pub const PAYLOAD_TOO_LARGE: u32 = 1 << 10;
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 1 << 11;
    pub const RATE_LIMITED: u32 = 1 << 12;
    pub const SERVICE_UNAVAILABLE: u32 = 1 << 13;
    pub const INVALID_SERVICE_KEY: u32 = 1 << 14;
    pub const INSUFFICIENT_SCOPE: u32 = 1 << 15;
    pub const CURSOR_EXPIRED: u32 = 1 << 16;
    pub const INTERNAL_ERROR: u32 = 1 << 17;
    pub const INVALID_EMAIL_TOKEN: u32 = 1 << 18;
    pub const EMAIL_NOT_VERIFIED: u32 = 1 << 19;

    /// Documented on every operation: the request guard answers them to any request (a body
    /// over the limit, a body that is not JSON), and any handler can fail.
    pub const ALWAYS: u32 = PAYLOAD_TOO_LARGE | UNSUPPORTED_MEDIA_TYPE | INTERNAL_ERROR;
}

impl ApiError {
    /// Every error a client can see, with its flag from [`codes`] (405 is not per operation).
    pub const DOCUMENTED: [(u32, ApiError); 20] = [
        (codes::INVALID_REQUEST, ApiError::invalid_request()),
        (codes::INVALID_EMAIL, ApiError::InvalidEmail),
        (codes::WEAK_PASSWORD, ApiError::WeakPassword),
        (
            codes::AMBIGUOUS_REFRESH_TOKEN,
            ApiError::AmbiguousRefreshToken,
        ),
        (codes::INVALID_CREDENTIALS, ApiError::InvalidCredentials),
        (codes::INVALID_TOKEN, ApiError::InvalidToken),
        (codes::INVALID_REFRESH_TOKEN, ApiError::InvalidRefreshToken),
        (
            codes::CSRF_REJECTED,
            ApiError::CsrfRejected(CsrfCheck::ForeignOrigin),
        ),
        (codes::NOT_FOUND, ApiError::NotFound),
        (codes::EMAIL_TAKEN, ApiError::EmailTaken),
        (codes::PAYLOAD_TOO_LARGE, ApiError::PayloadTooLarge),
        (
            codes::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UnsupportedMediaType,
        ),
        (
            codes::RATE_LIMITED,
            ApiError::RateLimited {
                retry_after_secs: 30,
            },
        ),
        (codes::SERVICE_UNAVAILABLE, ApiError::ServiceUnavailable),
        (codes::INVALID_SERVICE_KEY, ApiError::InvalidServiceKey),
        (
            codes::INSUFFICIENT_SCOPE,
            ApiError::InsufficientScope(crate::tokens::Scope::RevocationsRead),
        ),
        (codes::CURSOR_EXPIRED, ApiError::CursorExpired),
        (codes::INTERNAL_ERROR, ApiError::Internal),
        (codes::INVALID_EMAIL_TOKEN, ApiError::InvalidEmailToken),
        (codes::EMAIL_NOT_VERIFIED, ApiError::EmailNotVerified),
    ];

    /// What a status means, to open the description of its response in the spec.
    fn status_summary(status: u16) -> &'static str {
        match status {
            400 => "The request was refused.",
            401 => "The credentials were refused.",
            403 => "The request is not allowed.",
            410 => "Gone.",
            404 => "Not found.",
            409 => "Conflict.",
            413 => "The request body is over 16 KiB.",
            415 => "The request body is not `application/json` (UTF-8).",
            429 => "Too many attempts: retry after the seconds in `Retry-After`.",
            500 => "An internal failure; the cause is in the server log, never in the response.",
            503 => {
                "The database cannot be reached, or too many password checks are queued: retry after the seconds in `Retry-After`."
            }
            _ => "Error.",
        }
    }
}

/// The description of the error response of `status` for the codes in `mask`: what the status
/// means, then each code (`error`) with its message. Interned, as the spec wants `'static` text.
fn error_description(status: u16, mask: u32) -> &'static str {
    use std::collections::HashSet;
    use std::fmt::Write as _;
    use std::sync::{Mutex, OnceLock};

    static TEXTS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut text = format!("{} `error` is:\n", ApiError::status_summary(status));
    for (_, e) in ApiError::DOCUMENTED
        .iter()
        .filter(|(bit, e)| mask & bit != 0 && e.status().as_u16() == status)
    {
        let _ = write!(text, "\n- `{e}`: {}", e.message());
    }
    let mut texts = TEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match texts.get(text.as_str()) {
        Some(t) => t,
        None => {
            let t: &'static str = Box::leak(text.into_boxed_str());
            texts.insert(t);
            t
        }
    }
}

/// An [`ApiError`] returned by an operation that documents the error codes in the bit set `M`
/// (from [`codes`]), plus [`codes::ALWAYS`]. Each status gets one response with the shared
/// [`ErrorBody`] schema and a description listing its codes.
#[derive(Debug)]
pub struct Errors<const M: u32>(pub ApiError);

impl<const M: u32> ApiResponse for Errors<M> {
    fn meta() -> MetaResponses {
        use poem_openapi::registry::MetaHeader;
        use poem_openapi::types::Type;

        let mask = M | codes::ALWAYS;
        let schema =
            <poem_openapi::payload::Json<ErrorBody> as poem_openapi::payload::Payload>::schema_ref(
            );
        let mut statuses: Vec<u16> = ApiError::DOCUMENTED
            .iter()
            .filter(|(bit, _)| mask & bit != 0)
            .map(|(_, e)| e.status().as_u16())
            .collect();
        statuses.sort_unstable();
        statuses.dedup();
        MetaResponses {
            responses: statuses
                .into_iter()
                .map(|status| {
                    let mut headers = Vec::new();
                    if status == 401
                        && mask & (codes::INVALID_TOKEN | codes::INVALID_SERVICE_KEY) != 0
                    {
                        headers.push(MetaHeader {
                            name: "WWW-Authenticate".into(),
                            description: Some("`Bearer error=\"invalid_token\"`.".into()),
                            required: false,
                            deprecated: false,
                            schema: String::schema_ref(),
                        });
                    }
                    if status == 429 || status == 503 {
                        headers.push(MetaHeader {
                            name: "Retry-After".into(),
                            description: Some("Seconds to wait before trying again.".into()),
                            required: true,
                            deprecated: false,
                            schema: u64::schema_ref(),
                        });
                    }
                    MetaResponse {
                        description: error_description(status, mask),
                        status: Some(status),
                        status_range: None,
                        content: vec![MetaMediaType {
                            content_type: "application/json; charset=utf-8",
                            schema: schema.clone(),
                        }],
                        headers,
                    }
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        <ErrorBody as poem_openapi::types::Type>::register(registry);
    }
}

impl<const M: u32> From<Errors<M>> for poem::Error {
    fn from(err: Errors<M>) -> Self {
        poem::Error::from(err.0)
    }
}

impl<const M: u32> From<ApiError> for Errors<M> {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl<const M: u32> From<StoreError> for Errors<M> {
    fn from(err: StoreError) -> Self {
        Self(err.into())
    }
}
