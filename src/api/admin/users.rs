//! `/admin/users`: find, create, read, edit and delete users, and end their sessions.
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::types::*;
use super::{AdminKey, decode_cursor, encode_cursor, page_size};
use crate::api::error::codes::*;
use crate::api::error::{ApiError, Errors};
use crate::api::strict::Patch;
use crate::api::{AppState, NoContent, Tag};
use crate::mail::Kind;
use crate::passwords;
use crate::policy;
use crate::store::admin::{Patched, UserPatch};
use crate::store::email_tokens::Purpose;
use crate::store::{EndReason, EventKind, NewUser, SessionScope, User, UserId};

/// Most sessions one answer lists (the most recently refreshed).
const MAX_LISTED_SESSIONS: u64 = 1000;

type ReadErrors = Errors<
    {
        INVALID_REQUEST
            | INVALID_SERVICE_KEY
            | INSUFFICIENT_SCOPE
            | NOT_FOUND
            | RATE_LIMITED
            | SERVICE_UNAVAILABLE
    },
>;
type ListErrors = Errors<
    {
        INVALID_REQUEST
            | INVALID_SERVICE_KEY
            | INSUFFICIENT_SCOPE
            | RATE_LIMITED
            | SERVICE_UNAVAILABLE
    },
>;
type WriteErrors = Errors<
    {
        INVALID_REQUEST
            | INVALID_EMAIL
            | WEAK_PASSWORD
            | EMAIL_TAKEN
            | INVALID_SERVICE_KEY
            | INSUFFICIENT_SCOPE
            | NOT_FOUND
            | RATE_LIMITED
            | SERVICE_UNAVAILABLE
    },
>;

/// `adminListUsers`' answer.
#[derive(ApiResponse)]
pub enum UserPageResponse {
    /// Users whose email starts with `query`, in email order.
    #[oai(status = 200)]
    Ok(Json<UserPage>),
}

/// An answer carrying one user.
#[derive(ApiResponse)]
pub enum UserResponse {
    /// The user as it is now.
    #[oai(status = 200)]
    Ok(Json<AdminUser>),
}

/// `adminCreateUser`'s answer.
#[derive(ApiResponse)]
pub enum UserCreatedResponse {
    /// The new user.
    #[oai(status = 201)]
    Created(Json<AdminUser>),
}

/// `adminListUserSessions`' answer.
#[derive(ApiResponse)]
pub enum SessionListResponse {
    /// The user's live sessions, most recently refreshed first.
    #[oai(status = 200)]
    Ok(Json<Vec<AdminSession>>),
}

/// `adminSendPasswordReset`'s answer.
#[derive(ApiResponse)]
pub enum PasswordResetResponse {
    /// The link was mailed to the user's address.
    #[oai(status = 202)]
    Mailed,
    /// The link, not mailed (`send: false`).
    #[oai(status = 200)]
    Link(Json<PasswordResetLink>),
}

/// Users and their sessions, for back offices.
#[derive(Default)]
pub struct AdminUsersApi;

#[OpenApi(tag = "Tag::Admin")]
impl AdminUsersApi {
    /// Find users
    ///
    /// Users whose email starts with `query` (folded as addresses are: trimmed, NFKC,
    /// lower-case, and a whole address exactly as stored; empty or left out: every user), in
    /// email order, a page at a time: follow `cursor` until
    /// it is `null`. Paged by position, not offset, so users created or deleted meanwhile
    /// never make a page repeat or skip another.
    #[oai(path = "/admin/users", method = "get", operation_id = "adminListUsers")]
    async fn list(
        &self,
        state: Data<&AppState>,
        _key: AdminKey,
        /// An email prefix.
        #[oai(validator(max_length = 320))]
        query: Query<Option<String>>,
        /// Where the previous page ended.
        #[oai(validator(max_length = 1024))]
        cursor: Query<Option<String>>,
        /// Users per page: 1 to 200, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
    ) -> Result<UserPageResponse, ListErrors> {
        let query = query.0.unwrap_or_default();
        // No address holds a NUL, and Postgres text cannot: refused, never sent as a pattern.
        if query.contains('\0') {
            return Err(ApiError::invalid("query").into());
        }
        let prefix = policy::normalize_email_prefix(&query);
        let after = cursor
            .0
            .as_deref()
            .map(|c| decode_cursor('u', c))
            .transpose()?;
        let limit = page_size(limit.0);
        let mut users = state
            .store()
            .search_users(&prefix, after.as_deref(), limit + 1)
            .await?;
        let more = users.len() as u64 > limit;
        users.truncate(limit as usize);
        let cursor = more
            .then(|| users.last().map(|u| encode_cursor('u', &u.email)))
            .flatten();
        Ok(UserPageResponse::Ok(Json(UserPage {
            users: users.into_iter().map(AdminUser::from).collect(),
            cursor,
        })))
    }

