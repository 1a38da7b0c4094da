//! `/me`: the sample protected resource. Answered from the verified token alone.
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{BearerAuth, Tag};
use crate::api::error::Errors;
use crate::api::error::codes::*;

/// Who the access token belongs to.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Me {
    /// User id (`sub`).
    pub user_id: String,
    /// The user's email.
    pub email: String,
    /// Session id (`sid`).
    pub session_id: String,
}

impl poem_openapi::types::Example for Me {
    fn example() -> Self {
        Self {
            user_id: "5f0c6d1e-8a4b-4c39-9e51-2d7a3b9c0f11".into(),
            email: "ada@example.com".into(),
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
            session_id: c.sid,
        })))
    }
}
