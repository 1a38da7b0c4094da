//! Account recovery and verified email: `/auth/password/forgot`, `/auth/password/reset`,
//! `/auth/email/verify/send`, `/auth/email/verify`, `/auth/email/change`,
//! `/auth/email/change/confirm`. Links carry a one-time token in their fragment; only the
//! app's POST spends it. Mail goes through the outbox: no answer waits for a mail server.
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::login::check_current_password;
use super::strict::{NewEmail, NewPassword, StrictString};
use super::{AppState, BearerAuth, NoContent, Tag};
use crate::api::error::codes::*;
use crate::api::error::{ApiError, Errors};
use crate::mail::Kind;
use crate::passwords;
use crate::policy;
use crate::store::email_tokens::{EmailChanged, NewToken, Purpose};
use crate::store::{ClientMeta, EventKind, User};
use crate::tokens::email as email_token;

/// Asking for a reset link.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ForgotRequest {
    /// The account's email, as the user types it.
    #[oai(validator(max_length = 320))]
    pub email: StrictString,
}

/// Setting a new password with a mailed token.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ResetRequest {
    /// The `token` of the link's fragment.
    #[oai(validator(max_length = 128))]
    pub token: StrictString,
    /// 8 to 1024 characters, not a common password; otherwise `weak_password` (and the token
    /// stays unspent).
    pub new_password: NewPassword,
}

/// A mailed token.
#[derive(Debug, Object)]
#[oai(example)]
pub struct TokenRequest {
    /// The `token` of the link's fragment.
    #[oai(validator(max_length = 128))]
    pub token: StrictString,
}

/// Asking to move the account to another address.
#[derive(Debug, Object)]
#[oai(example)]
pub struct EmailChangeRequest {
    /// The new address (normalised like at registration).
    pub new_email: NewEmail,
    /// The account's current password.
    #[oai(validator(max_length = 4096))]
    pub current_password: StrictString,
}

impl poem_openapi::types::Example for ForgotRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.com".into(),
        }
    }
}

impl poem_openapi::types::Example for ResetRequest {
    fn example() -> Self {
        Self {
            token: "Zk3q9V2xJ0bC7tWm1pR4sY8uE6oA5nH2dL0gK9fT3jQ".into(),
            new_password: "a longer and newer passphrase".into(),
        }
    }
}

impl poem_openapi::types::Example for TokenRequest {
    fn example() -> Self {
        Self {
            token: "Zk3q9V2xJ0bC7tWm1pR4sY8uE6oA5nH2dL0gK9fT3jQ".into(),
        }
    }
}

impl poem_openapi::types::Example for EmailChangeRequest {
    fn example() -> Self {
        Self {
            new_email: "ada.lovelace@example.org".into(),
            current_password: "correct horse battery staple".into(),
        }
    }
}

/// An answer that promises mail, maybe.
#[derive(ApiResponse)]
pub enum Accepted {
    /// Accepted. Mail, if any, follows within seconds.
    #[oai(status = 202)]
    Accepted,
}

/// Account recovery and verified email.
#[derive(Default)]
pub struct RecoveryApi;

