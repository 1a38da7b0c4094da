//! The request and response types of `/auth/*`, with their examples.
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object};

use crate::api::strict::{NewEmail, NewPassword, Nullable, Optional, StrictString};
use crate::api::{BearerToken, RefreshCookie};

/// Registration.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisterRequest {
    /// Email address; trimmed and lower-cased, unique. Anything that does not match the
    /// pattern is `invalid_email`.
    pub email: NewEmail,
    /// 8 to 1024 characters, any Unicode; used exactly as given. Any other length, or a
    /// commonly used password (a list shipped with authd), is `weak_password`.
    pub password: NewPassword,
}

impl poem_openapi::types::Example for RegisterRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.com".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

/// A created account.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UserCreated {
    /// The new user's id.
    pub user_id: String,
    /// The normalised email.
    pub email: String,
}

impl poem_openapi::types::Example for UserCreated {
    fn example() -> Self {
        Self {
            user_id: "5f0c6d1e-8a4b-4c39-9e51-2d7a3b9c0f11".into(),
            email: "ada@example.com".into(),
        }
    }
}

/// Where the refresh token travels: `cookie` (the default, for browsers) sets it in the
/// `__Host-refresh_token` HttpOnly cookie and never in a body; `body` (SDKs, mobile, CLI) returns
/// it as `refresh_token` in the body and sets no cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
#[oai(rename_all = "lowercase")]
pub enum Delivery {
    /// In the `__Host-refresh_token` HttpOnly cookie (browsers). The default.
    #[default]
    Cookie,
    /// In the response body (SDKs, mobile, CLI); no cookie is set.
    Body,
}

/// Login.
#[derive(Debug, Object)]
#[oai(example)]
pub struct LoginRequest {
    /// The account's email (normalised like at registration).
    #[oai(validator(max_length = 320))]
    pub email: StrictString,
    /// The password.
    #[oai(validator(max_length = 4096))]
    pub password: StrictString,
    // `cookie` (default) or `body`. No doc comment: with one, poem-openapi wraps the `$ref` in
    // an `allOf`, which SDK generators cannot take for an enum; `Delivery` documents itself.
    pub delivery: Optional<Delivery>,
    /// The `device_token` an earlier login to this account gave this client, if it kept one.
    /// Wrong passwords from a known device count against that device, never against the
    /// account, so an attacker guessing from elsewhere cannot lock this client out.
    #[oai(validator(max_length = 256))]
    pub device_token: Optional<StrictString>,
    /// `false` for a shared computer: the session ends after `AUTHD_SHORT_SESSION_MAX_SECS`
    /// (default 12 hours) whatever happens, and its refresh cookie has no `Max-Age`, so the
    /// browser also drops it when it closes. Default `true`.
    pub remember: Optional<bool>,
}

impl poem_openapi::types::Example for LoginRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.com".into(),
            password: "correct horse battery staple".into(),
            delivery: Optional(Some(Delivery::Cookie)),
            device_token: Optional(None),
            remember: Optional(Some(true)),
        }
    }
}

/// Tokens issued by login and refresh.
#[derive(Debug, Object)]
#[oai(example)]
pub struct TokenResponse {
    /// The access token (EdDSA JWT, `typ: at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The session (refresh family) these tokens belong to.
    pub session_id: String,
    /// Seconds until the session ends unless refreshed.
    pub refresh_expires_in: i64,
    /// The refresh token: present only with body delivery.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    /// Login only: marks this client as one that has logged in to this account. Keep it with
    /// the account's email (it is worth nothing for another) and send it as `device_token` at
    /// the next login; each login returns a new one, valid for a year.
    #[oai(skip_serializing_if_is_none)]
    pub device_token: Option<String>,
}

