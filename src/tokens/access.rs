//! Access tokens: short-lived EdDSA JWTs (`typ: at+jwt`), verified without a database read.
//!
//! Verification pins the algorithm and the key (by `kid`, from our own key set only), refuses
//! any header that asks to fetch or embed a key or declares critical extensions, requires every
//! claim, checks `iss`, `aud` and `exp` against the injected clock with the configured leeway,
//! and finally rejects the tokens of ended sessions through the in-memory revoked set.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use super::keys::{KeyError, KeySet};
use super::revoked::RevokedSet;
use crate::clock::SharedClock;

pub use super::TYP;
/// Tokens longer than this are rejected before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The claims of an access token; a token with any other claim is refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// Not before: authd never writes it, but a token that carries it is refused until then
    /// (RFC 7519), as every verifier kit does.
    #[serde(
        default,
        deserialize_with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// The user's email, so that `/me` needs no database read.
    pub email: String,
    /// Whether that address was verified when the token was issued.
    #[serde(default)]
    pub email_verified: bool,
    /// What admins wrote in the user's `app_metadata` (a JSON object, at most 2 KiB), as of
    /// the token's issue: roles, plan, tenant. Left out when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A claim that may be left out but, when there, is a whole number of seconds (`null` is not).
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    i64::deserialize(d).map(Some)
}

impl AccessClaims {
    /// The user the token is about.
    pub fn user(&self) -> crate::ids::UserId {
        crate::ids::UserId::from(self.sub.as_str())
    }

    /// The session the token belongs to.
    pub fn session(&self) -> crate::ids::SessionId {
        crate::ids::SessionId::from(self.sid.as_str())
    }
}

/// Why an access token was refused. Every variant answers the same 401 `invalid_token`; the
/// distinction only reaches the debug log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("forbidden header")]
    ForbiddenHeader,
    #[error("unknown key")]
    UnknownKey,
    #[error("bad signature or claims")]
    Invalid,
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    NotYetValid,
    #[error("session ended")]
    Revoked,
}

/// Most tokens kept in the verified-token cache (about 1 KiB each).
const CACHE_MAX: usize = 16_384;

/// Tokens whose signature and claims verified, keyed by the whole token (so a different token
/// can never hit another's entry), with the generation of the key set that verified them. A hit
/// skips only the signature check, and only while the key set is unchanged; expiry, the
/// lifetime and the revoked set are checked on every request.
#[derive(Default)]
struct VerifiedCache {
    map: RwLock<HashMap<Arc<str>, Arc<Verified>>>,
}

/// A cache entry: the claims, and the key set (by its generation) that verified them.
struct Verified {
    claims: AccessClaims,
    generation: u64,
}

impl VerifiedCache {
    fn get(&self, token: &str) -> Option<Arc<Verified>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    /// Inserts; when full, drops the entries expired before `expired_before`, and everything if
    /// that is not enough (the cache only saves work, it never decides anything).
    fn insert(&self, token: &str, entry: Arc<Verified>, expired_before: i64) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_MAX {
            map.retain(|_, c| c.claims.exp >= expired_before);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(Arc::from(token), entry);
    }
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct AccessTokens {
    keys: Arc<KeySet>,
    revoked: Arc<RevokedSet>,
    clock: SharedClock,
    issuer: String,
    audience: String,
    ttl_secs: i64,
    leeway_secs: i64,
    /// The longest `exp - iat` accepted: the largest access-token lifetime any server of the
    /// database has recorded (see `store::IssuingPolicy`), kept fresh by the sync loop.
    max_lifetime_secs: Arc<std::sync::atomic::AtomicI64>,
    validation: Arc<Validation>,
    cache: Arc<VerifiedCache>,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// What a new access token is about.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
    pub email_verified: bool,
    /// The user's `app_metadata` as stored (a JSON object).
    pub app_metadata: Option<&'a str>,
    pub session_id: &'a str,
    /// The session's absolute end: no token outlives its session.
    pub session_expires_at: i64,
}

impl AccessTokens {
    /// A signer/verifier for `issuer` and `audience`.
    pub fn new(
        keys: Arc<KeySet>,
        revoked: Arc<RevokedSet>,
        clock: SharedClock,
        issuer: String,
        audience: String,
        ttl_secs: i64,
        leeway_secs: i64,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        // exp is checked against the injected clock below, not the wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            keys,
            revoked,
            clock,
            issuer,
            audience,
            ttl_secs,
            leeway_secs,
            max_lifetime_secs: Arc::new(std::sync::atomic::AtomicI64::new(ttl_secs)),
            validation: Arc::new(validation),
            cache: Arc::default(),
        }
    }

