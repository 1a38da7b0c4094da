//! `/.well-known/jwks.json`: the public keys that verify access tokens.
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{AppState, Tag};
use crate::error::Errors;
use crate::tokens::keys::Jwk;

/// A JSON Web Key Set (RFC 7517).
#[derive(Debug, Object)]
#[oai(example)]
pub struct Jwks {
    /// The current key and the retired keys whose tokens may not have expired yet.
    pub keys: Vec<Jwk>,
}

impl poem_openapi::types::Example for Jwks {
    fn example() -> Self {
        Self {
            keys: vec![Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
                kid: "3fb1c0de9a".into(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
            }],
        }
    }
}

/// `getJwks`' answer.
#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The key set. Cache it briefly and fetch it again on an unknown `kid`.
    #[oai(status = 200)]
    Ok(Json<Jwks>),
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
    #[oai(
        path = "/.well-known/jwks.json",
        method = "get",
        operation_id = "getJwks"
    )]
    async fn jwks(&self, state: Data<&AppState>) -> Result<JwksResponse, Errors<0>> {
        Ok(JwksResponse::Ok(Json(Jwks {
            keys: state.keys.jwks(),
        })))
    }
}
