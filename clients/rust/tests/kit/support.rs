//! What every test needs: keys that sign like authd, a clock to move, a running fake authd and
//! a verifier built against it.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authd_verify::{Clock, Verifier, VerifierBuilder, VerifyError};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::fake::Fake;

/// The service key the fake accepts.
pub const SERVICE_KEY: &str = "authd_sk_test-key-with-the-scope-revocations-read";
/// The audience of the fake's tokens.
pub const AUDIENCE: &str = "authd";

/// An Ed25519 key that signs access tokens as authd does.
pub struct Key {
    pub kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl Key {
    pub fn generate(kid: &str) -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The key as the JWKS lists it.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&self.public),
            "kid": self.kid, "alg": "EdDSA", "use": "sig",
        })
    }

    /// The raw public key.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// authd's header: EdDSA, `typ: at+jwt`, this key's `kid`.
    pub fn header(&self) -> Header {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        header
    }

    /// `claims` signed with authd's header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.header(), claims)
    }

    /// `claims` signed with this key under any header.
    pub fn sign_with(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_ed_der(&self.pkcs8)).unwrap()
    }
}

/// A clock that runs with the system's but can be moved forward.
#[derive(Clone, Default)]
pub struct TestClock {
    offset_ms: Arc<AtomicI64>,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(i64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }

    pub fn now_secs(&self) -> i64 {
        i64::try_from(self.now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        let offset = self.offset_ms.load(Ordering::SeqCst);
        SystemTime::now() + Duration::from_millis(offset.unsigned_abs())
    }
}

/// RFC 3339 for Unix seconds.
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A fake authd with one key, a clock, and builders of verifiers against them.
pub struct Env {
    pub fake: Fake,
    pub key: Key,
    pub clock: TestClock,
}

impl Env {
    pub fn start() -> Self {
        let key = Key::generate("k1");
        Self {
            fake: Fake::start(vec![key.jwk()]),
            key,
            clock: TestClock::default(),
        }
    }

    /// A builder for the fake, with its service key and the test clock.
    pub fn builder(&self) -> VerifierBuilder {
        Verifier::builder(self.fake.base())
            .service_key(SERVICE_KEY)
            .clock(self.clock.clone())
    }

    /// A verifier with the default settings.
    pub async fn verifier(&self) -> Verifier {
        self.builder().build().await.unwrap()
    }

    /// Claims of a live token of session `sid`, as authd issues them.
    pub fn claims(&self, sid: &str) -> Value {
        let now = self.clock.now_secs();
        json!({
            "iss": self.fake.base(), "aud": AUDIENCE, "sub": "u1", "sid": sid,
            "jti": format!("jti-{sid}-{now}"), "iat": now, "exp": now + 300,
            "email": "ada@example.com",
        })
    }

    /// A live token of session `sid`.
    pub fn token(&self, sid: &str) -> String {
        self.key.sign(&self.claims(sid))
    }
}

/// Waits until `check` holds, polling every 10 ms; fails after `within`.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The default wait for the background task to get somewhere.
pub const SOON: Duration = Duration::from_secs(5);

/// Waits until the verifier's long-poll is held by the fake.
pub async fn until_poll_held(env: &Env) {
    eventually(SOON, "a long-poll is held", || {
        Fake::count(&env.fake.state.held) >= 1
    })
    .await;
}

/// The error of `verifier.verify(token)`, which must fail.
pub fn refusal(verifier: &Verifier, token: &str) -> VerifyError {
    verifier.verify(token).unwrap_err()
}
