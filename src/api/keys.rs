//! `/.well-known/jwks.json`: the public keys that verify access tokens.
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{AppState, Tag};
use crate::api::error::Errors;
/// One JSON Web Key (OKP / Ed25519).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// Key id, matched against the `kid` header of access tokens.
    pub kid: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// Always `sig`.
    #[oai(rename = "use")]
    pub use_: String,
}

impl poem_openapi::types::Example for Jwk {
    fn example() -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
            kid: "3fb1c0de9a".into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        }
    }
}

impl From<crate::tokens::keys::Jwk> for Jwk {
    fn from(k: crate::tokens::keys::Jwk) -> Self {
        Self {
            kty: k.kty,
            crv: k.crv,
            x: k.x,
            kid: k.kid,
            alg: k.alg,
            use_: k.use_,
        }
    }
}

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
            keys: vec![poem_openapi::types::Example::example()],
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
#[derive(Default)]
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
            keys: state
                .access
                .keys()
                .jwks()
                .into_iter()
                .map(Jwk::from)
                .collect(),
        })))
    }
}