#[OpenApi(tag = "Tag::Auth")]
impl RecoveryApi {
    /// Ask for a password-reset link
    ///
    /// Mails a link to reset the password to the account with this address, if there is a live
    /// one. The answer is the same `202` with no body, after the same work, whether or not such
    /// an account exists: the lookup and the mail happen after answering. The link opens the
    /// app (`AUTHD_APP_URL`) with `#action=reset-password&token=...` and works once, for 30
    /// minutes; asking again makes the earlier link invalid. Throttled per address and per
    /// client.
    #[oai(
        path = "/auth/password/forgot",
        method = "post",
        operation_id = "requestPasswordReset"
    )]
    async fn forgot(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<ForgotRequest>,
    ) -> Result<Accepted, Errors<{ INVALID_REQUEST | RATE_LIMITED }>> {
        let meta = state.client_meta(req);
        throttle_client(&state, &state.limits.mail_ip, &meta, "password_forgot")?;
        let typed = body.0.email.into_inner();
        let key = policy::throttle_key(&typed);
        state.throttle(&state.limits.mail_recipient, &key, "password_forgot")?;
        // Everything that depends on the account happens after answering: the answer's bytes
        // and timing cannot tell whether it exists.
        let state = state.0.clone();
        tokio::spawn(async move {
            if let Err(e) = send_reset_link(&state, &typed, &meta).await {
                tracing::warn!(error = %e, "password reset link not queued");
            }
        });
        Ok(Accepted::Accepted)
    }

    /// Set a new password with a reset link
    ///
    /// Spends the link's token and sets the password; every session of the account ends at
    /// once (its access tokens are refused here and by every verifier; feed reason
    /// `password_reset`), `password_reset` is recorded and the account is mailed a notice. Any
    /// problem with the token (unknown, spent, expired, superseded, of another purpose,
    /// garbage) is the one `400 invalid_email_token`.
    #[oai(
        path = "/auth/password/reset",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<ResetRequest>,
    ) -> Result<
        NoContent,
        Errors<
            {
                INVALID_REQUEST
                    | WEAK_PASSWORD
                    | INVALID_EMAIL_TOKEN
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let meta = state.client_meta(req);
        let hash = spendable(&state, &meta, &body.0.token)?;
        let new_password = body.0.new_password;
        if !passwords::is_acceptable(&new_password) {
            return Err(ApiError::WeakPassword.into());
        }
        let phc = state.hasher.hash(new_password.into_inner()).await?;
        let mailer = state.mailer.clone();
        let notice = |to: &str| mailer.compose(Kind::PasswordChanged, to, None, None);
        if !state
            .sessions
            .reset_password(hash, phc, &meta, notice)
            .await?
        {
            return Err(ApiError::InvalidEmailToken.into());
        }
        state.mailer.bell.notify_one();
        Ok(NoContent::Done)
    }

    /// Ask for an email-verification link
    ///
    /// Mails a link that verifies the account's address (24 hours, once; asking again makes the
    /// earlier link invalid). Nothing is sent when the address is already verified. Throttled
    /// per account.
    #[oai(
        path = "/auth/email/verify/send",
        method = "post",
        operation_id = "sendEmailVerification"
    )]
    async fn send_verification(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
    ) -> Result<Accepted, Errors<{ INVALID_TOKEN | RATE_LIMITED | SERVICE_UNAVAILABLE }>> {
        let claims = auth.0;
        let meta = state.client_meta(req);
        throttle_client(&state, &state.limits.mail_ip, &meta, "email_verify")?;
        state.throttle(&state.limits.mail_recipient, &claims.sub, "email_verify")?;
        let user = current_user(&state, &claims.sub).await?;
        if !user.email_verified {
            let minted = mint()?;
            let link = state.mailer.link(Kind::VerifyEmail, &minted.token);
            let mail = state
                .mailer
                .compose(Kind::VerifyEmail, &user.email, Some(&link), None);
            issue(
                &state,
                &user,
                Purpose::EmailVerification,
                &user.email,
                minted.hash,
                vec![mail],
                None,
                &meta,
            )
            .await?;
        }
        Ok(Accepted::Accepted)
    }

    /// Verify the email with a link
    ///
    /// Spends the link's token: the account's address is verified (access tokens say
    /// `email_verified: true` from their next refresh). A link for an address the account no
    /// longer has opens nothing. Any problem with the token is `400 invalid_email_token`.
    #[oai(
        path = "/auth/email/verify",
        method = "post",
        operation_id = "verifyEmail"
    )]
    async fn verify(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<TokenRequest>,
    ) -> Result<
        NoContent,
        Errors<{ INVALID_REQUEST | INVALID_EMAIL_TOKEN | RATE_LIMITED | SERVICE_UNAVAILABLE }>,
    > {
        let meta = state.client_meta(req);
        let hash = spendable(&state, &meta, &body.0.token)?;
        let now = state.clock.now();
        if state
            .store()
            .verify_email(hash, now, &meta)
            .await?
            .is_none()
        {
            return Err(ApiError::InvalidEmailToken.into());
        }
        Ok(NoContent::Done)
    }

    /// Ask to change the email
    ///
    /// Needs the current password (throttled like login). Mails a confirmation link to the new
    /// address (24 hours, once) and a notice to the current one; nothing changes until the new
    /// address confirms. `409 email_taken` when another account (or this one) has the address.
    #[oai(
        path = "/auth/email/change",
        method = "post",
        operation_id = "requestEmailChange"
    )]
    async fn change(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        body: Json<EmailChangeRequest>,
    ) -> Result<
        Accepted,
        Errors<
            {
                INVALID_REQUEST
                    | INVALID_EMAIL
                    | EMAIL_TAKEN
                    | INVALID_TOKEN
                    | INVALID_CREDENTIALS
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let claims = auth.0;
        let meta = state.client_meta(req);
        let EmailChangeRequest {
            new_email,
            current_password,
        } = body.0;
        let new_email = policy::normalize_email(&new_email).ok_or(ApiError::InvalidEmail)?;
        let password = current_password.into_inner();
        let user = check_current_password(&state, &meta, &claims, password, "email_change").await?;
        if state.store().user_by_email(&new_email).await?.is_some() {
            return Err(ApiError::EmailTaken.into());
        }
        throttle_client(&state, &state.limits.mail_ip, &meta, "email_change")?;
        state.throttle(&state.limits.mail_recipient, &claims.sub, "email_change")?;
        let minted = mint()?;
        let link = state.mailer.link(Kind::EmailChangeConfirm, &minted.token);
        let mailer = &state.mailer;
        let mails = vec![
            mailer.compose(
                Kind::EmailChangeConfirm,
                &new_email,
                Some(&link),
                Some(&new_email),
            ),
            mailer.compose(Kind::EmailChangeNotice, &user.email, None, Some(&new_email)),
        ];
        let event = Some(EventKind::EmailChangeRequested);
        issue(
            &state,
            &user,
            Purpose::EmailChange,
            &new_email,
            minted.hash,
            mails,
            event,
            &meta,
        )
        .await?;
        Ok(Accepted::Accepted)
    }

    /// Confirm an email change with a link
    ///
    /// Spends the link's token: the account's address becomes the new one, verified; sessions
    /// stay, and access tokens carry the new address from their next refresh. `409
    /// email_taken` when another account took the address meanwhile (the link stays good).
    /// Any problem with the token is `400 invalid_email_token`.
    #[oai(
        path = "/auth/email/change/confirm",
        method = "post",
        operation_id = "confirmEmailChange"
    )]
    async fn confirm_change(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<TokenRequest>,
    ) -> Result<
        NoContent,
        Errors<
            {
                INVALID_REQUEST
                    | INVALID_EMAIL_TOKEN
                    | EMAIL_TAKEN
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let meta = state.client_meta(req);
        let hash = spendable(&state, &meta, &body.0.token)?;
        let now = state.clock.now();
        match state.store().confirm_email_change(hash, now, &meta).await? {
            EmailChanged::Changed { .. } => Ok(NoContent::Done),
            EmailChanged::Invalid => Err(ApiError::InvalidEmailToken.into()),
            EmailChanged::Taken => Err(ApiError::EmailTaken.into()),
        }
    }
}

