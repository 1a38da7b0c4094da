//! `/auth/register`, `/auth/login`, `/auth/refresh`, `/auth/logout`, `/auth/password`.
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::strict::{NewEmail, NewPassword, Nullable, Optional, StrictString};
use super::{AppState, BearerAuth, BearerToken, RefreshCookie, Tag};
use crate::error::codes::*;
use crate::error::{ApiError, Errors};
use crate::metrics::RefreshOutcome;
use crate::passwords;
use crate::policy::{self, normalize_email};
use crate::store::{
    EndReason, NewSession, NewUser, RotateRequest, Rotation, SessionInfo, SessionScope, Successor,
};
use crate::tokens::RefreshToken;
use crate::tokens::access::Subject;

/// Registration.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisterRequest {
    /// Email address; trimmed and lower-cased, unique. Anything that does not match the
    /// pattern is `invalid_email`.
    pub email: NewEmail,
    /// 8 to 1024 characters, any Unicode; used exactly as given. Any other length is
    /// `weak_password`.
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
}

impl poem_openapi::types::Example for LoginRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.com".into(),
            password: "correct horse battery staple".into(),
            delivery: Optional(Some(Delivery::Cookie)),
            device_token: Optional(None),
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
    /// The new password: 8 to 1024 characters, any Unicode. Any other length is
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

/// An empty success.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
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

fn issue(
    state: &AppState,
    session: &SessionInfo,
    email: &str,
    refresh: &RefreshToken,
    delivery: Delivery,
    device_token: Option<String>,
) -> Result<TokenIssued, ApiError> {
    let (access_token, expires_in) = state
        .access
        .sign(&Subject {
            user_id: &session.user_id,
            email,
            session_id: &session.id,
            session_expires_at: session.absolute_expires_at,
        })
        .map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            ApiError::Internal
        })?;
    let refresh_expires_in = (session.expires_at() - state.clock.now()).max(0);
    let (body_token, cookie) = match delivery {
        Delivery::Body => (Some(refresh.expose().to_owned()), None),
        Delivery::Cookie => (
            None,
            Some(state.cookies.set(refresh.expose(), refresh_expires_in)),
        ),
    };
    Ok(TokenIssued::Ok(
        Json(TokenResponse {
            access_token,
            token_type: "Bearer".to_owned(),
            expires_in,
            session_id: session.id.clone(),
            refresh_expires_in,
            refresh_token: body_token,
            device_token,
        }),
        cookie,
    ))
}

fn mint() -> Result<RefreshToken, ApiError> {
    RefreshToken::mint().map_err(|e| {
        tracing::error!(error = %e, "OS random number generator failed");
        ApiError::Internal
    })
}

/// Where a refresh token came from.
enum Presented {
    Body(String),
    Cookie(String),
}

/// The refresh token carried by a body, if any: no body, `{}` and `{"refresh_token": null}`
/// carry none.
fn body_token(body: Option<RefreshRequest>) -> Option<String> {
    body.and_then(|b| b.refresh_token.0)
        .map(StrictString::into_inner)
}

/// The refresh token of a request: body, else cookie (CSRF-gated); both is an error.
fn presented_refresh_token(
    state: &AppState,
    req: &Request,
    body: Option<RefreshRequest>,
) -> Result<Option<Presented>, ApiError> {
    let cookie = state.cookies.read(req).filter(|c| !c.is_empty());
    match (body_token(body), cookie) {
        (Some(_), Some(_)) => Err(ApiError::AmbiguousRefreshToken),
        (Some(b), None) => Ok(Some(Presented::Body(b))),
        (None, Some(c)) => {
            state.origins.check_cookie_request(req)?;
            Ok(Some(Presented::Cookie(c)))
        }
        (None, None) => Ok(None),
    }
}

/// What a logout request carries.
struct LogoutCredentials {
    /// The claims of a live access token, if one came.
    claims: Option<crate::tokens::AccessClaims>,
    /// A refresh token from the body, or from a cookie that passed the cross-site check.
    refresh: Option<String>,
    /// A cookie that came but is not used (it failed the cross-site check while a live access
    /// token names the session): expired only if it turns out dead.
    unchecked_cookie: Option<String>,
}

