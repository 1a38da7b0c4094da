//! The HTTP boundary error: one JSON body shape (`{"error", "message"}`) for every failure, the
//! mapping of every internal error to it, and its documentation in the spec.
//!
//! Internal causes are logged here once; clients only ever see a code and a fixed message.
use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use poem_openapi::types::ToJSON as _;

mod documented;

pub use documented::{Errors, codes};

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
    /// 400: malformed JSON, missing or wrongly typed fields, bad parameters. `problem` names
    /// what is wrong (a field, a parameter, the body), never the value that was sent.
    #[error("invalid_request")]
    InvalidRequest { problem: Option<String> },
    /// 400: the email is not a plausible address.
    #[error("invalid_email")]
    InvalidEmail,
    /// 400: the password breaks the length rule or is a commonly used one.
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
    /// 401: the service key is missing, unknown or revoked.
    #[error("invalid_service_key")]
    InvalidServiceKey,
    /// 403: a cookie-borne or login request failed the Origin / Sec-Fetch-Site / header check.
    #[error("csrf_rejected")]
    CsrfRejected(CsrfCheck),
    /// 403: the service key does not carry the scope the operation needs.
    #[error("insufficient_scope")]
    InsufficientScope(crate::tokens::Scope),
    /// 404: no such resource (or not the caller's).
    #[error("not_found")]
    NotFound,
    /// 405: the path exists but not with this method.
    #[error("method_not_allowed")]
    MethodNotAllowed,
    /// 410: the feed cannot continue from this cursor (another database, mangled, garbage):
    /// reload the snapshot.
    #[error("cursor_expired")]
    CursorExpired,
    /// 400: a mailed token (reset, verification, email change) is unknown, spent, expired,
    /// superseded, of another purpose or garbage: one answer for every cause.
    #[error("invalid_email_token")]
    InvalidEmailToken,
    /// 403: the password was right, but the account's email is not verified and the server
    /// requires it (`AUTHD_REQUIRE_VERIFIED_EMAIL`).
    #[error("email_not_verified")]
    EmailNotVerified,
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
    /// 503: the database cannot be reached right now, or the password-hashing queue is full.
    /// Always with `Retry-After`.
    #[error("service_unavailable")]
    ServiceUnavailable,
    /// 500: a bug or an unexpected failure; the cause is in the server log.
    #[error("internal_error")]
    Internal,
}

/// Seconds a 503 asks the client to wait (`Retry-After`).
pub const SERVICE_UNAVAILABLE_RETRY_SECS: u64 = 1;

/// Which part of the cross-site request check a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfCheck {
    /// A cookie-borne request without `X-Requested-With`.
    MissingRequestedWith,
    /// An `Origin` that is neither the server's own nor in `AUTHD_ALLOWED_ORIGINS`.
    ForeignOrigin,
    /// `Sec-Fetch-Site: cross-site` without an allowed `Origin`.
    CrossSiteFetch,
}

impl CsrfCheck {
    /// What the client should hear: which check failed and what would pass it.
    pub fn message(self) -> &'static str {
        match self {
            Self::MissingRequestedWith => {
                "Requests that rely on the refresh cookie need the X-Requested-With header (any value)."
            }
            Self::ForeignOrigin => {
                "The request's Origin is neither this server's own nor in AUTHD_ALLOWED_ORIGINS."
            }
            Self::CrossSiteFetch => {
                "The browser marked this request cross-site (Sec-Fetch-Site) and it carries no allowed Origin."
            }
        }
    }
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. }
            | Self::InvalidEmail
            | Self::WeakPassword
            | Self::AmbiguousRefreshToken
            | Self::InvalidEmailToken => StatusCode::BAD_REQUEST,
            Self::InvalidCredentials
            | Self::InvalidToken
            | Self::InvalidRefreshToken
            | Self::InvalidServiceKey => StatusCode::UNAUTHORIZED,
            Self::CsrfRejected(_) | Self::InsufficientScope(_) | Self::EmailNotVerified => {
                StatusCode::FORBIDDEN
            }
            Self::CursorExpired => StatusCode::GONE,
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

    /// An internal failure of `what`: logged once with its cause, answered as a plain 500.
    pub fn internal(what: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{what} failed");
        Self::Internal
    }

    /// The request was malformed, without saying how.
    pub const fn invalid_request() -> Self {
        Self::InvalidRequest { problem: None }
    }

    /// The request was malformed: `problem` says what (a field or parameter name, never a value).
    pub fn invalid(problem: impl Into<String>) -> Self {
        Self::InvalidRequest {
            problem: Some(problem.into()),
        }
    }

    /// The client-safe message of this error: fixed text, plus for `invalid_request` the name of
    /// what was wrong.
    pub fn message(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::InvalidRequest { problem: Some(p) } => {
                format!("The request is malformed: {p}.").into()
            }
            other => other.fixed_message().into(),
        }
    }

    fn fixed_message(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => {
                "The request is malformed: check the JSON body, its fields and the parameters."
            }
            Self::InvalidEmail => "The email address is not valid.",
            Self::WeakPassword => {
                "The password must be 8 to 1024 characters long and not a commonly used one."
            }
            Self::AmbiguousRefreshToken => {
                "Send the refresh token in the body or in the cookie, not both."
            }
            Self::InvalidCredentials => "The email or password is incorrect.",
            Self::InvalidToken => "The access token is missing, invalid or expired.",
            Self::InvalidRefreshToken => "The refresh token is invalid or expired.",
            Self::InvalidServiceKey => "The service key is missing, unknown or revoked.",
            Self::CsrfRejected(check) => check.message(),
            Self::InsufficientScope(scope) => match scope {
                crate::tokens::Scope::RevocationsRead => {
                    "The service key lacks the scope this operation needs: revocations:read."
                }
                crate::tokens::Scope::Introspect => {
                    "The service key lacks the scope this operation needs: introspect."
                }
                crate::tokens::Scope::Admin => {
                    "The service key lacks the scope this operation needs: admin."
                }
            },
            Self::CursorExpired => {
                "This cursor cannot be continued: load the snapshot again (no cursor)."
            }
            Self::NotFound => "Not found.",
            Self::InvalidEmailToken => "This link is invalid or has expired: ask for a new one.",
            Self::EmailNotVerified => {
                "Confirm your email address first: follow the link mailed to you, or ask for a new one."
            }
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
            message: self.message().into_owned(),
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
            s if s.is_client_error() => Self::invalid_request(),
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
            Self::InvalidToken | Self::InvalidServiceKey => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Self::InsufficientScope(scope) => {
                if let Ok(v) = HeaderValue::from_str(&format!(
                    r#"Bearer error="insufficient_scope", scope="{}""#,
                    scope.as_str()
                )) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::ServiceUnavailable => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(SERVICE_UNAVAILABLE_RETRY_SECS),
                );
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

impl From<crate::passwords::PasswordError> for ApiError {
    fn from(err: crate::passwords::PasswordError) -> Self {
        use crate::passwords::PasswordError;
        match err {
            PasswordError::Busy => {
                tracing::warn!("password-hashing queue full: answered 503");
                Self::ServiceUnavailable
            }
            other => {
                tracing::error!(error = %other, "password hashing failed");
                Self::Internal
            }
        }
    }
}

impl<const M: u32> From<crate::passwords::PasswordError> for Errors<M> {
    fn from(err: crate::passwords::PasswordError) -> Self {
        Self(err.into())
    }
}

impl From<crate::sessions::ServiceError> for ApiError {
    fn from(err: crate::sessions::ServiceError) -> Self {
        match err {
            crate::sessions::ServiceError::Store(e) => e.into(),
            crate::sessions::ServiceError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                Self::Internal
            }
        }
    }
}

