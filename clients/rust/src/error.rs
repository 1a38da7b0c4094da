//! The errors of the kit: why a token was refused, why a verifier could not be built, and why
//! a request to authd failed.
use std::time::Duration;

/// Why [`Verifier::verify`](crate::Verifier::verify) refused a token. Every variant answers
/// 401 `invalid_token` except [`VerifyError::Stale`], which answers 503 `service_unavailable`:
/// the token may be fine, the verifier just cannot vouch for its session right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Empty, longer than [`MAX_TOKEN_LEN`](crate::MAX_TOKEN_LEN) bytes, or not three non-empty
    /// base64url parts whose first is a JSON object (so an unsigned `alg: none` token, whose
    /// third part is empty, is malformed; a signed one is refused for its header).
    #[error("the token is malformed")]
    Malformed,
    /// The header is not one authd writes: another `alg` or `typ`, or a parameter that fetches,
    /// embeds or changes the meaning of a key (`jku`, `jwk`, `x5u`, `x5c`, `crit`, `enc`, `zip`,
    /// `b64`).
    #[error("the token's header is not accepted")]
    ForbiddenHeader,
    /// The header has no `kid`, a `kid` that is not a string, or one that names no key of
    /// authd's JWKS. An unknown `kid` also asks the background task to refetch the JWKS (at
    /// most once per refetch interval).
    #[error("the token names no known key")]
    UnknownKey,
    /// The signature does not verify, a required claim is missing or mistyped, or `iss` or
    /// `aud` is not the configured one.
    #[error("the token's signature or claims are invalid")]
    Invalid,
    /// The current time is past `exp` plus the leeway.
    #[error("the token has expired")]
    Expired,
    /// `iat` is further in the future than the leeway.
    #[error("the token was issued in the future")]
    NotYetValid,
    /// The token's session (`sid`) has ended.
    #[error("the token's session has ended")]
    Revoked,
    /// `max_staleness` is set and the revoked-session set has not been confirmed by authd for
    /// longer than that.
    #[error("the revoked-session set is stale")]
    Stale,
}

impl VerifyError {
    /// The HTTP status a resource server should answer: 503 for [`VerifyError::Stale`], 401 for
    /// everything else.
    pub fn status(&self) -> u16 {
        match self {
            Self::Stale => 503,
            _ => 401,
        }
    }

    /// The error code of the answer's body: `service_unavailable` or `invalid_token`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Stale => "service_unavailable",
            _ => "invalid_token",
        }
    }
}

/// Why [`VerifierBuilder::build`](crate::VerifierBuilder::build) failed. A verifier exists only
/// once it holds authd's keys and the whole revocation snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No service key was given (it needs the scope `revocations:read`).
    #[error("a service key with the scope revocations:read is required")]
    MissingServiceKey,
    /// The service key is empty or cannot travel in an HTTP header.
    #[error("the service key is not a valid header value")]
    InvalidServiceKey,
    /// The base URL is not an `http` or `https` URL.
    #[error("the base URL is not an http(s) URL: {0}")]
    InvalidBaseUrl(String),
    /// A setting is out of range; the text says which.
    #[error("invalid setting: {0}")]
    InvalidSetting(&'static str),
    /// `build` was awaited outside a tokio runtime, so the background task cannot start.
    #[error("the verifier must be built inside a tokio runtime")]
    NoRuntime,
    /// The HTTP client could not be created.
    #[error("the HTTP client could not be created: {0}")]
    HttpClient(String),
    /// The JWKS could not be loaded.
    #[error("the JWKS could not be loaded: {0}")]
    Jwks(FetchError),
    /// The revocation snapshot could not be loaded.
    #[error("the revocation snapshot could not be loaded: {0}")]
    Snapshot(FetchError),
}

/// Why one request to authd failed. [`Status::last_error`](crate::Status::last_error) reports
/// the latest one while the feed is failing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No answer: connection refused or reset, DNS, TLS, or the request timed out.
    #[error("authd could not be reached: {0}")]
    Unreachable(String),
    /// 401 `invalid_service_key`: the key is unknown or revoked.
    #[error("authd refused the service key (invalid_service_key)")]
    InvalidServiceKey,
    /// 403 `insufficient_scope`: the key lacks the scope `revocations:read`.
    #[error("the service key lacks the scope revocations:read (insufficient_scope)")]
    InsufficientScope,
    /// 503 or 429, with the `Retry-After` authd asked for, if any.
    #[error("authd is unavailable (status {status})")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header, in seconds.
        retry_after: Option<Duration>,
    },
    /// 410 `cursor_expired`: authd can no longer serve the cursor; the snapshot is reloaded.
    #[error("authd can no longer serve the cursor (cursor_expired)")]
    CursorExpired,
    /// Any other status, with the body's error code (empty when there was none).
    #[error("authd answered status {status} ({code})")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The `error` field of the body.
        code: String,
    },
    /// A 200 whose body is not what the contract says.
    #[error("authd's answer could not be read: {0}")]
    Body(String),
    /// The JWKS holds no Ed25519 signing key.
    #[error("the JWKS holds no Ed25519 signing key")]
    NoKeys,
}
