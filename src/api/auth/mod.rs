//! `/auth/register`, `/auth/login`, `/auth/refresh`, `/auth/logout`, `/auth/password`: parse,
//! call the sessions service, answer. The rules live in `crate::policy`, the steps of starting,
//! rotating and ending a session in `crate::sessions`.
use poem::Request;
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;

mod credentials;
pub(crate) mod login;
pub mod types;

use self::credentials::{Presented, logout_credentials, presented_refresh_token};
use self::types::*;
use super::{AppState, BearerAuth, NoContent, Tag};
use crate::api::error::codes::*;
use crate::api::error::{ApiError, Errors};
use crate::metrics::LoginOutcome;
use crate::passwords;
use crate::policy;
use crate::sessions::{Issued, Refreshed};
use crate::store::NewUser;

type RegisterErrors = Errors<
    {
        INVALID_REQUEST
            | INVALID_EMAIL
            | WEAK_PASSWORD
            | EMAIL_TAKEN
            | RATE_LIMITED
            | SERVICE_UNAVAILABLE
    },
>;
type LoginErrors = Errors<
    {
        INVALID_REQUEST
            | INVALID_CREDENTIALS
            | EMAIL_NOT_VERIFIED
            | CSRF_REJECTED
            | RATE_LIMITED
            | SERVICE_UNAVAILABLE
    },
>;
type RefreshErrors = Errors<
    {
        INVALID_REQUEST
            | AMBIGUOUS_REFRESH_TOKEN
            | INVALID_REFRESH_TOKEN
            | CSRF_REJECTED
            | RATE_LIMITED
            | SERVICE_UNAVAILABLE
    },
>;
type LogoutErrors = Errors<
    {
        INVALID_REQUEST
            | AMBIGUOUS_REFRESH_TOKEN
            | INVALID_TOKEN
            | CSRF_REJECTED
            | SERVICE_UNAVAILABLE
    },
>;
type PasswordErrors = Errors<
    {
        INVALID_REQUEST
            | WEAK_PASSWORD
            | INVALID_TOKEN
            | INVALID_CREDENTIALS
            | RATE_LIMITED
            | SERVICE_UNAVAILABLE
    },
>;

/// The answer carrying freshly issued tokens, in the delivery mode asked for.
fn answer(
    state: &AppState,
    issued: Issued,
    delivery: Delivery,
    device_token: Option<String>,
) -> TokenIssued {
    let refresh_expires_in = (issued.session.expires_at() - state.clock.now()).max(0);
    let token = issued.refresh.expose().to_owned();
    let (body_token, cookie) = match delivery {
        Delivery::Body => (Some(token), None),
        Delivery::Cookie if issued.session.persistent => (
            None,
            Some(state.http.cookies.set(&token, refresh_expires_in)),
        ),
        Delivery::Cookie => (None, Some(state.http.cookies.set_until_closed(&token))),
    };
    TokenIssued::Ok(
        Json(TokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer".to_owned(),
            expires_in: issued.expires_in,
            session_id: issued.session.id,
            refresh_expires_in,
            refresh_token: body_token,
            device_token,
        }),
        cookie,
    )
}