    /// The key set tokens are signed and verified with.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The sessions whose tokens are refused.
    pub fn revoked(&self) -> &RevokedSet {
        &self.revoked
    }

    /// Sets the longest lifetime (`exp - iat`) a token may have to verify; never below this
    /// server's own.
    pub fn set_max_lifetime(&self, secs: i64) {
        self.max_lifetime_secs.store(
            secs.max(self.ttl_secs),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Signs a token for `subject`; returns it with its lifetime in seconds.
    pub fn sign(&self, subject: &Subject<'_>) -> Result<(String, i64), KeyError> {
        let now = self.clock.now();
        let key = self.keys.signing_at(now)?;
        let exp = (now + self.ttl_secs).min(subject.session_expires_at);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id.to_owned(),
            sid: subject.session_id.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            exp,
            nbf: None,
            email: subject.email.to_owned(),
            email_verified: subject.email_verified,
            app_metadata: match subject.app_metadata {
                Some(raw) => Some(serde_json::from_str(raw).map_err(|_| KeyError::Claims)?),
                None => None,
            },
        };
        // A compact JWS (RFC 7515): header.claims.signature, base64url without padding. Signed
        // here with the cached key pair; verification goes through jsonwebtoken.
        let claims = serde_json::to_vec(&claims).map_err(|_| KeyError::Claims)?;
        let mut token = format!("{}.{}", key.header_b64, URL_SAFE_NO_PAD.encode(claims));
        let signature = key.pair.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        Ok((token, exp - now))
    }

    /// Verifies `token` completely, including that its session has not ended.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        // Read before verifying: an entry is only ever tagged with a generation no newer than
        // the key set that verified it.
        let generation = self.keys.generation();
        if let Some(hit) = self.cache.get(token)
            && hit.generation == generation
        {
            self.check_live(&hit.claims)?;
            return Ok(hit.claims.clone());
        }
        // A miss, or an entry from before the key set last changed: verify again, so that a
        // key that left the set (retired past its overlap, or revoked) verifies nothing, not
        // even a token it verified before.
        let claims = self.verify_uncached(token)?;
        self.check_live(&claims)?;
        let entry = Arc::new(Verified {
            claims: claims.clone(),
            generation,
        });
        self.cache
            .insert(token, entry, self.clock.now() - self.leeway_secs);
        Ok(claims)
    }

    /// The checks that change with time and revocations, made on every request, cache hit or not.
    fn check_live(&self, claims: &AccessClaims) -> Result<(), TokenError> {
        let now = self.clock.now();
        if now > claims.exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired);
        }
        let not_before = claims.nbf.unwrap_or(claims.iat).max(claims.iat);
        if not_before > now.saturating_add(self.leeway_secs) {
            return Err(TokenError::NotYetValid);
        }
        // No server issues tokens that live longer than the recorded lifetime: a longer one was
        // not made by authd (a leaked key), and must not verify for a day or forever.
        let max = self
            .max_lifetime_secs
            .load(std::sync::atomic::Ordering::Relaxed);
        if claims.exp.saturating_sub(claims.iat) > max || claims.exp < claims.iat {
            return Err(TokenError::Invalid);
        }
        if self.revoked.contains(&claims.sid) {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }

    fn verify_uncached(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA
            || header.typ.as_deref() != Some(TYP)
            || header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
            || header.enc.is_some()
            || header.zip.is_some()
            || header.extras.contains_key("b64")
        {
            return Err(TokenError::ForbiddenHeader);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = self.keys.verifying(kid).ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        Ok(data.claims)
    }
}