impl<const M: u32> From<crate::sessions::ServiceError> for Errors<M> {
    fn from(err: crate::sessions::ServiceError) -> Self {
        Self(err.into())
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
            StoreError::Connect(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Self::ServiceUnavailable
            }
        }
    }
}

impl ApiError {
    /// The flag of [`codes`] that documents this error (405 is not per operation: 0). Written
    /// as an exhaustive match, so that a new variant cannot compile without one.
    pub fn flag(&self) -> u32 {
        match self {
            Self::InvalidRequest { .. } => codes::INVALID_REQUEST,
            Self::InvalidEmail => codes::INVALID_EMAIL,
            Self::WeakPassword => codes::WEAK_PASSWORD,
            Self::AmbiguousRefreshToken => codes::AMBIGUOUS_REFRESH_TOKEN,
            Self::InvalidCredentials => codes::INVALID_CREDENTIALS,
            Self::InvalidToken => codes::INVALID_TOKEN,
            Self::InvalidRefreshToken => codes::INVALID_REFRESH_TOKEN,
            Self::CsrfRejected(_) => codes::CSRF_REJECTED,
            Self::InvalidServiceKey => codes::INVALID_SERVICE_KEY,
            Self::InsufficientScope(_) => codes::INSUFFICIENT_SCOPE,
            Self::CursorExpired => codes::CURSOR_EXPIRED,
            Self::NotFound => codes::NOT_FOUND,
            Self::MethodNotAllowed => 0,
            Self::EmailTaken => codes::EMAIL_TAKEN,
            Self::PayloadTooLarge => codes::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => codes::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => codes::RATE_LIMITED,
            Self::ServiceUnavailable => codes::SERVICE_UNAVAILABLE,
            Self::Internal => codes::INTERNAL_ERROR,
            Self::InvalidEmailToken => codes::INVALID_EMAIL_TOKEN,
            Self::EmailNotVerified => codes::EMAIL_NOT_VERIFIED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parallel lists of an error (variant, code, status, message, flag, documentation)
    /// agree: every documented entry carries its own flag, each flag once, and together they
    /// are every code an operation can document.
    #[test]
    fn every_error_code_is_documented_once_under_its_own_flag() {
        let mut seen = 0u32;
        let mut names = std::collections::HashSet::new();
        for (bit, e) in &ApiError::DOCUMENTED {
            assert_eq!(e.flag(), *bit, "{e}");
            assert_eq!(bit.count_ones(), 1, "{e}");
            assert_eq!(seen & bit, 0, "{e} documented twice");
            seen |= bit;
            assert!(names.insert(e.to_string()), "two variants answer {e}");
            assert!(!e.message().is_empty());
            assert!(e.status().is_client_error() || e.status().is_server_error());
            assert_eq!(e.body().error, e.to_string());
        }
        let all = codes::EMAIL_NOT_VERIFIED * 2 - 1;
        assert_eq!(seen, all, "a flag of `codes` has no documented error");
        assert_eq!(ApiError::MethodNotAllowed.flag(), 0);
    }

    #[test]
    fn a_503_always_says_when_to_retry() {
        let r = poem::error::ResponseError::as_response(&ApiError::ServiceUnavailable);
        assert_eq!(
            r.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()),
            Some(SERVICE_UNAVAILABLE_RETRY_SECS.to_string().as_bytes())
        );
    }
}