/// Register, log in, refresh, log out, change the password.
#[derive(Default)]
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
    ) -> Result<RegisterResponse, RegisterErrors> {
        let ip = state.client_meta(req).ip.unwrap_or_default();
        state.throttle(&state.limits.register_ip, &ip, "register")?;
        let email = policy::normalize_email(&body.email).ok_or(ApiError::InvalidEmail)?;
        if !passwords::is_acceptable(&body.password) {
            return Err(ApiError::WeakPassword.into());
        }
        let password_hash = state.hasher.hash(body.0.password.into_inner()).await?;
        let user_id = uuid::Uuid::new_v4().to_string();
        let user = NewUser {
            id: user_id.clone(),
            email: email.clone(),
            password_hash,
            now: state.clock.now(),
            email_verified: false,
            created_by: None,
        };
        if !state.sessions.store().create_user(user).await? {
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
    ) -> Result<TokenIssued, LoginErrors> {
        state.http.origins.check_origin(req)?;
        let LoginRequest {
            email,
            password,
            delivery,
            device_token,
            remember,
        } = body.0;
        let attempt = login::throttle(&state, req, &email, device_token.0.as_deref())?;
        let user = login::check_password(&state, &attempt, &email, password.into_inner()).await?;
        // Only once the password was right: the answer tells nothing to who does not know it.
        if state.require_verified_email && !user.email_verified {
            return Err(ApiError::EmailNotVerified.into());
        }
        // `None`: the password changed or the account was disabled while the hash was being
        // checked; the login verified a credential that no longer holds.
        let remember = remember.0.unwrap_or(true);
        let opened = state.sessions.open(&user, attempt.meta.clone(), remember);
        let Some(issued) = opened.await? else {
            state.metrics.login(LoginOutcome::InvalidCredentials);
            return Err(ApiError::InvalidCredentials.into());
        };
        state.metrics.login(LoginOutcome::Success);
        let device = state
            .devices
            .issue(&attempt.account, state.clock.now())
            .map_err(|e| ApiError::internal("OS random number generator", &e))?;
        let delivery = delivery.0.unwrap_or_default();
        Ok(answer(&state, issued, delivery, Some(device)))
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
    ) -> Result<TokenIssued, RefreshErrors> {
        let meta = state.client_meta(req);
        let ip = meta.ip.clone().unwrap_or_default();
        state.throttle(&state.limits.refresh_ip, &ip, "refresh")?;
        let (raw, delivery) = match presented_refresh_token(&state, req, body.0)? {
            Some(Presented::Body(t)) => (t, Delivery::Body),
            Some(Presented::Cookie(t)) => (t, Delivery::Cookie),
            None => (String::new(), Delivery::Body),
        };
        match state.sessions.refresh(&raw, meta).await? {
            Refreshed::Issued(issued) => Ok(answer(&state, issued, delivery, None)),
            Refreshed::Refused => Err(ApiError::InvalidRefreshToken.into()),
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
    ) -> Result<LoggedOut, LogoutErrors> {
        let creds = logout_credentials(&state, req, &auth, body.0)?;
        let scope = policy::LogoutScope::from(scope.0.unwrap_or_default());
        let meta = state.client_meta(req);
        let sessions = &state.sessions;
        let found = match creds.refresh.as_deref() {
            Some(raw) => sessions.of_refresh_token(raw).await?,
            None => None,
        };
        // A rotated refresh token outside its grace window is reuse wherever it is presented.
        let reused = found
            .as_ref()
            .filter(|(_, used_at)| sessions.is_reuse(*used_at));
        if let Some((s, _)) = reused {
            sessions.end_reused(s, &meta).await?;
        }
        // The access token decides whose sessions `scope` covers; without a live one, the
        // refresh token does. A refresh token naming another live session ends that one too.
        let mut also = None;
        match (&creds.claims, &found) {
            (Some(c), rt) => {
                sessions
                    .logout(&c.user(), &c.session(), scope, true, &meta)
                    .await?;
                also = rt
                    .as_ref()
                    .filter(|(s, _)| s.id != c.sid && reused.is_none());
            }
            (None, Some(_)) if reused.is_some() => {}
            (None, Some((s, used_at))) => {
                let current = used_at.is_none();
                sessions
                    .logout(&s.user(), &s.session(), scope, current, &meta)
                    .await?;
            }
            (None, None) if creds.refresh.is_some() => {}
            (None, None) => return Err(ApiError::InvalidToken.into()),
        }
        if let Some((s, _)) = also {
            let local = policy::LogoutScope::Local;
            sessions
                .logout(&s.user(), &s.session(), local, false, &meta)
                .await?;
        }
        let foreign = state.http.origins.check_origin(req).is_err();
        let unused_live = match creds.unchecked_cookie.as_deref() {
            Some(c) => sessions.of_refresh_token(c).await?.is_some(),
            None => false,
        };
        let expire = policy::logout_expires_cookie(foreign, unused_live);
        Ok(LoggedOut::NoContent(
            expire.then(|| state.http.cookies.expire()),
        ))
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
    ) -> Result<NoContent, PasswordErrors> {
        let claims = auth.0;
        let ChangePasswordRequest {
            current_password,
            new_password,
        } = body.0;
        if !passwords::is_acceptable(&new_password) {
            return Err(ApiError::WeakPassword.into());
        }
        let meta = state.client_meta(req);
        let current = current_password.into_inner();
        login::check_current_password(&state, &meta, &claims, current, "password").await?;
        let hash = state.hasher.hash(new_password.into_inner()).await?;
        state
            .sessions
            .change_password(&claims.user(), &claims.session(), hash, &meta)
            .await?;
        Ok(NoContent::Done)
    }
}