    /// Create a user
    ///
    /// With a password (8 to 1024 characters), the user can log in at once; without one, the
    /// account gets a random password nobody knows. Recorded as `user_created`, naming the key.
    #[oai(
        path = "/admin/users",
        method = "post",
        operation_id = "adminCreateUser"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        req: &Request,
        key: AdminKey,
        body: Json<CreateUserRequest>,
    ) -> Result<UserCreatedResponse, WriteErrors> {
        let CreateUserRequest {
            email,
            password,
            email_verified,
        } = body.0;
        let email = policy::normalize_email(&email).ok_or(ApiError::InvalidEmail)?;
        let password = match password.0 {
            Some(p) if !passwords::is_acceptable(&p) => return Err(ApiError::WeakPassword.into()),
            Some(p) => p.into_inner(),
            None => unknowable_password()?,
        };
        let password_hash = state.hasher.hash(password).await?;
        let now = state.clock.now();
        let id = uuid::Uuid::new_v4().to_string();
        let new = NewUser {
            id: id.clone(),
            email,
            password_hash,
            now,
            email_verified: email_verified.0.unwrap_or(false),
            created_by: Some(key.meta(&state, req)),
        };
        if !state.store().create_user(new).await? {
            return Err(ApiError::EmailTaken.into());
        }
        tracing::info!(key = %key.0.name, user_id = %id, "admin: user created");
        let user = state
            .store()
            .user_by_id(&id)
            .await?
            .ok_or(ApiError::NotFound)?;
        Ok(UserCreatedResponse::Created(Json(user.into())))
    }

    /// Read a user
    ///
    /// The user with this id; 404 when there is none (or it was deleted).
    #[oai(
        path = "/admin/users/:id",
        method = "get",
        operation_id = "adminGetUser"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        _key: AdminKey,
        /// The user id.
        #[oai(validator(max_length = 64))]
        id: Path<String>,
    ) -> Result<UserResponse, ReadErrors> {
        let user = find(&state, &id.0).await?;
        Ok(UserResponse::Ok(Json(user.into())))
    }

    /// Change a user
    ///
    /// Only the fields sent change, in one transaction, each recorded as an event naming the
    /// key. `disabled: true` ends every session at once, everywhere (feed reason
    /// `user_disabled`). A new `email` is unverified unless `email_verified` comes with it.
    /// `app_metadata` reaches access tokens from their next refresh on, so it is at most one
    /// access-token lifetime stale.
    #[oai(
        path = "/admin/users/:id",
        method = "patch",
        operation_id = "adminUpdateUser"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        req: &Request,
        key: AdminKey,
        /// The user id.
        #[oai(validator(max_length = 64))]
        id: Path<String>,
        body: Json<UpdateUserRequest>,
    ) -> Result<UserResponse, WriteErrors> {
        let patch = patch_of(body.0)?;
        let meta = key.meta(&state, req);
        let user_id = UserId::from(id.0);
        match state.sessions.update_user(&user_id, patch, &meta).await? {
            Patched::Updated { user, ended } => {
                tracing::info!(
                    key = %key.0.name,
                    user_id = %user.id,
                    sessions_ended = ended.len(),
                    "admin: user updated"
                );
                Ok(UserResponse::Ok(Json((*user).into())))
            }
            Patched::NotFound => Err(ApiError::NotFound.into()),
            Patched::EmailTaken => Err(ApiError::EmailTaken.into()),
        }
    }

    /// Delete a user
    ///
    /// Ends every session first (their access tokens are refused at once, everywhere; feed
    /// reason `user_deleted`), then deletes the account and its personal data: the email, and
    /// the IP addresses and user agents of its sessions and events. The events themselves stay
    /// (the audit trail), under the user id.
    #[oai(
        path = "/admin/users/:id",
        method = "delete",
        operation_id = "adminDeleteUser"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        req: &Request,
        key: AdminKey,
        /// The user id.
        #[oai(validator(max_length = 64))]
        id: Path<String>,
    ) -> Result<NoContent, ReadErrors> {
        let meta = key.meta(&state, req);
        let user_id = UserId::from(id.0);
        if !state.sessions.delete_user(&user_id, &meta).await? {
            return Err(ApiError::NotFound.into());
        }
        tracing::info!(key = %key.0.name, user_id = %user_id, "admin: user deleted");
        Ok(NoContent::Done)
    }

    /// List a user's sessions
    ///
    /// The user's live sessions, most recently refreshed first (at most 1,000).
    #[oai(
        path = "/admin/users/:id/sessions",
        method = "get",
        operation_id = "adminListUserSessions"
    )]
    async fn sessions(
        &self,
        state: Data<&AppState>,
        _key: AdminKey,
        /// The user id.
        #[oai(validator(max_length = 64))]
        id: Path<String>,
    ) -> Result<SessionListResponse, ReadErrors> {
        let user = find(&state, &id.0).await?;
        let sessions = state
            .store()
            .list_sessions(&user.id, state.clock.now(), MAX_LISTED_SESSIONS)
            .await?;
        Ok(SessionListResponse::Ok(Json(
            sessions
                .into_iter()
                .map(|s| AdminSession {
                    created_at: crate::api::timestamp(s.created_at),
                    last_refreshed_at: crate::api::timestamp(s.last_refreshed_at),
                    expires_at: crate::api::timestamp(s.expires_at()),
                    remember: s.persistent,
                    id: s.id,
                    user_agent: s.user_agent,
                    ip: s.ip,
                })
                .collect(),
        )))
    }

    /// End a user's sessions
    ///
    /// Ends every session of the user (refresh tokens stop working, access tokens are refused
    /// at once, everywhere; feed reason `session_revoked`). The account stays usable: to keep
    /// the user out, disable it.
    #[oai(
        path = "/admin/users/:id/sessions",
        method = "delete",
        operation_id = "adminRevokeUserSessions"
    )]
    async fn revoke_sessions(
        &self,
        state: Data<&AppState>,
        req: &Request,
        key: AdminKey,
        /// The user id.
        #[oai(validator(max_length = 64))]
        id: Path<String>,
    ) -> Result<NoContent, ReadErrors> {
        let user = find(&state, &id.0).await?;
        let meta = key.meta(&state, req);
        let ended = state
            .sessions
            .end(
                &UserId::from(user.id.as_str()),
                SessionScope::All,
                EndReason::Operator,
                &meta,
            )
            .await?;
        tracing::info!(
            key = %key.0.name,
            user_id = %user.id,
            sessions_ended = ended.len(),
            "admin: sessions revoked"
        );
        Ok(NoContent::Done)
    }

    /// Send a password-reset link
    ///
    /// Issues a password-reset link for the user (30 minutes, once; an earlier one stops
    /// working) and mails it to the user's address, or with `{"send": false}` returns it
    /// instead and mails nothing. Using it ends every session of the user, as any reset.
    /// Recorded as `password_reset_requested`, naming the key. A disabled user's link opens
    /// nothing until the user is enabled.
    #[oai(
        path = "/admin/users/:id/password-reset",
        method = "post",
        operation_id = "adminSendPasswordReset"
    )]
    async fn password_reset(
        &self,
        state: Data<&AppState>,
        req: &Request,
        key: AdminKey,
        /// The user id.
        #[oai(validator(max_length = 64))]
        id: Path<String>,
        body: Json<Option<PasswordResetRequest>>,
    ) -> Result<PasswordResetResponse, ReadErrors> {
        let user = find(&state, &id.0).await?;
        let send = body.0.and_then(|b| b.send.0).unwrap_or(true);
        let meta = key.meta(&state, req);
        let minted = crate::api::recovery::mint()?;
        let link = state.mailer.link(Kind::PasswordReset, &minted.token);
        let mails = if send {
            vec![
                state
                    .mailer
                    .compose(Kind::PasswordReset, &user.email, Some(&link), None),
            ]
        } else {
            Vec::new()
        };
        let event = Some(EventKind::PasswordResetRequested);
        let purpose = Purpose::PasswordReset;
        crate::api::recovery::issue(
            &state,
            &user,
            purpose,
            &user.email,
            minted.hash,
            mails,
            event,
            &meta,
        )
        .await?;
        tracing::info!(key = %key.0.name, user_id = %user.id, send, "admin: password reset link");
        if send {
            return Ok(PasswordResetResponse::Mailed);
        }
        let expires_at = crate::api::timestamp(state.clock.now() + purpose.lifetime_secs());
        Ok(PasswordResetResponse::Link(Json(PasswordResetLink {
            link,
            expires_at,
        })))
    }
}

