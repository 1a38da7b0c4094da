//! Black-box attacks, as a penetration tester would run them over HTTP: token forgery, brute
//! force, oracles, input limits, response hygiene, key handling. Each test is named by what it
//! attacks.
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn assert_invalid_token(app: &TestApp, token: &str, what: &str) {
    let r = app.get_auth("/me", token).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#,
        "{what}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{what}");
}

/// A valid token's parts: (its header's `kid`, claims, kid, public key, the token itself).
async fn parts(app: &TestApp) -> (Value, Value, String, Vec<u8>, String) {
    let t = app.user(&email()).await;
    let mut it = t.access.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let public = URL_SAFE_NO_PAD.decode(&x).unwrap();
    (
        header["kid"].clone(),
        claims,
        header["kid"].as_str().unwrap().to_owned(),
        public,
        t.access,
    )
}

#[tokio::test]
async fn alg_none_in_any_spelling_is_rejected() {
    let app = spawn_app().await;
    let (_, claims, kid, _, _) = parts(&app).await;
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let h = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        for sig in ["", "AAAA"] {
            assert_invalid_token(&app, &format!("{}.{}.{sig}", b64(&h), b64(&claims)), alg).await;
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_in_every_encoding_is_rejected() {
    let app = spawn_app().await;
    let (_, claims, kid, public, _) = parts(&app).await;
    let x = URL_SAFE_NO_PAD.encode(&public);
    // SubjectPublicKeyInfo DER and PEM of the Ed25519 key, and the JWK as JSON.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend(&public);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&spki)
    );
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"})
            .to_string();
    let secrets: Vec<Vec<u8>> = vec![
        public.clone(),
        x.clone().into_bytes(),
        STANDARD.encode(&public).into_bytes(),
        spki.clone(),
        pem.into_bytes(),
        jwk.into_bytes(),
        kid.clone().into_bytes(),
    ];
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        for secret in &secrets {
            let mut h = Header::new(alg);
            h.typ = Some("at+jwt".into());
            h.kid = Some(kid.clone());
            let t = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(secret)).unwrap();
            assert_invalid_token(&app, &t, "hmac with public key").await;
        }
    }
}

#[tokio::test]
async fn injected_kids_embedded_keys_and_key_urls_are_rejected() {
    let app = spawn_app().await;
    let (_, claims, kid, _, _) = parts(&app).await;
    // The attacker's own Ed25519 key, which the token tries to make us trust.
    let attacker = authd::tokens::KeyRecord::generate(0).unwrap();
    let attacker_key = EncodingKey::from_ed_der(&attacker.private_pkcs8);
    let x = URL_SAFE_NO_PAD.encode(&attacker.public_key);
    let sign = |header: Value| {
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let sig =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &attacker_key, Algorithm::EdDSA)
                .unwrap();
        format!("{signing_input}.{sig}")
    };
    let cases = [
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": attacker.kid}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "../../../../dev/null"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "' OR '1'='1"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "x".repeat(5000)}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jku": "http://127.0.0.1:9/jwks.json"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "x5u": "http://127.0.0.1:9/cert.pem"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": ["exp"]}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": 7}),
        json!({"alg": "EdDSA", "kid": kid}),
    ];
    for h in cases {
        assert_invalid_token(&app, &sign(h.clone()), &h.to_string()).await;
    }
}

