//! authd's public keys, from its JWKS: the only keys a token may be verified with.
use std::collections::HashMap;

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use crate::error::FetchError;

/// The Ed25519 keys of one JWKS answer, by `kid`.
pub(crate) struct KeySet {
    keys: HashMap<String, DecodingKey>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// One JWK. Every field is optional so that a key of another kind is skipped, not an error.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
}

impl KeySet {
    /// The Ed25519 signing keys of a JWKS document; keys of any other kind or use are skipped.
    /// A document without one usable key is an error, so that a broken answer never empties
    /// the key set.
    pub(crate) fn from_json(body: &[u8]) -> Result<Self, FetchError> {
        let jwks: Jwks =
            serde_json::from_slice(body).map_err(|e| FetchError::Body(format!("JWKS: {e}")))?;
        let keys: HashMap<String, DecodingKey> = jwks
            .keys
            .into_iter()
            .filter_map(|jwk| {
                let usable = jwk.kty.as_deref() == Some("OKP")
                    && jwk.crv.as_deref() == Some("Ed25519")
                    && jwk.alg.as_deref().is_none_or(|a| a == "EdDSA")
                    && jwk.use_.as_deref().is_none_or(|u| u == "sig");
                let kid = jwk.kid.filter(|k| usable && !k.is_empty())?;
                let key = DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()?;
                (key.as_bytes().len() == 32).then_some((kid, key))
            })
            .collect();
        if keys.is_empty() {
            return Err(FetchError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// The key named `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    /// How many keys are held.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn only_ed25519_signing_keys_are_kept() {
        let body = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "a", "alg": "EdDSA", "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "no-alg-no-use"},
            {"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "X25519", "x": X, "kid": "x25519"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
            {"kty": "OKP", "crv": "Ed25519", "x": "c2hvcnQ", "kid": "short"},
            {"kty": "OKP", "crv": "Ed25519", "x": X}
        ]});
        let set = KeySet::from_json(body.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.get("a").is_some());
        assert!(set.get("no-alg-no-use").is_some());
    }

    #[test]
    fn a_jwks_without_a_usable_key_is_an_error() {
        assert_eq!(
            KeySet::from_json(br#"{"keys":[]}"#).err(),
            Some(FetchError::NoKeys)
        );
        assert!(matches!(
            KeySet::from_json(b"<html>"),
            Err(FetchError::Body(_))
        ));
    }
}
