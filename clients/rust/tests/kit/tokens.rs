//! What a token must be to verify: authd's header, authd's key, every claim, live, and of a
//! session that has not ended.
use std::time::Duration;

use authd_verify::{MAX_TOKEN_LEN, VerifyError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::support::{Env, Key, refusal, until_poll_held};

#[tokio::test]
async fn a_valid_token_verifies_and_hands_over_every_claim() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let mut claims = env.claims("s1");
    claims["app_metadata"] = json!({"plan": "pro"});
    claims["amr"] = json!(["pwd"]);
    let verified = verifier.verify(&env.key.sign(&claims)).unwrap();
    assert_eq!(verified.sub, "u1");
    assert_eq!(verified.sid, "s1");
    assert_eq!(verified.aud, "authd");
    assert_eq!(verified.iss, env.fake.base());
    assert_eq!(verified.email.as_deref(), Some("ada@example.com"));
    assert_eq!(verified.extra["app_metadata"], json!({"plan": "pro"}));
    assert_eq!(verified.extra["amr"], json!(["pwd"]));
}

#[tokio::test]
async fn a_token_without_email_verifies() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let mut claims = env.claims("s1");
    claims.as_object_mut().unwrap().remove("email");
    assert_eq!(verifier.verify(&env.key.sign(&claims)).unwrap().email, None);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#);
    let claims = URL_SAFE_NO_PAD.encode(env.claims("s1").to_string());
    for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
        assert_eq!(refusal(&verifier, &token), VerifyError::Malformed);
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("k1".into());
    let x = env.key.jwk()["x"].as_str().unwrap().to_owned();
    for secret in [env.key.public(), x.as_bytes()] {
        let token = jsonwebtoken::encode(
            &header,
            &env.claims("s1"),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_eq!(refusal(&verifier, &token), VerifyError::ForbiddenHeader);
    }
}

#[tokio::test]
async fn a_token_that_is_not_an_access_token_by_its_typ_is_refused() {
    let env = Env::start();
    let verifier = env.verifier().await;
    for typ in [None, Some("JWT"), Some("at+JWT")] {
        let mut header = env.key.header();
        header.typ = typ.map(str::to_owned);
        let token = env.key.sign_with(&header, &env.claims("s1"));
        assert_eq!(refusal(&verifier, &token), VerifyError::ForbiddenHeader);
    }
}

#[tokio::test]
async fn headers_that_fetch_embed_or_reinterpret_keys_are_refused() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let setters: [fn(&mut Header); 5] = [
        |h| h.jku = Some("http://127.0.0.1:1/jwks".into()),
        |h| h.x5u = Some("http://127.0.0.1:1/cert".into()),
        |h| h.x5c = Some(vec!["MIIB".into()]),
        |h| h.crit = Some(vec!["exp".into()]),
        |h| {
            h.extras.insert("b64".into(), "false".into());
        },
    ];
    for set in setters {
        let mut header = env.key.header();
        set(&mut header);
        let token = env.key.sign_with(&header, &env.claims("s1"));
        assert_eq!(refusal(&verifier, &token), VerifyError::ForbiddenHeader);
    }
    // An embedded key, even authd's own.
    let mut header = env.key.header();
    header.jwk = Some(serde_json::from_value(env.key.jwk()).unwrap());
    let token = env.key.sign_with(&header, &env.claims("s1"));
    assert_eq!(refusal(&verifier, &token), VerifyError::ForbiddenHeader);
}

#[tokio::test]
async fn a_wrong_audience_or_issuer_is_refused() {
    let env = Env::start();
    let verifier = env.verifier().await;
    for (claim, value) in [
        ("aud", json!("another-api")),
        ("aud", json!(["authd", "another-api"])),
        ("iss", json!("http://127.0.0.1:1")),
        ("iss", json!(format!("{}/", env.fake.base()))),
    ] {
        let mut claims = env.claims("s1");
        claims[claim] = value;
        assert_eq!(
            refusal(&verifier, &env.key.sign(&claims)),
            VerifyError::Invalid,
            "{claim}"
        );
    }
}