/// The hash of a presented token, after the per-client throttle; garbage is refused here like
/// any other bad token.
fn spendable(state: &AppState, meta: &ClientMeta, token: &str) -> Result<Vec<u8>, ApiError> {
    throttle_client(state, &state.limits.token_ip, meta, "email_token")?;
    email_token::parse(token).ok_or(ApiError::InvalidEmailToken)
}

/// `limiter` keyed on the client's address (every mail request, every token spent).
fn throttle_client(
    state: &AppState,
    limiter: &crate::ratelimit::Limiter,
    meta: &ClientMeta,
    operation: &str,
) -> Result<(), ApiError> {
    state.throttle(limiter, meta.ip.as_deref().unwrap_or_default(), operation)
}

pub(crate) fn mint() -> Result<email_token::Minted, ApiError> {
    email_token::mint().map_err(|e| ApiError::internal("OS random number generator", &e))
}

async fn current_user(state: &AppState, id: &str) -> Result<User, ApiError> {
    state
        .store()
        .user_by_id(id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(ApiError::InvalidToken)
}

/// Issues a token of `purpose` for `user` with its mails, and rings the sender.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn issue(
    state: &AppState,
    user: &User,
    purpose: Purpose,
    email: &str,
    hash: Vec<u8>,
    mails: Vec<crate::store::outbox::Mail>,
    event: Option<EventKind>,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    let new = NewToken {
        user_id: &user.id,
        purpose,
        email,
        hash,
        now: state.clock.now(),
        mails,
        event,
        meta,
    };
    if !state.store().issue_email_token(new).await? {
        return Err(ApiError::InvalidToken);
    }
    state.mailer.bell.notify_one();
    Ok(())
}

/// The background half of `forgot`: a reset link for the live account with `typed`, if any.
async fn send_reset_link(state: &AppState, typed: &str, meta: &ClientMeta) -> Result<(), ApiError> {
    let Some(email) = policy::normalize_email(typed) else {
        return Ok(());
    };
    let Some(user) = state
        .store()
        .user_by_email(&email)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(());
    };
    let minted = mint()?;
    let link = state.mailer.link(Kind::PasswordReset, &minted.token);
    // To the address stored for the account, never the one typed.
    let mail = state
        .mailer
        .compose(Kind::PasswordReset, &user.email, Some(&link), None);
    let event = Some(EventKind::PasswordResetRequested);
    issue(
        state,
        &user,
        Purpose::PasswordReset,
        &user.email,
        minted.hash,
        vec![mail],
        event,
        meta,
    )
    .await
}
