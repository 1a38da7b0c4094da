//! The Ed25519 keys that sign access tokens: the current one signs, every key not yet past its
//! overlap verifies and is published in the JWKS.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Serialize;

/// A stored key, as the database hands it over.
#[derive(Clone)]
pub struct KeyRecord {
    pub kid: String,
    /// PKCS#8 DER of the private key.
    pub private_pkcs8: Vec<u8>,
    /// Raw 32-byte public key.
    pub public_key: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Key material that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key {kid}: malformed Ed25519 key material")]
    Malformed { kid: String },
    #[error("no signing key is available")]
    NoCurrentKey,
    #[error("key generation failed")]
    Generation,
    #[error("the claims could not be serialised")]
    Claims,
    #[error("key file {path}: {reason}")]
    File { path: String, reason: &'static str },
}

impl KeyRecord {
    /// A fresh Ed25519 key created at `now`.
    pub fn generate(now: i64) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generation)?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| KeyError::Generation)?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Self {
            kid: kid_of(&public),
            private_pkcs8: pkcs8.as_ref().to_vec(),
            public_key: public,
            created_at: now,
            retired_at: None,
        })
    }
}

impl KeyRecord {
    /// The Ed25519 key of a PEM file (`-----BEGIN PRIVATE KEY-----`, PKCS#8, as
    /// `openssl genpkey -algorithm ed25519` writes). Errors name the file, never its content.
    pub fn from_pem_file(path: &std::path::Path, now: i64) -> Result<Self, KeyError> {
        let fail = |reason| KeyError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|_| fail("cannot be read"))?;
        let body: String = text
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        if body.is_empty() {
            return Err(fail("no PEM PRIVATE KEY block"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| fail("the PEM block is not valid base64"))?;
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|_| fail("not a PKCS#8 Ed25519 private key"))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Self {
            kid: kid_of(&public),
            private_pkcs8: der,
            public_key: public,
            created_at: now,
            retired_at: None,
        })
    }
}

/// The kid is a truncated SHA-256 thumbprint of the public key: it reveals nothing, and two
/// instances generating keys at once cannot collide.
fn kid_of(public: &[u8]) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(public)[..16])
}

/// One JSON Web Key (OKP / Ed25519).
#[derive(Debug, Clone, Serialize)]
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
    #[serde(rename = "use")]
    pub use_: String,
}

pub(crate) struct SigningKey {
    /// The parsed key pair, kept so that signing does not re-parse PKCS#8 (and re-derive the
    /// public key) for every token.
    pub pair: Ed25519KeyPair,
    /// The JWS header of every token this key signs, base64url-encoded once.
    pub header_b64: String,
}

struct Snapshot {
    /// The keys that sign or will: (signs from, signs until), newest first.
    signing: Vec<(i64, Option<i64>, Arc<SigningKey>)>,
    verifying: HashMap<String, Arc<DecodingKey>>,
    jwks: Vec<Jwk>,
}

/// The live key set, swapped whole when the database's keys change.
pub struct KeySet {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Bumped after every load, once the new keys are in place.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet").finish_non_exhaustive()
    }
}

impl Default for KeySet {
    fn default() -> Self {
        Self {
            snapshot: RwLock::new(Arc::new(Snapshot {
                signing: Vec::new(),
                verifying: HashMap::new(),
                jwks: Vec::new(),
            })),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl KeySet {
    /// Replaces the keys. `records` are the keys still inside their overlap (the caller drops
    /// the ones whose tokens have all expired). A key signs from its `created_at` until its
    /// `retired_at`: a rotation may publish a key before it signs (see [`KeySet::signing_at`]).
    pub fn load(&self, records: &[KeyRecord]) -> Result<(), KeyError> {
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        let mut signing = Vec::new();
        for r in records {
            let pair = Ed25519KeyPair::from_pkcs8(&r.private_pkcs8)
                .map_err(|_| KeyError::Malformed { kid: r.kid.clone() })?;
            if pair.public_key().as_ref() != r.public_key.as_slice() {
                return Err(KeyError::Malformed { kid: r.kid.clone() });
            }
            verifying.insert(
                r.kid.clone(),
                Arc::new(DecodingKey::from_ed_der(&r.public_key)),
            );
            jwks.push(Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: URL_SAFE_NO_PAD.encode(&r.public_key),
                kid: r.kid.clone(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
            });
            let header = serde_json::json!({"typ": super::TYP, "alg": "EdDSA", "kid": r.kid});
            let key = SigningKey {
                pair,
                header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            };
            signing.push((r.created_at, r.retired_at, &r.kid, Arc::new(key)));
        }
        signing.sort_by(|a, b| (b.0, b.2).cmp(&(a.0, a.2)));
        jwks.sort_by(|a, b| a.kid.cmp(&b.kid));
        let snapshot = Arc::new(Snapshot {
            signing: signing
                .into_iter()
                .map(|(from, until, _, key)| (from, until, key))
                .collect(),
            verifying,
            jwks,
        });
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The key that signs at `now`: the newest one whose time has come and that is not retired
    /// yet. A rotation publishes the new key first and retires the old one when the new one
    /// starts, so every instance and verifier has the new key before any token carries it.
    /// Failing that (clocks apart), the newest unretired key.
    pub(crate) fn signing_at(&self, now: i64) -> Result<Arc<SigningKey>, KeyError> {
        let snapshot = self.current();
        let due = |&&(from, until, _): &&(i64, Option<i64>, Arc<SigningKey>)| {
            from <= now && until.is_none_or(|u| u > now)
        };
        snapshot
            .signing
            .iter()
            .find(due)
            .or_else(|| snapshot.signing.iter().find(|k| k.1.is_none()))
            .map(|k| k.2.clone())
            .ok_or(KeyError::NoCurrentKey)
    }

    pub(crate) fn verifying(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.current().verifying.get(kid).cloned()
    }

    /// Changes with every load: what verified under one generation may not under the next.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Vec<Jwk> {
        self.current().jwks.clone()
    }

    /// Is a signing key loaded?
    pub fn is_ready(&self) -> bool {
        self.current().signing.iter().any(|k| k.1.is_none())
    }
}