async fn find(state: &AppState, id: &str) -> Result<User, ApiError> {
    if id.contains('\0') {
        return Err(ApiError::NotFound);
    }
    state
        .store()
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// The store's patch from the request, its values checked.
fn patch_of(body: UpdateUserRequest) -> Result<UserPatch, ApiError> {
    let email = match body.email.0 {
        Some(e) => Some(policy::normalize_email(&e).ok_or(ApiError::InvalidEmail)?),
        None => None,
    };
    let app_metadata = match body.app_metadata {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(map) => {
            let json = serde_json::to_string(&map)
                .map_err(|e| ApiError::internal("app_metadata encoding", &e))?;
            if json.len() > MAX_APP_METADATA {
                return Err(ApiError::invalid("app_metadata is over 2048 bytes"));
            }
            Some(Some(json))
        }
    };
    let max_sessions = match body.max_sessions {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(n) => Some(Some(n)),
    };
    Ok(UserPatch {
        disabled: body.disabled.0,
        email,
        email_verified: body.email_verified.0,
        app_metadata,
        max_sessions,
    })
}

/// 32 random bytes nobody is told: an account created without a password logs in only after
/// a reset, and a login attempt costs the same work as for any account.
fn unknowable_password() -> Result<String, ApiError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal("OS random number generator", &e))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}
