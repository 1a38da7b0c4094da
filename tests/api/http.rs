//! The HTTP boundary: the single error body, content types, body limits, cookies, CSRF, CORS.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const ALLOWED: &str = "http://app.example.test";

async fn cookie_login(app: &TestApp) -> String {
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    app.cookie_login(&mail).await.1
}

fn cookie_refresh(app: &TestApp, cookie: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/auth/refresh"))
        .header("cookie", cookie)
}

#[tokio::test]
async fn parse_errors_use_the_contract_error_body() {
    let app = spawn_app().await;
    let post = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.url("/auth/register"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_error(
        post("{not json", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        post(r#"{"email":"a@b.co"}"#, "application/json")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        post(r#"{"email":[1],"password":{}}"#, "application/json")
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_error(
        post(r#"{"email":"a@b.co","password":"12345678"}"#, "text/plain")
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_error(
        post("email=a", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let r = app.client.put(app.url("/auth/login")).send().await.unwrap();
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let r = app
        .client
        .get(app.url("/no/such/path"))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_parsing() {
    let app = spawn_app().await;
    let big = json!({"email": email(), "password": "x".repeat(20_000)}).to_string();
    let r = app
        .client
        .post(app.url("/auth/register"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Without Content-Length (chunked).
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let r = app
        .client
        .post(app.url("/auth/register"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn refresh_reads_the_cookie_and_answers_in_cookie_mode() {
    let app = spawn_app().await;
    let cookie = cookie_login(&app).await;
    let r = cookie_refresh(&app, &cookie)
        .header("x-requested-with", "fetch")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-refresh_token=") && !set.starts_with(&format!("{cookie};")));
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn cookie_borne_refresh_needs_x_requested_with_and_an_allowed_origin() {
    let app =
        spawn_app_with(|c| c.allowed_origins = authd::config::Origins(vec![ALLOWED.into()])).await;
    let cookie = cookie_login(&app).await;
    let r = cookie_refresh(&app, &cookie).send().await.unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    let r = cookie_refresh(&app, &cookie)
        .header("x-requested-with", "x")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    let r = cookie_refresh(&app, &cookie)
        .header("x-requested-with", "x")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    // The failed attempts did not consume the token.
    let r = cookie_refresh(&app, &cookie)
        .header("x-requested-with", "x")
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
}

#[tokio::test]
async fn the_servers_own_origin_passes_the_csrf_check() {
    let app = spawn_app().await;
    let cookie = cookie_login(&app).await;
    let r = cookie_refresh(&app, &cookie)
        .header("x-requested-with", "x")
        .header("origin", app.base.as_str())
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn login_from_a_foreign_origin_is_refused_but_a_plain_post_works() {
    let app = spawn_app().await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", "https://evil.example")
        .json(&json!({"email": mail, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    app.login_body(&mail, "correct horse battery").await;
}

#[tokio::test]
async fn a_refresh_token_in_both_body_and_cookie_is_ambiguous() {
    let app = spawn_app().await;
    let cookie = cookie_login(&app).await;
    let t = app.user(&email()).await;
    let r = cookie_refresh(&app, &cookie)
        .header("x-requested-with", "x")
        .json(&json!({"refresh_token": t.refresh}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "ambiguous_refresh_token").await;
}

#[tokio::test]
async fn cors_preflight_is_answered_only_for_allowed_origins() {
    let app =
        spawn_app_with(|c| c.allowed_origins = authd::config::Origins(vec![ALLOWED.into()])).await;
    let pre = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/auth/refresh"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "x-requested-with, content-type",
            )
            .send()
    };
    let r = pre(ALLOWED).await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = pre("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn insecure_cookie_mode_drops_secure_and_the_host_prefix() {
    let app = spawn_app_with(|c| c.insecure_cookies = true).await;
    let cookie = cookie_login(&app).await;
    assert!(cookie.starts_with("refresh_token="));
    let r = cookie_refresh(&app, &cookie)
        .header("x-requested-with", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = r.headers()["set-cookie"].to_str().unwrap();
    assert!(!set.contains("Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"));
}

#[tokio::test]
async fn every_route_sends_nosniff_and_auth_routes_no_store() {
    let app = spawn_app().await;
    for path in [
        "/healthz",
        "/.well-known/jwks.json",
        "/openapi.json",
        "/me",
        "/auth/sessions",
        "/nope",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap();
        assert!(ct.contains("charset=utf-8"), "{path}: {ct}");
        if path.starts_with("/auth") || path == "/me" {
            assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        }
    }
}

#[tokio::test]
async fn no_page_can_be_framed_or_leak_its_address_and_the_docs_run_under_a_csp() {
    let app = spawn_app().await;
    for path in ["/docs", "/healthz", "/auth/sessions"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["x-frame-options"], "DENY", "{path}");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer", "{path}");
    }
    let r = app.client.get(app.url("/docs")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
}
