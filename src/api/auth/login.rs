//! Login's throttling and password check: who may try, what a failure costs whom.
use poem::Request;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::metrics::LoginOutcome;
use crate::policy;
use crate::ratelimit::Limiter;
use crate::store::{ClientMeta, EventKind, User};
use crate::tokens::AccessClaims;

/// A login attempt: the buckets its failure would count against.
pub struct Attempt<'a> {
    pub account: String,
    pub meta: ClientMeta,
    failures: Vec<(&'a Limiter, String)>,
}

/// Checks the throttles of a login for `email` (as typed). A client that shows a device token
/// of this account counts its failures against that token; every other client against the
/// account, from its address and from all. Keys are the address as typed, whether or not it
/// exists, so a `429` says nothing about accounts.
pub fn throttle<'a>(
    state: &'a AppState,
    req: &Request,
    email: &str,
    device_token: Option<&str>,
) -> Result<Attempt<'a>, ApiError> {
    let meta = state.client_meta(req);
    let ip = meta.ip.clone().unwrap_or_default();
    let account = policy::throttle_key(email);
    let device = device_token.and_then(|t| state.devices.verify(t, &account, state.clock.now()));
    let l = &state.limits;
    let failures = match device {
        Some(d) => vec![(&l.login_device, format!("{account}|{d}"))],
        None => vec![
            (&l.login_account_ip, format!("{account}|{ip}")),
            (&l.login_account, account.clone()),
        ],
    };
    // The per-address bucket is taken first, as before: an attempt it refuses costs no look
    // at the failure buckets.
    let refused = state.throttle(&l.login_ip, &ip, "login").and_then(|()| {
        let wait = failures.iter().map(|(l, k)| l.wait_secs(k)).max();
        state.refuse_for(wait.unwrap_or(0), "login")
    });
    if let Err(err) = refused {
        state.metrics.login(LoginOutcome::RateLimited);
        return Err(err);
    }
    Ok(Attempt {
        account,
        meta,
        failures,
    })
}

/// The user whose password `password` is, or `invalid_credentials` after the same work as for
/// a known account (an unknown or disabled one is checked against the dummy hash).
pub async fn check_password(
    state: &AppState,
    attempt: &Attempt<'_>,
    email: &str,
    password: String,
) -> Result<User, ApiError> {
    let store = state.sessions.store();
    let found = match policy::normalize_email(email) {
        Some(email) => store.user_by_email(&email).await?,
        None => None,
    };
    let user = found.clone().filter(|u| !u.disabled);
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let ok = state.hasher.verify(password, phc).await?;
    if let Some(user) = user.filter(|_| ok) {
        return Ok(user);
    }
    if let Some(u) = found.filter(|u| state.limits.failure_events.take(&u.id).is_ok()) {
        let meta = &attempt.meta;
        tracing::warn!(user_id = %u.id, ip = meta.ip.as_deref().unwrap_or("-"), "login failed");
        // Recorded after answering, so that a known account's failure costs the client no more
        // time than an unknown one's (no timing oracle).
        let (store, meta, now) = (store.clone(), meta.clone(), state.clock.now());
        tokio::spawn(async move {
            let kind = EventKind::LoginFailed;
            if let Err(e) = store.record_event(&u.id, kind, now, None, &meta).await {
                tracing::warn!(error = %e, "could not record login_failed");
            }
        });
    }
    for (limiter, key) in &attempt.failures {
        let _ = limiter.take(key);
    }
    state.metrics.login(LoginOutcome::InvalidCredentials);
    Err(ApiError::InvalidCredentials)
}

/// The caller's account, once `password` proved to be its current password (for changing the
/// password or deleting the account). Throttled like login: a stolen access token must not buy
/// unlimited guesses of the current password, nor unlimited argon2 work.
pub async fn check_current_password(
    state: &AppState,
    meta: &ClientMeta,
    claims: &AccessClaims,
    password: String,
    operation: &str,
) -> Result<User, ApiError> {
    let ip = meta.ip.clone().unwrap_or_default();
    state.throttle(&state.limits.login_ip, &ip, operation)?;
    let wait = state.limits.password_user.wait_secs(&claims.sub);
    state.refuse_for(wait, operation)?;
    let user = state
        .sessions
        .store()
        .user_by_id(&claims.sub)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    let phc = Some(user.password_hash.clone());
    if !state.hasher.verify(password, phc).await? {
        let _ = state.limits.password_user.take(&claims.sub);
        return Err(ApiError::InvalidCredentials);
    }
    Ok(user)
}
