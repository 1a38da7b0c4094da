//! The verifier: checks an access token against authd's keys and the revoked-session set,
//! synchronously and without I/O.
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::builder::VerifierBuilder;
use crate::claims::Claims;
use crate::error::{FetchError, VerifyError};
use crate::state::Shared;

/// Tokens longer than this many bytes are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The `typ` header of authd's access tokens.
const TYP: &str = "at+jwt";

/// Header parameters that fetch, embed or change the meaning of a key: authd writes none.
const FORBIDDEN_HEADERS: [&str; 8] = ["jku", "jwk", "x5u", "x5c", "crit", "enc", "zip", "b64"];

/// Verifies authd's access tokens locally. Cheap to clone (an `Arc` inside); its background
/// task (the feed's long-poll and the JWKS refreshes) stops when the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    validation: Validation,
    task: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a verifier knows, for health checks and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Whether [`Verifier::verify`] answers from authd's state: the snapshot is loaded (always
    /// true once built), and `max_staleness`, if set, is not exceeded.
    pub ready: bool,
    /// When the feed last answered successfully (a long-poll that ended empty counts).
    pub last_sync: Option<SystemTime>,
    /// The time since `last_sync`.
    pub staleness: Option<Duration>,
    /// How many ended sessions are held.
    pub revoked_entries: usize,
    /// How many keys the JWKS gave.
    pub keys: usize,
    /// How many HTTP requests the verifier has sent to authd so far.
    pub requests: u64,
    /// The latest failure of the feed since its last success (`None` while it answers).
    pub last_error: Option<FetchError>,
}

impl Verifier {
    /// A builder for a verifier of the authd at `base_url` (e.g. `https://auth.example.com`).
    pub fn builder(base_url: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(base_url.into())
    }

    /// Starts a verifier over loaded state, with the background task given by `spawn`.
    pub(crate) fn start(
        shared: Arc<Shared>,
        spawn: impl FnOnce(Arc<Shared>) -> tokio::task::AbortHandle,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&shared.config.issuer]);
        validation.set_audience(&[&shared.config.audience]);
        // exp and iat are checked against the configured clock in `verify`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let task = spawn(Arc::clone(&shared));
        Self {
            inner: Arc::new(Inner {
                shared,
                validation,
                task,
            }),
        }
    }

    /// Verifies `token` (the compact JWS, without `Bearer `) and returns its claims. Makes no
    /// request: the keys and the revoked set are in memory. An unknown `kid` is refused and
    /// asks the background task for a JWKS refetch, so that a new key verifies shortly after.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let shared = &self.inner.shared;
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Malformed);
        }
        let header = read_header(token)?;
        check_header(&header)?;
        let kid = match header.get("kid") {
            Some(Value::String(kid)) if !kid.is_empty() => kid.as_str(),
            _ => return Err(VerifyError::UnknownKey),
        };
        let keys = shared.keys();
        let Some(key) = keys.get(kid) else {
            shared.want_jwks();
            return Err(VerifyError::UnknownKey);
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation)
            .map_err(|_| VerifyError::Invalid)?
            .claims;
        let now = shared.now_secs();
        let leeway = shared.config.leeway_secs;
        if now > claims.exp.saturating_add(leeway) {
            return Err(VerifyError::Expired);
        }
        // `nbf` is never written by authd; one that is there is honoured (RFC 7519), and one
        // that is not a whole number of seconds makes the token invalid.
        let not_before = match claims.extra.get("nbf") {
            None => claims.iat,
            Some(nbf) => nbf.as_i64().ok_or(VerifyError::Invalid)?.max(claims.iat),
        };
        if not_before > now.saturating_add(leeway) {
            return Err(VerifyError::NotYetValid);
        }
        if claims.exp < claims.iat {
            return Err(VerifyError::Invalid);
        }
        // A session known to have ended is refused even when the set is stale.
        if shared.is_revoked(&claims.sid) {
            return Err(VerifyError::Revoked);
        }
        if shared.is_stale() {
            return Err(VerifyError::Stale);
        }
        Ok(claims)
    }

    /// What the verifier knows now.
    pub fn status(&self) -> Status {
        let shared = &self.inner.shared;
        Status {
            ready: !shared.is_stale(),
            last_sync: Some(shared.last_sync()),
            staleness: Some(shared.staleness()),
            revoked_entries: shared.revoked_len(),
            keys: shared.keys().len(),
            requests: shared.client.requests(),
            last_error: shared.last_error(),
        }
    }
}

/// The header of a compact JWS: three non-empty base64url parts (an unsigned token has an empty
/// third one), the first a JSON object. Read here rather than by `jsonwebtoken`, whose header
/// type cannot hold `alg: none` or a non-string parameter, so that such a token is refused for
/// its header, as every kit refuses it (tests/conformance/).
fn read_header(token: &str) -> Result<Map<String, Value>, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let base64url = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !(base64url(header) && base64url(payload) && base64url(signature)) {
        return Err(VerifyError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| VerifyError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(header)) => Ok(header),
        _ => Err(VerifyError::Malformed),
    }
}

/// Refuses every header authd does not write.
fn check_header(header: &Map<String, Value>) -> Result<(), VerifyError> {
    let is = |name: &str, want: &str| header.get(name).and_then(Value::as_str) == Some(want);
    if !is("alg", "EdDSA")
        || !is("typ", TYP)
        || FORBIDDEN_HEADERS
            .iter()
            .any(|name| header.contains_key(*name))
    {
        return Err(VerifyError::ForbiddenHeader);
    }
    Ok(())
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config = &self.inner.shared.config;
        f.debug_struct("Verifier")
            .field("base_url", &config.base_url)
            .field("issuer", &config.issuer)
            .field("audience", &config.audience)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}
