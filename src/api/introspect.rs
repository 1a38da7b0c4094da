//! `POST /auth/introspect` (RFC 7662): is this access token live? Answered from memory, like
//! `/me`, for gateways and for routes that want authd's word on every request.
use poem::web::Data;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::service::ServiceKeyAuth;
use super::{AppState, Tag};
use crate::api::error::Errors;
use crate::api::error::codes::*;
use crate::tokens::Scope;

/// The form of an introspection request.
#[derive(Debug, Object, serde::Deserialize)]
#[oai(example)]
pub struct IntrospectionRequest {
    /// The token to look at.
    #[oai(validator(max_length = 8192))]
    pub token: String,
    /// Ignored: only access tokens can be active.
    pub token_type_hint: Option<String>,
}

/// What authd knows of a token. Only `active` for anything but a live access token.
#[derive(Debug, Default, Object)]
#[oai(example)]
pub struct Introspection {
    /// Is this a live access token (valid signature and claims, unexpired, its session alive)?
    pub active: bool,
    /// `access_token`.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    /// User id.
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    /// Session id.
    #[oai(skip_serializing_if_is_none)]
    pub sid: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<String>,
    /// Expiry, in seconds since the epoch.
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
    /// Issue time, in seconds since the epoch.
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
    /// The user's email.
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// Whether the email was verified when the token was issued.
    #[oai(skip_serializing_if_is_none)]
    pub email_verified: Option<bool>,
    /// What admins set in the user's `app_metadata`, as of the token's issue.
    #[oai(skip_serializing_if_is_none)]
    pub app_metadata: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

impl poem_openapi::types::Example for IntrospectionRequest {
    fn example() -> Self {
        Self {
            token: "eyJhbGciOiJFZERTQSIsImtpZCI6IjNmYjFjMGRlOWEiLCJ0eXAiOiJhdCtqd3QifQ...".into(),
            token_type_hint: Some("access_token".into()),
        }
    }
}

impl poem_openapi::types::Example for Introspection {
    fn example() -> Self {
        Self {
            active: true,
            token_type: Some("access_token".into()),
            sub: Some("5f0c6d1e-8a4b-4c39-9e51-2d7a3b9c0f11".into()),
            sid: Some("0b9e3c8e-5d0a-4f8e-a1c2-7e4d9b6f2a35".into()),
            iss: Some("https://auth.example.com".into()),
            aud: Some("authd".into()),
            exp: Some(1_790_000_300),
            iat: Some(1_790_000_000),
            jti: Some("7d1f3e2a-4b5c-4d6e-8f90-a1b2c3d4e5f6".into()),
            email: Some("ada@example.com".into()),
            email_verified: Some(true),
            app_metadata: None,
        }
    }
}

/// `introspectToken`'s answer.
#[derive(ApiResponse)]
pub enum IntrospectionResponse {
    /// What the token is; `{"active": false}` for anything but a live access token.
    #[oai(status = 200)]
    Ok(Json<Introspection>),
}

/// Token introspection.
#[derive(Default)]
pub struct IntrospectApi;

#[OpenApi(tag = "Tag::ResourceServers")]
impl IntrospectApi {
    /// Introspect a token
    ///
    /// RFC 7662: `token=...` as a form. A live access token answers `active: true` with its
    /// claims; garbage, an expired token, one of an ended session and a refresh token all
    /// answer `{"active": false}` and nothing else. No database read. Needs a service key with
    /// the scope `introspect`.
    #[oai(
        path = "/auth/introspect",
        method = "post",
        operation_id = "introspectToken"
    )]
    async fn introspect(
        &self,
        state: Data<&AppState>,
        auth: ServiceKeyAuth,
        body: Form<IntrospectionRequest>,
    ) -> Result<
        IntrospectionResponse,
        Errors<{ INVALID_REQUEST | INVALID_SERVICE_KEY | INSUFFICIENT_SCOPE | RATE_LIMITED }>,
    > {
        auth.require(Scope::Introspect)?;
        let answer = match state.access.verify(&body.0.token) {
            Ok(c) => Introspection {
                active: true,
                token_type: Some("access_token".into()),
                sub: Some(c.sub),
                sid: Some(c.sid),
                iss: Some(c.iss),
                aud: Some(c.aud),
                exp: Some(c.exp),
                iat: Some(c.iat),
                jti: Some(c.jti),
                email: Some(c.email),
                email_verified: Some(c.email_verified),
                app_metadata: c.app_metadata.map(|m| m.into_iter().collect()),
            },
            Err(reason) => {
                tracing::debug!(%reason, "introspection: inactive");
                Introspection::default()
            }
        };
        Ok(IntrospectionResponse::Ok(Json(answer)))
    }
}