#[tokio::test]
async fn a_genuine_signature_over_tampered_headers_or_claims_is_rejected() {
    let app = spawn_app().await;
    let (_, claims, kid, _, genuine) = parts(&app).await;
    let sig = genuine.split('.').nth(2).unwrap();
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    let mut later = claims.clone();
    later["exp"] = json!(claims["exp"].as_i64().unwrap() + 100_000);
    let mut other_user = claims.clone();
    other_user["sub"] = json!("someone-else");
    for c in [later, other_user] {
        assert_invalid_token(
            &app,
            &format!("{}.{}.{sig}", b64(&header), b64(&c)),
            "spliced",
        )
        .await;
    }
    for typ in ["JWT", "at+JWT", "jwt", "application/at+jwt"] {
        let h = json!({"alg": "EdDSA", "typ": typ, "kid": kid});
        assert_invalid_token(
            &app,
            &format!("{}.{}.{sig}", b64(&h), genuine.split('.').nth(1).unwrap()),
            typ,
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_and_oversized_tokens_never_cause_a_server_error() {
    let app = spawn_app().await;
    let (_, _, _, _, genuine) = parts(&app).await;
    let mut cases: Vec<String> = vec![
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "a.b.c".into(),
        "a.b".into(),
        "ey.ey.ey".into(),
        "%%%.%%%.%%%".into(),
        format!("{genuine}.extra"),
        genuine.replace('.', ""),
        "x".repeat(5000),
        format!("{}{}", genuine, "A".repeat(8000)),
        "eyJhbGciOiJFZERTQSJ9.bnVsbA.AAAA".into(), // claims: null
        "eyJhbGciOiJFZERTQSJ9.W10.AAAA".into(),    // claims: []
    ];
    for i in (0..genuine.len()).step_by(7) {
        let mut b = genuine.clone().into_bytes();
        b[i] ^= 0x01;
        if let Ok(s) = String::from_utf8(b) {
            cases.push(s);
        }
        cases.push(genuine[..i].to_owned());
    }
    for c in cases {
        let r = app
            .client
            .get(app.url("/me"))
            .header("authorization", format!("Bearer {c}"))
            .send()
            .await;
        let Ok(r) = r else { continue }; // a header value reqwest refuses to send
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{c:.40}");
    }
}

#[tokio::test]
async fn a_refresh_token_is_no_access_token_and_an_access_token_is_no_refresh_token() {
    let app = spawn_app().await;
    let t = app.user(&email()).await;
    assert_invalid_token(&app, &t.refresh, "refresh as access").await;
    let r = app.refresh(&t.access).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // Neither attempt hurt the session.
    app.rotate(&t.refresh).await;
}

#[tokio::test]
async fn login_brute_force_is_throttled_per_ip_with_retry_after() {
    let app = spawn_app_with(|c| c.rate_limits = true).await;
    let mut last = None;
    for i in 0..25 {
        let r = app
            .post_json(
                "/auth/login",
                json!({"email": format!("nobody{i}@example.com"), "password": "guess guess"}),
            )
            .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            last = Some((i, r));
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let (i, r) = last.expect("throttled");
    assert_eq!(i, 20, "the 21st attempt from one IP is throttled");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry), "{retry}");
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    app.clock.advance(retry as i64);
    let r = app
        .post_json(
            "/auth/login",
            json!({"email": "nobody@example.com", "password": "guess guess"}),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "allowed again after Retry-After"
    );
}

#[tokio::test]
async fn guessing_one_account_from_one_ip_does_not_lock_the_real_user_out() {
    let app = spawn_app_with(|c| {
        c.rate_limits = true;
        c.trust_proxy = 1;
    })
    .await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    let login = |ip: &'static str, pw: &'static str| {
        app.client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": mail, "password": pw}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(
            login("203.0.113.7", "wrong guess").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = login("203.0.113.7", "correct horse battery").await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker's address is throttled on this account"
    );
    assert!(r.headers().contains_key("retry-after"));
    // The real user, elsewhere, logs in at once.
    assert_eq!(
        login("198.51.100.20", "correct horse battery")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_spelling_of_an_address_shares_its_login_allowance() {
    let app = spawn_app_with(|c| c.rate_limits = true).await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    let login = |typed: String, pw: &'static str| {
        app.client
            .post(app.url("/auth/login"))
            .json(&json!({"email": typed, "password": pw}))
            .send()
    };
    // Five wrong guesses, each spelt differently: each spelling is the one account.
    let spellings = [
        full_width(&mail),
        mail.to_uppercase(),
        full_width(&mail.to_uppercase()),
        format!(" {mail} "),
        mail.replace("example.com", "EXAMPLE.com"),
    ];
    for typed in spellings {
        let r = login(typed.clone(), "wrong guess").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{typed}");
    }
    let r = login(mail.clone(), "correct horse battery").await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "another spelling buys no new guesses"
    );
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_unless_the_proxy_is_trusted() {
    let app = spawn_app_with(|c| c.rate_limits = true).await;
    for i in 0..20 {
        let r = app
            .client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"email": format!("x{i}@example.com"), "password": "guess guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "198.51.100.99")
        .json(&json!({"email": "y@example.com", "password": "guess guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a spoofed header does not buy new attempts"
    );
}

#[tokio::test]
async fn registration_and_refresh_are_throttled_too() {
    let app = spawn_app_with(|c| c.rate_limits = true).await;
    let mut statuses = Vec::new();
    for _ in 0..21 {
        statuses.push(
            app.register(&email(), "correct horse battery")
                .await
                .status(),
        );
    }
    assert!(statuses[..20].iter().all(|s| *s == StatusCode::CREATED));
    assert_eq!(statuses[20], StatusCode::TOO_MANY_REQUESTS);
    let mut throttled = false;
    for _ in 0..400 {
        if app.refresh("garbage").await.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
    }
    assert!(throttled);
}

#[tokio::test]
async fn deeply_nested_and_oversized_json_is_a_client_error() {
    let app = spawn_app().await;
    let deep = format!(
        "{{\"email\":{}1{},\"password\":\"x\"}}",
        "[".repeat(3000),
        "]".repeat(3000)
    );
    let r = app
        .client
        .post(app.url("/auth/register"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert!(
        r.status() == StatusCode::BAD_REQUEST || r.status() == StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        r.status()
    );
    let long_email = format!("{}@example.com", "a".repeat(400));
    let r = app.register(&long_email, "correct horse battery").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app.register(&email(), &"p".repeat(1025)).await;
    assert_error(r, StatusCode::BAD_REQUEST, "weak_password").await;
}

#[tokio::test]
async fn no_route_answers_without_hygiene_headers_or_with_internal_text() {
    let app = spawn_app().await;
    let t = app.user(&email()).await;
    let requests = [
        ("POST", "/auth/register", "{"),
        ("POST", "/auth/login", "{\"email\":null}"),
        ("POST", "/auth/refresh", "[]"),
        ("POST", "/auth/logout?scope=x", ""),
        ("GET", "/auth/sessions", ""),
        ("DELETE", "/auth/sessions/%00", ""),
        ("POST", "/auth/password", "{}"),
        ("GET", "/auth/events", ""),
        ("GET", "/me", ""),
        ("PATCH", "/me", ""),
        ("GET", "/.well-known/jwks.json", ""),
        ("GET", "/healthz", ""),
        ("GET", "/readyz", ""),
        ("GET", "/openapi.json", ""),
        ("TRACE", "/auth/login", ""),
    ];
    for (method, path, body) in requests {
        let mut rb = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(path),
            )
            .header("content-type", "application/json");
        if path.starts_with("/auth/sessions") || path == "/auth/events" || path == "/auth/password"
        {
            rb = rb.bearer_auth(&t.access);
        }
        let r = rb.body(body).send().await.unwrap();
        let what = format!("{method} {path}");
        assert!(!r.status().is_server_error(), "{what}: {}", r.status());
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{what}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .contains("charset=utf-8"),
            "{what}"
        );
        if path.starts_with("/auth/") || path == "/me" {
            assert_eq!(r.headers()["cache-control"], "no-store", "{what}");
        }
        let text = r.text().await.unwrap().to_lowercase();
        if path.starts_with("/openapi") {
            continue;
        }
        for leak in [
            "sqlx",
            "sqlite",
            "postgres",
            "panicked",
            "stack",
            "deserialize",
            "expected",
            "line 1",
        ] {
            assert!(!text.contains(leak), "{what} leaks {leak:?}: {text}");
        }
    }
}

#[tokio::test]
async fn a_malformed_key_file_stops_the_server_and_names_the_file() {
    let dir = std::env::temp_dir().join(format!("authd-key-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("signing.pem");
    std::fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let (db, _database) = fresh_database().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authd"))
        .env("DATABASE_URL", &db.database_url)
        .env("AUTHD_LISTEN", "127.0.0.1:0")
        .env("AUTHD_KEY_FILE", &path)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        !err.contains("bm90IGEga2V5"),
        "the key material is not echoed"
    );
}

#[tokio::test]
async fn a_valid_key_file_signs_and_its_private_part_is_never_published() {
    let key = authd::tokens::KeyRecord::generate(0).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(&key.private_pkcs8)
    );
    let dir = std::env::temp_dir().join(format!("authd-key-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("signing.pem");
    std::fs::write(&path, pem).unwrap();
    let app = spawn_app_with(|c| c.key_file = Some(path.clone())).await;
    let t = app.user(&email()).await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t.access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], key.kid.as_str());
    let jwks = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(jwks.contains(&URL_SAFE_NO_PAD.encode(&key.public_key)));
    assert!(!jwks.contains("\"d\""));
    let private_b64 = STANDARD.encode(&key.private_pkcs8);
    let private_url = URL_SAFE_NO_PAD.encode(&key.private_pkcs8[key.private_pkcs8.len() - 32..]);
    assert!(!jwks.contains(&private_b64) && !jwks.contains(&private_url));
}

/// `claims` signed with the server's own current key, read from its database (what a thief of
/// the database or of a backup could do).
async fn signed_with_the_stolen_key(app: &TestApp, claims: &Value) -> String {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let key = entity::signing_keys::Entity::find()
        .filter(entity::signing_keys::Column::RetiredAt.is_null())
        .one(app.state().store().connection())
        .await
        .unwrap()
        .expect("a current key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ed_der(&key.private_pkcs8),
    )
    .unwrap()
}

#[tokio::test]
async fn a_token_that_lives_longer_than_any_server_issues_is_refused_even_with_the_real_key() {
    let app = spawn_app().await;
    let (_, claims, _, _, _) = parts(&app).await;
    let iat = claims["iat"].as_i64().unwrap();
    let with = |exp: i64, jti: &str| {
        let mut c = claims.clone();
        c["exp"] = json!(exp);
        c["jti"] = json!(jti);
        c
    };
    // The control: the stolen key makes a token authd accepts.
    let fine = signed_with_the_stolen_key(&app, &with(iat + 300, "a")).await;
    assert_eq!(app.me_status(&fine).await, StatusCode::OK);
    for (exp, what) in [(iat + 3600, "an hour"), (i64::MAX, "forever")] {
        let long = signed_with_the_stolen_key(&app, &with(exp, what)).await;
        assert_invalid_token(&app, &long, what).await;
    }
}

#[tokio::test]
async fn keys_revoke_stops_a_key_at_once_even_for_tokens_it_verified_before() {
    let app = spawn_app().await;
    let t = app.user(&email()).await;
    assert_eq!(app.me_status(&t.access).await, StatusCode::OK); // now in the cache
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t.access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let out = crate::process::run_cli(&app.db.database_url, &["keys", "revoke", &kid]).await;
    assert!(out.contains("is current now"), "{out}");
    app.eventually_me(&t.access, StatusCode::UNAUTHORIZED).await;
    assert_invalid_token(&app, &t.access, "a cached token of the revoked key").await;
    let kids = app.jwks_kids().await;
    assert!(!kids.contains(&kid), "{kids:?}");
    // Signing goes on with the new key.
    let fresh = app.user(&email()).await;
    assert_eq!(app.me_status(&fresh.access).await, StatusCode::OK);
}
