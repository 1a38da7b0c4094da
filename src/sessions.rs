//! The sessions service: the one door through which a session starts, rotates and ends.
//!
//! Every way a session ends (a logout of any scope, `DELETE /auth/sessions/{id}`, reuse, a
//! password change, the per-user limit, an operator's command) goes through [`Sessions::end`],
//! which runs the store's transaction and then mirrors what ended into the in-memory revoked set
//! (this instance refuses the access tokens at once), counts it and logs it. A caller cannot
//! forget a step, because it takes none of them itself. The HTTP handlers, the command line and
//! the background tasks hold a `Sessions`; the rules it applies are `crate::policy`'s.
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::metrics::{Metrics, RefreshOutcome};
use crate::policy::{self, LogoutScope};
use crate::store::admin::{Patched, UserPatch};
use crate::store::{
    ClientMeta, EndReason, EndedSession, NewSession, Profile, RotateRequest, Rotation, SessionId,
    SessionInfo, SessionScope, Store, StoreError, Successor, User, UserId,
};
use crate::tokens::access::Subject;
use crate::tokens::{AccessTokens, RefreshToken, RevokedSet};

/// Why the service could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS random number generator, sealing or signing failed: a bug or a broken host.
    #[error("{0}")]
    Internal(String),
}

/// The settings sessions are opened and rotated with.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub refresh_idle_secs: i64,
    pub session_max_secs: i64,
    pub reuse_grace_secs: i64,
    pub max_sessions_per_user: u64,
    /// Absolute limit of a session opened with `"remember": false`.
    pub short_session_max_secs: i64,
}

