//! The HTTP boundary error: one JSON body shape (`{"error", "message"}`) for every failure, the
//! mapping of every internal error to it, and its documentation in the spec.
//!
//! Internal causes are logged here once; clients only ever see a code and a fixed message.
use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::ToJSON as _;
use poem_openapi::{ApiResponse, Object};

use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ErrorBody {
    /// Machine-readable code, stable across versions (for example `invalid_refresh_token`).
    pub error: String,
    /// Human-readable explanation; never contains internal details.
    pub message: String,
}

impl poem_openapi::types::Example for ErrorBody {
    fn example() -> Self {
        ApiError::InvalidRefreshToken.body()
    }
}

/// Every error authd answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, missing or wrongly typed fields, bad parameters.
    #[error("invalid_request")]
    InvalidRequest,
    /// 400: the email is not a plausible address.
    #[error("invalid_email")]
    InvalidEmail,
    /// 400: the password breaks the length rule.
    #[error("weak_password")]
    WeakPassword,
    /// 400: a refresh token came in both the body and the cookie.
    #[error("ambiguous_refresh_token")]
    AmbiguousRefreshToken,
    /// 401: unknown email or wrong password (the same bytes for both).
    #[error("invalid_credentials")]
    InvalidCredentials,
    /// 401: the access token is missing, malformed, expired or of an ended session.
    #[error("invalid_token")]
    InvalidToken,
    /// 401: every refresh token failure (unknown, expired, rotated, revoked).
    #[error("invalid_refresh_token")]
    InvalidRefreshToken,
    /// 403: a cookie-borne or login request failed the Origin / Sec-Fetch-Site / header check.
    #[error("csrf_rejected")]
    CsrfRejected,
    /// 404: no such resource (or not the caller's).
    #[error("not_found")]
    NotFound,
    /// 405: the path exists but not with this method.
    #[error("method_not_allowed")]
    MethodNotAllowed,
    /// 409: an account with this email exists.
    #[error("email_taken")]
    EmailTaken,
    /// 413: the request body is over the limit.
    #[error("payload_too_large")]
    PayloadTooLarge,
    /// 415: the request body is not `application/json`.
    #[error("unsupported_media_type")]
    UnsupportedMediaType,
    /// 429: too many attempts; retry after the given number of seconds.
    #[error("rate_limited")]
    RateLimited { retry_after_secs: u64 },
    /// 503: the database cannot be reached right now.
    #[error("service_unavailable")]
    ServiceUnavailable,
    /// 500: a bug or an unexpected failure; the cause is in the server log.
    #[error("internal_error")]
    Internal,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest
            | Self::InvalidEmail
            | Self::WeakPassword
            | Self::AmbiguousRefreshToken => StatusCode::BAD_REQUEST,
            Self::InvalidCredentials | Self::InvalidToken | Self::InvalidRefreshToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::CsrfRejected => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::EmailTaken => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The fixed, client-safe message of this error.
    pub fn message(&self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is malformed: check the JSON body, its fields and the parameters.",
            Self::InvalidEmail => "The email address is not valid.",
            Self::WeakPassword => "The password must be 8 to 1024 characters long.",
            Self::AmbiguousRefreshToken => "Send the refresh token in the body or in the cookie, not both.",
            Self::InvalidCredentials => "The email or password is incorrect.",
            Self::InvalidToken => "The access token is missing, invalid or expired.",
            Self::InvalidRefreshToken => "The refresh token is invalid or expired.",
            Self::CsrfRejected => "The request failed the cross-site request check.",
            Self::NotFound => "Not found.",
            Self::MethodNotAllowed => "This method is not allowed on this path.",
            Self::EmailTaken => "An account with this email already exists.",
            Self::PayloadTooLarge => "The request body is too large.",
            Self::UnsupportedMediaType => "The request body must be application/json.",
            Self::RateLimited { .. } => "Too many attempts; retry later.",
            Self::ServiceUnavailable => "The service is temporarily unavailable; retry shortly.",
            Self::Internal => "An internal error occurred.",
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.to_string(),
            message: self.message().to_owned(),
        }
    }

    /// The error poem or poem-openapi raised before a handler ran, by its status.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => Self::InvalidToken,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::LENGTH_REQUIRED => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => Self::ServiceUnavailable,
            s if s.is_client_error() => Self::InvalidRequest,
            _ => Self::Internal,
        }
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        let body = self.body().to_json_string();
        let mut resp = Response::builder()
            .status(self.status())
            .content_type("application/json; charset=utf-8")
            .body(body);
        let headers = resp.headers_mut();
        match self {
            Self::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        poem::error::ResponseError::as_response(&self)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::ServiceUnavailable
            }
            StoreError::Db(cause) => {
                tracing::error!(error = %cause, "database error");
                Self::Internal
            }
            StoreError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                Self::Internal
            }
        }
    }
}

/// Bit flags naming the error statuses an operation documents in the spec.
pub mod codes {
    pub const E400: u32 = 1 << 0;
    pub const E401: u32 = 1 << 1;
    pub const E403: u32 = 1 << 2;
    pub const E404: u32 = 1 << 3;
    pub const E409: u32 = 1 << 4;
    pub const E413: u32 = 1 << 5;
    pub const E415: u32 = 1 << 6;
    pub const E429: u32 = 1 << 7;
    pub const E500: u32 = 1 << 8;
    pub const E503: u32 = 1 << 9;
}

const DOCUMENTED: [(u32, u16, &str); 10] = [
    (codes::E400, 400, "Bad request: `invalid_request`, `invalid_email`, `weak_password` or `ambiguous_refresh_token`, as the operation says."),
    (codes::E401, 401, "Unauthorized: `invalid_credentials`, `invalid_token` (with `WWW-Authenticate: Bearer error=\"invalid_token\"`) or `invalid_refresh_token`, as the operation says."),
    (codes::E403, 403, "`csrf_rejected`: the Origin, Sec-Fetch-Site or X-Requested-With check failed."),
    (codes::E404, 404, "`not_found`."),
    (codes::E409, 409, "`email_taken`."),
    (codes::E413, 413, "`payload_too_large`: the body is over the limit."),
    (codes::E415, 415, "`unsupported_media_type`: the body must be application/json."),
    (codes::E429, 429, "`rate_limited`: retry after the seconds in `Retry-After`."),
    (codes::E500, 500, "`internal_error`: the cause is in the server log, never in the response."),
    (codes::E503, 503, "`service_unavailable`: the database cannot be reached; retry shortly."),
];

/// An [`ApiError`] returned by an operation that documents the statuses in the bit set `M`
/// (from [`codes`]); 500 is always documented.
#[derive(Debug)]
pub struct Errors<const M: u32>(pub ApiError);

impl<const M: u32> ApiResponse for Errors<M> {
    fn meta() -> MetaResponses {
        let schema = <poem_openapi::payload::Json<ErrorBody> as poem_openapi::payload::Payload>::schema_ref();
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .filter(|(bit, _, _)| M & bit != 0 || *bit == codes::E500)
                .map(|(_, status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: schema.clone(),
                    }],
                    headers: vec![],
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
