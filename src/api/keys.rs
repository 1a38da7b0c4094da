//! `/.well-known/jwks.json`: the public keys that verify access tokens.
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::{AppState, Tag};
use crate::error::Errors;
use crate::tokens::keys::Jwk;

/// A JSON Web Key Set.
#[derive(Debug, Object)]
pub struct Jwks {
    /// The current key and the retired keys whose tokens may not have expired yet.
    pub keys: Vec<Jwk>,
}

/// Public keys.
pub struct KeysApi;

#[OpenApi(tag = "Tag::Keys")]
impl KeysApi {
    /// Public keys
    ///
    /// The Ed25519 public keys that verify access tokens: the current one, and retired ones
    /// until every token they signed has expired. Resource servers that verify offline accept
    /// a token until its `exp` even if its session ended: keep access tokens short.
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "getJwks")]
    async fn jwks(&self, state: Data<&AppState>) -> Result<Json<Jwks>, Errors<0>> {
        Ok(Json(Jwks { keys: state.keys.jwks() }))
    }
}