impl poem_openapi::types::Example for TokenResponse {
    fn example() -> Self {
        Self {
            access_token: "eyJhbGciOiJFZERTQSIsImtpZCI6IjNmYjEiLCJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiI1ZjBjIn0.c2lnbmF0dXJl"
                .into(),
            token_type: "Bearer".into(),
            expires_in: 300,
            session_id: "0b9e3c8e-5d0a-4f8e-a1c2-7e4d9b6f2a35".into(),
            refresh_expires_in: 1_209_600,
            refresh_token: Some("q3Zx1bJ4o8mTn0yKc5VwR2dL7sEhA9uGfP6iQxWjN1Y".into()),
            device_token: Some(
                "v1.AAAAAGpYQ4Aq3Zx1bJ4o8mTn0yKc5VwR2dL7sEhA9uGfP6iQxWjN1Yq3Zx1bJ4o8mTn0yKc5Vw".into(),
            ),
        }
    }
}

/// A refresh token sent in the body.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RefreshRequest {
    /// The refresh token from a body-delivery login or refresh. Left out or `null` (as many
    /// clients send when they have none), the body carries no refresh token and the cookie is
    /// used (for logout: the access token or the cookie). Any string is accepted here: every
    /// refresh-token failure, a malformed one included, answers the same 401.
    pub refresh_token: Nullable<StrictString>,
}

impl poem_openapi::types::Example for RefreshRequest {
    fn example() -> Self {
        Self {
            refresh_token: Nullable(Some("q3Zx1bJ4o8mTn0yKc5VwR2dL7sEhA9uGfP6iQxWjN1Y".into())),
        }
    }
}

/// A password change.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ChangePasswordRequest {
    /// The current password.
    #[oai(validator(max_length = 4096))]
    pub current_password: StrictString,
    /// The new password: 8 to 1024 characters, any Unicode, not a common one. Otherwise
    /// `weak_password`.
    pub new_password: NewPassword,
}

impl poem_openapi::types::Example for ChangePasswordRequest {
    fn example() -> Self {
        Self {
            current_password: "correct horse battery staple".into(),
            new_password: "a longer and newer passphrase".into(),
        }
    }
}

/// Which sessions a logout ends: `local` (the default) the caller's session, `others` every
/// other session of the user, `global` all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
#[oai(rename_all = "lowercase")]
pub enum LogoutScope {
    /// This session (default).
    #[default]
    Local,
    /// Every other session of the user.
    Others,
    /// Every session of the user.
    Global,
}

impl From<LogoutScope> for crate::policy::LogoutScope {
    fn from(s: LogoutScope) -> Self {
        match s {
            LogoutScope::Local => Self::Local,
            LogoutScope::Others => Self::Others,
            LogoutScope::Global => Self::Global,
        }
    }
}

/// Register's answer.
#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<UserCreated>),
}

/// Login's and refresh's answer.
#[derive(ApiResponse)]
pub enum TokenIssued {
    /// Tokens issued. With cookie delivery the refresh token is in `Set-Cookie` only.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        /// `__Host-refresh_token=...; Max-Age=...; Path=/; HttpOnly; Secure; SameSite=Strict`
        /// (cookie delivery only).
        #[oai(header = "Set-Cookie")]
        Option<String>,
    ),
}

/// Logout's answer.
#[derive(ApiResponse)]
pub enum LoggedOut {
    /// The sessions ended (or were already gone).
    #[oai(status = 204)]
    NoContent(
        /// Expires the refresh cookie: `__Host-refresh_token=; Max-Age=0; Path=/; HttpOnly;
        /// Secure; SameSite=Strict`. Sent whenever logout answers 204, except to a request from
        /// a foreign page, and when a cookie left unused (it failed the cross-site check beside
        /// a live access token) still names a live session.
        /// No error answer carries it: a refused request never drops the cookie of a session
        /// that may still be alive.
        #[oai(header = "Set-Cookie")]
        Option<String>,
    ),
}

/// Optional credentials of refresh: the cookie, or else the body.
#[derive(poem_openapi::SecurityScheme)]
pub enum RefreshAuth {
    Cookie(RefreshCookie),
    #[oai(fallback)]
    Body,
}

/// Credentials of logout: an access token, or a refresh token in the cookie or the body.
#[derive(poem_openapi::SecurityScheme)]
pub enum LogoutAuth {
    Bearer(BearerToken),
    Cookie(RefreshCookie),
    #[oai(fallback)]
    Body,
}