/// Gathers logout's credentials. A stale access token is no reason to ignore a refresh token
/// that names a live session; a cookie that fails the cross-site check is refused (403) unless
/// a live access token makes it unnecessary.
fn logout_credentials(
    state: &AppState,
    req: &Request,
    auth: &LogoutAuth,
    body: Option<RefreshRequest>,
) -> Result<LogoutCredentials, ApiError> {
    let claims = match auth {
        LogoutAuth::Bearer(bearer) => state.access.verify(&bearer.0.token).ok(),
        _ => None,
    };
    let cookie = state.cookies.read(req).filter(|c| !c.is_empty());
    let (refresh, unchecked_cookie) = match (body_token(body), cookie) {
        (Some(_), Some(_)) => return Err(ApiError::AmbiguousRefreshToken),
        (Some(b), None) => (Some(b), None),
        (None, Some(c)) => match state.origins.check_cookie_request(req) {
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

/// Ends `session` because one of its rotated refresh tokens came back after the grace window.
async fn end_as_reuse(
    state: &AppState,
    session: &SessionInfo,
    now: i64,
    meta: &crate::store::ClientMeta,
) -> Result<(), ApiError> {
    let one = SessionScope::One(session.id.clone());
    let ended = state
        .store
        .end_sessions(&session.user_id, one, EndReason::Reused, now, meta)
        .await?;
    if !ended.is_empty() {
        tracing::warn!(
            user_id = %session.user_id,
            session_id = %session.id,
            ip = meta.ip.as_deref().unwrap_or("-"),
            "refresh token reused at logout: session revoked"
        );
        state.metrics.refresh(RefreshOutcome::ReuseDetected);
    }
    state.revoke_in_memory(&ended, "reuse");
    Ok(())
}

/// Ends the sessions a logout `scope` covers, seen from `session_id`.
async fn end_by_scope(
    state: &AppState,
    user_id: &str,
    session_id: &str,
    scope: LogoutScope,
    now: i64,
    meta: &crate::store::ClientMeta,
) -> Result<Vec<crate::store::EndedSession>, ApiError> {
    let mut ended = Vec::new();
    if matches!(scope, LogoutScope::Local | LogoutScope::Global) {
        let one = SessionScope::One(session_id.to_owned());
        ended.extend(
            state
                .store
                .end_sessions(user_id, one, EndReason::Logout, now, meta)
                .await?,
        );
    }
    if matches!(scope, LogoutScope::Others | LogoutScope::Global) {
        let others = SessionScope::AllExcept(session_id.to_owned());
        ended.extend(
            state
                .store
                .end_sessions(user_id, others, EndReason::Revoked, now, meta)
                .await?,
        );
    }
    Ok(ended)
}

/// Register, log in, refresh, log out, change the password.
pub struct AuthApi;

#[OpenApi(tag = "Tag::Auth")]
impl AuthApi {
    /// Create an account
    ///
    /// Creates a user with a normalised (trimmed, lower-cased) email and an argon2id hash of
    /// the password. Passwords are 8 to 1024 characters of any kind, never truncated or
    /// case-folded. Does not log in.
    #[oai(path = "/auth/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<RegisterRequest>,
    ) -> Result<
        RegisterResponse,
        Errors<
            {
                INVALID_REQUEST
                    | INVALID_EMAIL
                    | WEAK_PASSWORD
                    | EMAIL_TAKEN
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let ip = state.client_meta(req).ip.unwrap_or_default();
        state.throttle(&state.limits.register_ip, &ip, "register")?;
        let email = normalize_email(&body.email).ok_or(ApiError::InvalidEmail)?;
        if !passwords::is_acceptable(&body.password) {
            return Err(ApiError::WeakPassword.into());
        }
        let password_hash = state.hasher.hash(body.0.password.into_inner()).await?;
        let user_id = uuid::Uuid::new_v4().to_string();
        let created = state
            .store
            .create_user(NewUser {
                id: user_id.clone(),
                email: email.clone(),
                password_hash,
                now: state.clock.now(),
            })
            .await?;
        if !created {
            return Err(ApiError::EmailTaken.into());
        }
        Ok(RegisterResponse::Created(Json(UserCreated {
            user_id,
            email,
        })))
    }

    /// Log in
    ///
    /// Checks the password and opens a session. With `delivery: "cookie"` (the default, for
    /// browsers) the refresh token is set in the `__Host-refresh_token` cookie and never appears
    /// in the body; with `delivery: "body"` (SDKs, mobile, CLI) it is in the body and no cookie is
    /// set. An unknown email and a wrong password get the same answer after the same work.
    /// Requests from a foreign `Origin` are refused (login CSRF).
    #[oai(path = "/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> Result<
        TokenIssued,
        Errors<
            {
                INVALID_REQUEST
                    | INVALID_CREDENTIALS
                    | CSRF_REJECTED
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        state.origins.check_origin(req)?;
        let meta = state.client_meta(req);
        let LoginRequest {
            email,
            password,
            delivery,
            device_token,
        } = body.0;
        let ip = meta.ip.clone().unwrap_or_default();
        // Throttling keys on the address as typed (normalised), whether or not it exists, so a
        // 429 reveals nothing about accounts.
        let account = policy::throttle_key(&email);
        let device = device_token
            .0
            .and_then(|t| state.devices.verify(&t, &account, state.clock.now()));
        // Failures from a device that logged in to this account before count against that
        // device; everyone else's against the account, from this address and from all.
        let l = &state.limits;
        let failures = match device {
            Some(d) => vec![(&l.login_device, format!("{account}|{d}"))],
            None => vec![
                (&l.login_account_ip, format!("{account}|{ip}")),
                (&l.login_account, account.clone()),
            ],
        };
        let throttled = state
            .throttle(&state.limits.login_ip, &ip, "login")
            .err()
            .or_else(|| {
                let wait = failures.iter().map(|(l, k)| l.wait_secs(k)).max();
                let wait = wait.unwrap_or(0);
                (wait > 0).then(|| {
                    state
                        .metrics
                        .rate_limited
                        .with_label_values(&["login"])
                        .inc();
                    ApiError::RateLimited {
                        retry_after_secs: wait,
                    }
                })
            });
        if let Some(err) = throttled {
            state.metrics.login("rate_limited");
            return Err(err.into());
        }
        let found = match normalize_email(&email) {
            Some(email) => state.store.user_by_email(&email).await?,
            None => None,
        };
        let user = found.clone().filter(|u| !u.disabled);
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let ok = state.hasher.verify(password.into_inner(), phc).await?;
        let now = state.clock.now();
        let Some(user) = user.filter(|_| ok) else {
            if let Some(u) = found.filter(|u| state.limits.failure_events.take(&u.id).is_ok()) {
                tracing::warn!(user_id = %u.id, ip = meta.ip.as_deref().unwrap_or("-"), "login failed");
                // Recorded after answering, so that a known account's failure costs the client
                // no more time than an unknown one's (no timing oracle).
                let store = state.store.clone();
                tokio::spawn(async move {
                    let kind = crate::store::EventKind::LoginFailed;
                    if let Err(e) = store.record_event(&u.id, kind, now, None, &meta).await {
                        tracing::warn!(error = %e, "could not record login_failed");
                    }
                });
            }
            for (limiter, key) in &failures {
                let _ = limiter.take(key);
            }
            state.metrics.login("invalid_credentials");
            return Err(ApiError::InvalidCredentials.into());
        };
        let refresh = mint()?;
        let opened = state
            .store
            .create_session(NewSession {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: user.id.clone(),
                now,
                idle_secs: state.settings.refresh_idle_secs,
                max_secs: state.settings.session_max_secs,
                meta,
                token_hash: refresh.hash(),
                verified_password_hash: user.password_hash.clone(),
                max_sessions: state.settings.max_sessions_per_user,
            })
            .await?;
        // The password changed or the account was disabled while the hash was being checked:
        // the login verified a credential that no longer holds.
        let Some(opened) = opened else {
            state.metrics.login("invalid_credentials");
            return Err(ApiError::InvalidCredentials.into());
        };
        state.revoke_in_memory(&opened.evicted, "session_limit");
        let session = opened.session;
        state.metrics.login("success");
        let device_token = state.devices.issue(&account, now).map_err(|e| {
            tracing::error!(error = %e, "OS random number generator failed");
            ApiError::Internal
        })?;
        Ok(issue(
            &state,
            &session,
            &user.email,
            &refresh,
            delivery.0.unwrap_or_default(),
            Some(device_token),
        )?)
    }

    /// Rotate the refresh token
    ///
    /// Consumes the refresh token (from `{refresh_token}` in the body, or else from the
    /// cookie) and returns a new one of the same session with a fresh access token, in the same
    /// delivery mode. Presenting a token that was already rotated revokes the whole session
    /// (reuse detection), except within the grace window after its rotation: then the session's
    /// current token is returned (its own successor, or the newest token if that successor was
    /// rotated in turn), so racing tabs and lost answers never log anyone out. Every failure
    /// answers the same
    /// `invalid_refresh_token`. Cookie-borne requests need `X-Requested-With` and an allowed
    /// `Origin`.
    #[oai(path = "/auth/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        req: &Request,
        _auth: RefreshAuth,
        /// Required (any value) when the refresh token comes from the cookie: a cross-site form
        /// cannot send it. Read by the CSRF check.
        #[oai(name = "X-Requested-With")]
        _requested_with: Header<Option<String>>,
        body: Json<Option<RefreshRequest>>,
    ) -> Result<
        TokenIssued,
        Errors<
            {
                INVALID_REQUEST
                    | AMBIGUOUS_REFRESH_TOKEN
                    | INVALID_REFRESH_TOKEN
                    | CSRF_REJECTED
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let ip = state.client_meta(req).ip.unwrap_or_default();
        state.throttle(&state.limits.refresh_ip, &ip, "refresh")?;
        let (raw, delivery) = match presented_refresh_token(&state, req, body.0)? {
            Some(Presented::Body(t)) => (t, Delivery::Body),
            Some(Presented::Cookie(t)) => (t, Delivery::Cookie),
            None => {
                state.metrics.refresh(RefreshOutcome::Rejected);
                return Err(ApiError::InvalidRefreshToken.into());
            }
        };
        let Some(presented) = RefreshToken::parse(&raw) else {
            state.metrics.refresh(RefreshOutcome::Rejected);
            return Err(ApiError::InvalidRefreshToken.into());
        };
        let successor = mint()?;
        let meta = state.client_meta(req);
        let outcome = state
            .store
            .rotate(RotateRequest {
                presented: presented.hash(),
                successor: Successor {
                    hash: successor.hash(),
                    sealed: presented.seal(&successor).map_err(|e| {
                        tracing::error!(error = %e, "refresh refused");
                        ApiError::Internal
                    })?,
                },
                now: state.clock.now(),
                idle_secs: state.settings.refresh_idle_secs,
                grace_secs: state.settings.reuse_grace_secs,
                meta: meta.clone(),
            })
            .await?;
        match outcome {
            Rotation::Rotated { session, email } => {
                state.metrics.refresh(RefreshOutcome::Rotated);
                Ok(issue(&state, &session, &email, &successor, delivery, None)?)
            }
            Rotation::Replayed {
                session,
                email,
                chain,
            } => {
                // Each link opens with the token before it: only a holder of the presented
                // token can follow the chain to the current one.
                let mut current = presented;
                for sealed in &chain {
                    current = current.open(sealed).ok_or(ApiError::InvalidRefreshToken)?;
                }
                state.metrics.refresh(RefreshOutcome::GraceReplay);
                Ok(issue(&state, &session, &email, &current, delivery, None)?)
            }
            Rotation::Reused(ended) => {
                tracing::warn!(
                    user_id = %ended.user_id,
                    session_id = %ended.session_id,
                    ip = meta.ip.as_deref().unwrap_or("-"),
                    "refresh token reused: session revoked"
                );
                state.metrics.refresh(RefreshOutcome::ReuseDetected);
                state.revoke_in_memory(&[ended], "reuse");
                Err(ApiError::InvalidRefreshToken.into())
            }
            Rotation::Invalid => {
                state.metrics.refresh(RefreshOutcome::Rejected);
                Err(ApiError::InvalidRefreshToken.into())
            }
        }
    }

    /// Log out
    ///
    /// Ends sessions: `scope=local` (default) this one, `others` every other session of the
    /// user, `global` all of them. The caller is identified by an access token, or by a refresh
    /// token in the body or the cookie (cookie-borne requests need `X-Requested-With` and an
    /// allowed `Origin`). A request that carries any credential naming a live session ends
    /// that session, even when another credential it carries is stale: logout never fails
    /// open. Ended sessions' access tokens stop working at once. A refresh token that is
    /// unknown or already ended is not an error: the session is gone either way. The 204
    /// expires the refresh cookie; an error never does, so a refused request (a malformed
    /// body, a failed cross-site check) leaves the browser the credential of a session that
    /// is still alive.
    #[oai(path = "/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: LogoutAuth,
        /// `local` (default): this session; `others`: every other session of the user;
        /// `global`: all of them.
        scope: Query<Option<LogoutScope>>,
        /// Required (any value) when the refresh token comes from the cookie: a cross-site form
        /// cannot send it. Read by the CSRF check.
        #[oai(name = "X-Requested-With")]
        _requested_with: Header<Option<String>>,
        body: Json<Option<RefreshRequest>>,
    ) -> Result<
        LoggedOut,
        Errors<
            {
                INVALID_REQUEST
                    | AMBIGUOUS_REFRESH_TOKEN
                    | INVALID_TOKEN
                    | CSRF_REJECTED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let now = state.clock.now();
        let creds = logout_credentials(&state, req, &auth, body.0)?;
        let found = match creds.refresh.as_deref().and_then(RefreshToken::parse) {
            Some(t) => state.store.session_of_token(t.hash(), now).await?,
            None => None,
        };
        // A page elsewhere must never drop this browser's cookie (browsers apply a Set-Cookie
        // even to such answers).
        let foreign = state.origins.check_origin(req).is_err();
        let expire = (!foreign).then(|| state.cookies.expire());
        let meta = state.client_meta(req);
        // A rotated refresh token outside its grace window is reuse wherever it is presented:
        // its session ends as reuse (event, warning, metric), as at refresh.
        let grace = state.settings.reuse_grace_secs;
        let reused = found
            .as_ref()
            .is_some_and(|(_, used_at)| policy::is_reuse(*used_at, now, grace));
        if let Some((s, _)) = found.as_ref().filter(|_| reused) {
            end_as_reuse(&state, s, now, &meta).await?;
        }
        // The access token decides whose sessions `scope` covers. Without a live one, the
        // refresh token does; a rotated one proves less than the current one and ends only its
        // own session.
        let (user_id, session_id, scope) = match (&creds.claims, &found) {
            (Some(c), _) => (c.sub.clone(), c.sid.clone(), scope.0.unwrap_or_default()),
            (None, Some(_)) if reused => return Ok(LoggedOut::NoContent(expire)),
            (None, Some((s, used_at))) => {
                let scope = scope.0.unwrap_or_default();
                let scope = if used_at.is_none() {
                    scope
                } else {
                    LogoutScope::Local
                };
                (s.user_id.clone(), s.id.clone(), scope)
            }
            (None, None) if creds.refresh.is_some() => return Ok(LoggedOut::NoContent(expire)),
            (None, None) => return Err(ApiError::InvalidToken.into()),
        };
        let mut ended = end_by_scope(&state, &user_id, &session_id, scope, now, &meta).await?;
        // A refresh token that names another live session than the access token: end it too.
        if let Some((s, _)) = found.filter(|(s, _)| s.id != session_id && !reused) {
            let one = SessionScope::One(s.id.clone());
            ended.extend(
                state
                    .store
                    .end_sessions(&s.user_id, one, EndReason::Logout, now, &meta)
                    .await?,
            );
        }
        state.revoke_in_memory(&ended, "logout");
        // A cookie left unused is expired only when it names no live session (any more).
        let expire = match creds.unchecked_cookie.as_deref() {
            Some(c) => match RefreshToken::parse(c) {
                Some(t) if state.store.session_of_token(t.hash(), now).await?.is_some() => None,
                _ => expire,
            },
            None => expire,
        };
        Ok(LoggedOut::NoContent(expire))
    }

    /// Change the password
    ///
    /// Needs the current password. Ends every other session of the user (their access tokens
    /// stop working at once); the calling session stays logged in.
    #[oai(
        path = "/auth/password",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        body: Json<ChangePasswordRequest>,
    ) -> Result<
        NoContent,
        Errors<
            {
                INVALID_REQUEST
                    | WEAK_PASSWORD
                    | INVALID_TOKEN
                    | INVALID_CREDENTIALS
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let claims = auth.0;
        let ChangePasswordRequest {
            current_password,
            new_password,
        } = body.0;
        if !passwords::is_acceptable(&new_password) {
            return Err(ApiError::WeakPassword.into());
        }
        let meta = state.client_meta(req);
        // Throttled like login: a stolen access token must not buy unlimited guesses of the
        // current password, nor unlimited argon2 work.
        let ip = meta.ip.clone().unwrap_or_default();
        state.throttle(&state.limits.login_ip, &ip, "password")?;
        let wait = state.limits.password_user.wait_secs(&claims.sub);
        if wait > 0 {
            state
                .metrics
                .rate_limited
                .with_label_values(&["password"])
                .inc();
            return Err(ApiError::RateLimited {
                retry_after_secs: wait,
            }
            .into());
        }
        let user = state
            .store
            .user_by_id(&claims.sub)
            .await?
            .ok_or(ApiError::InvalidToken)?;
        let ok = state
            .hasher
            .verify(current_password.into_inner(), Some(user.password_hash))
            .await?;
        if !ok {
            let _ = state.limits.password_user.take(&claims.sub);
            return Err(ApiError::InvalidCredentials.into());
        }
        let hash = state.hasher.hash(new_password.into_inner()).await?;
        let ended = state
            .store
            .change_password(&user.id, &claims.sid, hash, state.clock.now(), &meta)
            .await?;
        state.revoke_in_memory(&ended, "password_change");
        Ok(NoContent::Done)
    }
}