/// Tokens just issued for a session.
#[derive(Debug)]
pub struct Issued {
    pub session: SessionInfo,
    /// The session's current refresh token.
    pub refresh: RefreshToken,
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// What presenting a refresh token came to.
#[derive(Debug)]
pub enum Refreshed {
    /// Rotated, or (within the grace window) answered with the session's current token.
    Issued(Issued),
    /// Refused: unknown, expired, revoked, or reuse (then the session has ended).
    Refused,
}

/// The server's (or a command's) handle on sessions. Cheap to clone.
#[derive(Clone)]
pub struct Sessions(Arc<Inner>);

struct Inner {
    store: Store,
    access: Option<AccessTokens>,
    revoked: Option<Arc<RevokedSet>>,
    /// Rung after every end, so that held feed requests answer at once.
    feed: Option<Arc<crate::feed::Feed>>,
    metrics: Option<Arc<Metrics>>,
    clock: SharedClock,
    rules: Option<Rules>,
}

impl Sessions {
    /// A server's service: it issues tokens, mirrors every end in `revoked` and rings `feed`.
    pub fn new(
        store: Store,
        access: AccessTokens,
        revoked: Arc<RevokedSet>,
        feed: Arc<crate::feed::Feed>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        rules: Rules,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            access: Some(access),
            revoked: Some(revoked),
            feed: Some(feed),
            metrics: Some(metrics),
            clock,
            rules: Some(rules),
        }))
    }

    /// An admin command's service: it ends sessions in the database only; running servers pick
    /// the ends up within one sync interval.
    pub fn offline(store: Store, clock: SharedClock) -> Self {
        Self(Arc::new(Inner {
            store,
            access: None,
            revoked: None,
            feed: None,
            metrics: None,
            clock,
            rules: None,
        }))
    }

    /// The store (for reads that end nothing: lists, lookups).
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    fn now(&self) -> i64 {
        self.0.clock.now()
    }

    fn rules(&self) -> Result<Rules, ServiceError> {
        self.0
            .rules
            .ok_or_else(|| ServiceError::Internal("no session rules offline".into()))
    }

    /// Opens a session for `user`, whose password hash `user.password_hash` the caller just
    /// verified. `None` when that hash is no longer the user's, or the user was disabled, by
    /// the time the session commits. Sessions past the per-user limit (the user's own, else the
    /// server's) end here. `remember: false` opens a short session for a shared computer.
    pub async fn open(
        &self,
        user: &User,
        meta: ClientMeta,
        remember: bool,
    ) -> Result<Option<Issued>, ServiceError> {
        let rules = self.rules()?;
        let refresh = mint()?;
        let now = self.now();
        let max_secs = if remember {
            rules.session_max_secs
        } else {
            rules.short_session_max_secs.min(rules.session_max_secs)
        };
        let opened = self
            .0
            .store
            .create_session(NewSession {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: user.id.clone(),
                now,
                idle_secs: rules.refresh_idle_secs,
                max_secs,
                meta,
                token_hash: refresh.hash(),
                verified_password_hash: user.password_hash.clone(),
                max_sessions: user.max_sessions.unwrap_or(rules.max_sessions_per_user),
                persistent: remember,
            })
            .await?;
        let Some(opened) = opened else {
            return Ok(None);
        };
        self.mirror(&opened.evicted, EndReason::Evicted);
        Ok(Some(self.issue(
            opened.session,
            &user.profile(),
            refresh,
        )?))
    }

    /// Presents a refresh token: rotates it, answers a grace replay with the session's
    /// current token, or refuses it (ending the session on reuse).
    pub async fn refresh(&self, raw: &str, meta: ClientMeta) -> Result<Refreshed, ServiceError> {
        let Some(presented) = RefreshToken::parse(raw) else {
            self.count(RefreshOutcome::Rejected);
            return Ok(Refreshed::Refused);
        };
        let rules = self.rules()?;
        let successor = mint()?;
        let sealed = presented
            .seal(&successor)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let outcome = self
            .0
            .store
            .rotate(RotateRequest {
                presented: presented.hash(),
                successor: Successor {
                    hash: successor.hash(),
                    sealed,
                },
                now: self.now(),
                idle_secs: rules.refresh_idle_secs,
                grace_secs: rules.reuse_grace_secs,
                meta: meta.clone(),
            })
            .await?;
        match outcome {
            Rotation::Rotated { session, profile } => {
                self.count(RefreshOutcome::Rotated);
                Ok(Refreshed::Issued(self.issue(session, &profile, successor)?))
            }
            Rotation::Replayed {
                session,
                profile,
                chain,
            } => {
                // Each link opens with the token before it: only a holder of the presented
                // token can follow the chain to the current one.
                let mut current = presented;
                for sealed in &chain {
                    match current.open(sealed) {
                        Some(next) => current = next,
                        None => {
                            self.count(RefreshOutcome::Rejected);
                            return Ok(Refreshed::Refused);
                        }
                    }
                }
                self.count(RefreshOutcome::GraceReplay);
                Ok(Refreshed::Issued(self.issue(session, &profile, current)?))
            }
            Rotation::Reused(ended) => {
                self.reuse_detected(
                    ended.user_id.as_str(),
                    ended.session_id.as_str(),
                    &meta,
                    "refresh",
                );
                self.mirror(&[ended], EndReason::Reused);
                Ok(Refreshed::Refused)
            }
            Rotation::Invalid => {
                self.count(RefreshOutcome::Rejected);
                Ok(Refreshed::Refused)
            }
        }
    }

    /// The live session a refresh token (current or rotated) belongs to, with when the token
    /// was rotated (`None`: it is the current one). Anything that is no such token: `None`.
    pub async fn of_refresh_token(
        &self,
        raw: &str,
    ) -> Result<Option<(SessionInfo, Option<i64>)>, ServiceError> {
        let Some(token) = RefreshToken::parse(raw) else {
            return Ok(None);
        };
        Ok(self
            .0
            .store
            .session_of_token(token.hash(), self.now())
            .await?)
    }

    /// Is a refresh token rotated at `used_at` (`None`: current) reuse if it comes back now,
    /// rather than a racing tab within its grace window?
    pub fn is_reuse(&self, used_at: Option<i64>) -> bool {
        let grace = self.0.rules.map_or(0, |r| r.reuse_grace_secs);
        policy::is_reuse(used_at, self.now(), grace)
    }

    /// Ends the user's sessions in `scope` for `reason`: the one door (see the module doc).
    pub async fn end(
        &self,
        user_id: &UserId,
        scope: SessionScope,
        reason: EndReason,
        meta: &ClientMeta,
    ) -> Result<Vec<EndedSession>, ServiceError> {
        let ended = self
            .0
            .store
            .end_sessions(user_id, scope, reason, self.now(), meta)
            .await?;
        self.mirror(&ended, reason);
        Ok(ended)
    }

    /// A logout from `session` of `user`: `scope` as granted to the credential that asked
    /// (`by_current`: a live access token or the current refresh token).
    pub async fn logout(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        scope: LogoutScope,
        by_current: bool,
        meta: &ClientMeta,
    ) -> Result<Vec<EndedSession>, ServiceError> {
        let scope = scope.granted(by_current);
        let mut ended = Vec::new();
        if scope.ends_own() {
            let one = SessionScope::One(session_id.clone());
            ended.extend(self.end(user_id, one, EndReason::Logout, meta).await?);
        }
        if scope.ends_others() {
            let others = SessionScope::AllExcept(session_id.clone());
            ended.extend(
                self.end(user_id, others, EndReason::LogoutElsewhere, meta)
                    .await?,
            );
        }
        Ok(ended)
    }

    /// Ends `session` because one of its rotated refresh tokens came back after its grace
    /// window somewhere else than at refresh (at logout).
    pub async fn end_reused(
        &self,
        session: &SessionInfo,
        meta: &ClientMeta,
    ) -> Result<(), ServiceError> {
        let one = SessionScope::One(session.session());
        let ended = self
            .end(&session.user(), one, EndReason::Reused, meta)
            .await?;
        if !ended.is_empty() {
            self.reuse_detected(&session.user_id, &session.id, meta, "logout");
        }
        Ok(())
    }

    /// Sets the user's password hash and ends every other session, in one transaction.
    pub async fn change_password(
        &self,
        user_id: &UserId,
        keep_session: &SessionId,
        password_hash: String,
        meta: &ClientMeta,
    ) -> Result<(), ServiceError> {
        let ended = self
            .0
            .store
            .change_password(user_id, keep_session, password_hash, self.now(), meta)
            .await?;
        self.mirror(&ended, EndReason::PasswordChanged);
        Ok(())
    }

    /// Disables or enables the user with `email`; disabling ends every session. `None` when
    /// there is no such user.
    pub async fn set_disabled(
        &self,
        email: &str,
        disabled: bool,
    ) -> Result<Option<Vec<EndedSession>>, ServiceError> {
        let ended = self
            .0
            .store
            .set_user_disabled(email, disabled, self.now())
            .await?;
        if let Some(ended) = &ended {
            self.mirror(ended, EndReason::Disabled);
        }
        Ok(ended)
    }

    /// Applies an admin's `patch` to the user; a disable ends every session, here as in every
    /// end.
    pub async fn update_user(
        &self,
        user_id: &UserId,
        patch: UserPatch,
        meta: &ClientMeta,
    ) -> Result<Patched, ServiceError> {
        let patched = self
            .0
            .store
            .update_user(user_id, patch, self.now(), meta)
            .await?;
        if let Patched::Updated { ended, .. } = &patched {
            self.mirror(ended, EndReason::Disabled);
        }
        Ok(patched)
    }

    /// Spends a password-reset token: the new password hash, every session ended (see
    /// `Store::reset_password`). `false` when the token opens nothing.
    pub async fn reset_password(
        &self,
        token_hash: Vec<u8>,
        password_hash: String,
        meta: &ClientMeta,
        notice: impl FnOnce(&str) -> crate::store::outbox::Mail,
    ) -> Result<bool, ServiceError> {
        let reset = self
            .0
            .store
            .reset_password(token_hash, password_hash, self.now(), meta, notice)
            .await?;
        if let Some(ended) = &reset {
            self.mirror(ended, EndReason::PasswordReset);
        }
        Ok(reset.is_some())
    }

    /// Deletes the user after ending every session (see `Store::delete_user`). `false` when
    /// there is no such user.
    pub async fn delete_user(
        &self,
        user_id: &UserId,
        meta: &ClientMeta,
    ) -> Result<bool, ServiceError> {
        let deleted = self.0.store.delete_user(user_id, self.now(), meta).await?;
        if let Some(ended) = &deleted {
            self.mirror(ended, EndReason::Deleted);
        }
        Ok(deleted.is_some())
    }

    fn issue(
        &self,
        session: SessionInfo,
        profile: &Profile,
        refresh: RefreshToken,
    ) -> Result<Issued, ServiceError> {
        let access = self
            .0
            .access
            .as_ref()
            .ok_or_else(|| ServiceError::Internal("no signing offline".into()))?;
        let (access_token, expires_in) = access
            .sign(&Subject {
                user_id: &session.user_id,
                email: &profile.email,
                email_verified: profile.email_verified,
                app_metadata: profile.app_metadata.as_deref(),
                session_id: &session.id,
                session_expires_at: session.absolute_expires_at,
            })
            .map_err(|e| ServiceError::Internal(format!("signing failed: {e}")))?;
        Ok(Issued {
            session,
            refresh,
            access_token,
            expires_in,
        })
    }

    /// What follows every end: this instance refuses the sessions' access tokens from now on,
    /// the metric counts them, the log says so, held feed requests wake.
    fn mirror(&self, ended: &[EndedSession], reason: EndReason) {
        for e in ended {
            if let Some(revoked) = &self.0.revoked {
                revoked.insert(e.session_id.as_str(), e.horizon);
            }
            // An ordinary logout is no alert; reuse logs its own warning.
            tracing::info!(
                user_id = %e.user_id,
                session_id = %e.session_id,
                cause = reason.label(),
                "session ended"
            );
        }
        if let Some(m) = &self.0.metrics {
            m.revoked(reason.label(), ended.len());
        }
        if let Some(feed) = &self.0.feed
            && !ended.is_empty()
        {
            feed.ring();
        }
    }

    fn reuse_detected(&self, user_id: &str, session_id: &str, meta: &ClientMeta, at: &str) {
        tracing::warn!(
            user_id = %user_id,
            session_id = %session_id,
            ip = meta.ip.as_deref().unwrap_or("-"),
            at,
            "refresh token reused: session revoked"
        );
        self.count(RefreshOutcome::ReuseDetected);
    }

    fn count(&self, outcome: RefreshOutcome) {
        if let Some(m) = &self.0.metrics {
            m.refresh(outcome);
        }
    }
}

fn mint() -> Result<RefreshToken, ServiceError> {
    RefreshToken::mint()
        .map_err(|e| ServiceError::Internal(format!("OS random number generator failed: {e}")))
}