#[tokio::test]
async fn the_configured_issuer_and_audience_are_the_ones_required() {
    let env = Env::start();
    let verifier = env
        .builder()
        .issuer("https://auth.example.com")
        .audience("orders")
        .build()
        .await
        .unwrap();
    let mut claims = env.claims("s1");
    assert_eq!(
        refusal(&verifier, &env.key.sign(&claims)),
        VerifyError::Invalid
    );
    claims["iss"] = json!("https://auth.example.com");
    claims["aud"] = json!("orders");
    assert!(verifier.verify(&env.key.sign(&claims)).is_ok());
}

#[tokio::test]
async fn every_required_claim_must_be_there() {
    let env = Env::start();
    let verifier = env.verifier().await;
    for missing in ["iss", "aud", "sub", "sid", "jti", "iat", "exp"] {
        let mut claims = env.claims("s1");
        claims.as_object_mut().unwrap().remove(missing);
        assert_eq!(
            refusal(&verifier, &env.key.sign(&claims)),
            VerifyError::Invalid,
            "without {missing}"
        );
    }
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let impostor = Key::generate("k1");
    assert_eq!(
        refusal(&verifier, &impostor.sign(&env.claims("s1"))),
        VerifyError::Invalid
    );
    let token = env.token("s1");
    let (signed, _) = token.rsplit_once('.').unwrap();
    let tampered = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
    assert_eq!(refusal(&verifier, &tampered), VerifyError::Invalid);
}

#[tokio::test]
async fn a_token_without_kid_is_refused() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let mut header = env.key.header();
    header.kid = None;
    let token = env.key.sign_with(&header, &env.claims("s1"));
    assert_eq!(refusal(&verifier, &token), VerifyError::UnknownKey);
}

#[tokio::test]
async fn an_expired_token_is_refused_once_past_exp_plus_the_leeway() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let token = env.token("s1");
    // exp is now + 300, the default leeway 30 s.
    env.clock.advance(Duration::from_secs(300 + 29));
    assert!(verifier.verify(&token).is_ok(), "within the leeway");
    env.clock.advance(Duration::from_secs(2));
    assert_eq!(refusal(&verifier, &token), VerifyError::Expired);
}

#[tokio::test]
async fn the_leeway_is_configurable() {
    let env = Env::start();
    let verifier = env.builder().leeway(Duration::ZERO).build().await.unwrap();
    let token = env.token("s1");
    env.clock.advance(Duration::from_secs(301));
    assert_eq!(refusal(&verifier, &token), VerifyError::Expired);
}

#[tokio::test]
async fn a_token_issued_in_the_future_beyond_the_leeway_is_refused() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let now = env.clock.now_secs();
    let mut claims = env.claims("s1");
    claims["iat"] = json!(now + 20);
    assert!(verifier.verify(&env.key.sign(&claims)).is_ok());
    claims["iat"] = json!(now + 60);
    assert_eq!(
        refusal(&verifier, &env.key.sign(&claims)),
        VerifyError::NotYetValid
    );
}

#[tokio::test]
async fn garbage_and_oversized_tokens_are_malformed() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let mut claims = env.claims("s1");
    claims["pad"] = json!("x".repeat(MAX_TOKEN_LEN));
    let oversized = env.key.sign(&claims);
    for token in ["", "abc", "a.b.c", "....", &oversized] {
        assert_eq!(
            refusal(&verifier, token),
            VerifyError::Malformed,
            "{token:.20}"
        );
    }
}

#[tokio::test]
async fn the_token_of_a_revoked_session_is_refused_and_others_are_not() {
    let env = Env::start();
    env.fake.revoke("s-ended", env.clock.now_secs() + 300);
    let verifier = env.verifier().await;
    assert_eq!(
        refusal(&verifier, &env.token("s-ended")),
        VerifyError::Revoked
    );
    assert!(verifier.verify(&env.token("s-live")).is_ok());
}

#[tokio::test]
async fn verifying_makes_no_request_to_authd() {
    let env = Env::start();
    let verifier = env.verifier().await;
    until_poll_held(&env).await;
    let token = env.token("s1");
    let before = verifier.status().requests;
    let fake_before = crate::fake::Fake::count(&env.fake.state.feed_requests);
    for _ in 0..1000 {
        verifier.verify(&token).unwrap();
    }
    assert_eq!(verifier.status().requests, before);
    assert_eq!(
        crate::fake::Fake::count(&env.fake.state.feed_requests),
        fake_before
    );
}
