//! `/me`: the sample protected resource. Answered from the verified token alone.
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::{BearerAuth, Tag};
use crate::error::Errors;
use crate::error::codes::*;

/// Who the access token belongs to.
#[derive(Debug, Object)]
pub struct Me {
    /// User id (`sub`).
    pub user_id: String,
    /// The user's email.
    pub email: String,
    /// Session id (`sid`).
    pub session_id: String,
}

/// The sample protected resource.
pub struct MeApi;

#[OpenApi(tag = "Tag::Me")]
impl MeApi {
    /// Who am I
    ///
    /// Verifies the access token (signature, claims, and that its session has not ended)
    /// without a database read, and returns who it belongs to.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(&self, auth: BearerAuth) -> Result<Json<Me>, Errors<{ E401 }>> {
        let c = auth.0;
        Ok(Json(Me { user_id: c.sub, email: c.email, session_id: c.sid }))
    }
}
