//! Access tokens: EdDSA, `typ: at+jwt`, `kid`, every claim required, algorithm and key pinned,
//! `iss`/`aud`/`exp` checked against the injected clock with the leeway.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::*;

fn decode_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The server's own current key, read from its database, to forge tokens with.
async fn server_key(app: &TestApp) -> (String, EncodingKey, Vec<u8>) {
    let keys = entity::prelude::SigningKeys::find()
        .all(app.state().store().connection())
        .await
        .unwrap();
    let k = keys.into_iter().find(|k| k.retired_at.is_none()).unwrap();
    (
        k.kid,
        EncodingKey::from_ed_der(&k.private_pkcs8),
        k.public_key,
    )
}

async fn assert_rejected(app: &TestApp, token: &str) {
    let r = app.get_auth("/me", token).await;
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn access_tokens_are_eddsa_at_jwt_with_kid_and_every_claim() {
    let app = spawn_app().await;
    let t = app.user(&email()).await;
    let header = decode_part(&t.access, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let (kid, _, _) = server_key(&app).await;
    assert_eq!(header["kid"], kid.as_str());
    let claims = decode_part(&t.access, 1);
    for c in ["iss", "aud", "sub", "sid", "jti", "iat", "exp"] {
        assert!(claims.get(c).is_some(), "{c} missing: {claims}");
    }
    assert_eq!(claims["aud"], "authd");
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["sid"], t.session_id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
}

#[tokio::test]
async fn access_tokens_expire_by_the_injected_clock_with_the_leeway() {
    let app = spawn_app().await;
    let t = app.user(&email()).await;
    app.clock.advance(300 + 30);
    assert_eq!(
        app.me_status(&t.access).await,
        StatusCode::OK,
        "inside the 30 s leeway"
    );
    app.clock.advance(1);
    assert_rejected(&app, &t.access).await;
}

#[tokio::test]
async fn forged_and_altered_tokens_are_rejected() {
    let app = spawn_app().await;
    let t = app.user(&email()).await;
    let (kid, key, public) = server_key(&app).await;
    let good = decode_part(&t.access, 1);
    let sign = |header: Header, claims: &Value, key: &EncodingKey| {
        jsonwebtoken::encode(&header, claims, key).unwrap()
    };
    let eddsa = |typ: &str| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some(typ.to_owned());
        h.kid = Some(kid.clone());
        h
    };

    // Sanity: our forger makes tokens the server accepts.
    assert_eq!(
        app.me_status(&sign(eddsa("at+jwt"), &good, &key)).await,
        StatusCode::OK
    );

    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let mut bad = vec![
        sign(eddsa("JWT"), &good, &key),
        sign(
            eddsa("at+jwt"),
            &with("iss", json!("https://evil.example")),
            &key,
        ),
        sign(eddsa("at+jwt"), &with("aud", json!("someone-else")), &key),
        sign(
            eddsa("at+jwt"),
            &with("exp", json!(good["exp"].to_string())),
            &key,
        ),
        sign(eddsa("at+jwt"), &with("exp", json!(1.5)), &key),
        sign(eddsa("at+jwt"), &with("exp", Value::Null), &key),
    ];
    for c in ["iss", "aud", "sub", "sid", "jti", "iat", "exp"] {
        bad.push(sign(eddsa("at+jwt"), &without(c), &key));
    }
    // Unknown kid, no kid, jku / jwk / x5u / crit headers.
    let mut h = eddsa("at+jwt");
    h.kid = Some("not-a-key".into());
    bad.push(sign(h, &good, &key));
    let mut h = eddsa("at+jwt");
    h.kid = None;
    bad.push(sign(h, &good, &key));
    let mut h = eddsa("at+jwt");
    h.jku = Some("https://evil.example/jwks.json".into());
    bad.push(sign(h, &good, &key));
    let mut h = eddsa("at+jwt");
    h.x5u = Some("https://evil.example/cert.pem".into());
    bad.push(sign(h, &good, &key));
    let mut h = eddsa("at+jwt");
    h.crit = Some(vec!["exp".into()]);
    bad.push(sign(h, &good, &key));
    // HS256 signed with the public key, in the JWKS's encoding and raw.
    let x = URL_SAFE_NO_PAD.encode(&public);
    for secret in [public.clone(), x.into_bytes()] {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.clone());
        bad.push(sign(h, &good, &EncodingKey::from_secret(&secret)));
    }
    // alg: none, bit flips, truncation, spliced signature.
    let parts: Vec<&str> = t.access.split('.').collect();
    let none_header =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#));
    bad.push(format!("{none_header}.{}.", parts[1]));
    let mut flipped = t.access.clone().into_bytes();
    let mid = parts[0].len() + 5;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    bad.push(String::from_utf8(flipped).unwrap());
    bad.push(t.access[..t.access.len() - 3].to_owned());
    let other = app.user(&email()).await;
    let other_sig = other.access.split('.').nth(2).unwrap();
    bad.push(format!("{}.{}.{other_sig}", parts[0], parts[1]));
    bad.push("a".repeat(10_000));
    bad.push(t.refresh.clone());

    // The Rust verifier kit refuses every one of them too, and takes the good one: authd's
    // rule and the kit's cannot drift apart unnoticed.
    let service_key = app
        .service_key(&[authd::tokens::Scope::RevocationsRead])
        .await;
    let kit = authd_verify::Verifier::builder(&app.base)
        .service_key(service_key)
        .build()
        .await
        .unwrap();
    assert!(kit.verify(&sign(eddsa("at+jwt"), &good, &key)).is_ok());
    for token in &bad {
        assert_rejected(&app, token).await;
        assert!(kit.verify(token).is_err(), "the kit accepts {token:.60}");
    }
}

#[tokio::test]
async fn a_missing_or_non_bearer_authorization_gets_the_json_invalid_token() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/me")).send().await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let r = app
        .client
        .get(app.url("/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
}
