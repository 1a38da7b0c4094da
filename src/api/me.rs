//! `/me`: the sample protected resource, answered from the verified token alone; and the
//! deletion of the caller's own account.
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::login::check_current_password;
use super::strict::StrictString;
use super::{AppState, BearerAuth, Tag};
use crate::api::error::codes::*;
use crate::api::error::{ApiError, Errors};
use crate::store::ClientMeta;

/// Who the access token belongs to.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Me {
    /// User id (`sub`).
    pub user_id: String,
    /// The user's email.
    pub email: String,
    /// Whether it was verified when the access token was issued.
    pub email_verified: bool,
    /// Session id (`sid`).
    pub session_id: String,
}

impl poem_openapi::types::Example for Me {
    fn example() -> Self {
        Self {
            user_id: "5f0c6d1e-8a4b-4c39-9e51-2d7a3b9c0f11".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            session_id: "0b9e3c8e-5d0a-4f8e-a1c2-7e4d9b6f2a35".into(),
        }
    }
}

/// `getMe`'s answer.
#[derive(ApiResponse)]
pub enum MeResponse {
    /// The access token is valid: who it belongs to.
    #[oai(status = 200)]
    Ok(Json<Me>),
}

/// What deleting one's own account takes.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct DeleteMeRequest {
    /// The account's current password.
    #[oai(validator(max_length = 4096))]
    pub current_password: StrictString,
}

impl poem_openapi::types::Example for DeleteMeRequest {
    fn example() -> Self {
        Self {
            current_password: "correct horse battery staple".into(),
        }
    }
}

/// `deleteMe`'s answer.
#[derive(ApiResponse)]
pub enum Deleted {
    /// The account and every session of it are gone.
    #[oai(status = 204)]
    NoContent(
        /// Expires the refresh cookie (`Max-Age=0`), as a logout does.
        #[oai(header = "Set-Cookie")]
        String,
    ),
}

/// The sample protected resource.
#[derive(Default)]
pub struct MeApi;

#[OpenApi(tag = "Tag::Me")]
impl MeApi {
    /// Who am I
    ///
    /// Verifies the access token (signature, claims, and that its session has not ended)
    /// without a database read, and returns who it belongs to.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(&self, auth: BearerAuth) -> Result<MeResponse, Errors<{ INVALID_TOKEN }>> {
        let c = auth.0;
        Ok(MeResponse::Ok(Json(Me {
            user_id: c.sub,
            email: c.email,
            email_verified: c.email_verified,
            session_id: c.sid,
        })))
    }

    /// Delete my account
    ///
    /// Needs the current password (throttled like login). Ends every session of the account
    /// first (their access tokens are refused at once, here and by every verifier; feed reason
    /// `user_deleted`), then deletes the account with its email and the IP addresses and user
    /// agents of its sessions and events, in one transaction. The 204 expires the refresh
    /// cookie.
    #[oai(path = "/me", method = "delete", operation_id = "deleteMe")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        req: &Request,
        auth: BearerAuth,
        body: Json<DeleteMeRequest>,
    ) -> Result<
        Deleted,
        Errors<
            {
                INVALID_REQUEST
                    | INVALID_TOKEN
                    | INVALID_CREDENTIALS
                    | RATE_LIMITED
                    | SERVICE_UNAVAILABLE
            },
        >,
    > {
        let claims = auth.0;
        let meta = state.client_meta(req);
        let password = body.0.current_password.into_inner();
        check_current_password(&state, &meta, &claims, password, "delete_me").await?;
        // The user's own address and browser are personal data that the deletion removes:
        // the last event keeps neither.
        let nobody = ClientMeta::default();
        if !state.sessions.delete_user(&claims.user(), &nobody).await? {
            return Err(ApiError::InvalidToken.into());
        }
        tracing::info!(user_id = %claims.sub, "account deleted by its user");
        Ok(Deleted::NoContent(state.http.cookies.expire()))
    }
}
