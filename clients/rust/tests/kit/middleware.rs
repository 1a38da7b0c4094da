//! The tower layer through axum, and the poem middleware: the claims reach the handler, refused
//! requests get the contract's 401 or 503.
use std::time::Duration;

use authd_verify::{AuthdLayer, AuthdMiddleware, Claims, Verifier};
use axum::Extension;
use axum::routing::get;
use serde_json::{Value, json};

use crate::support::{Env, refusal};

async fn me(Extension(claims): Extension<Claims>) -> axum::Json<Value> {
    axum::Json(json!({
        "sub": claims.sub, "sid": claims.sid, "email": claims.email,
        "plan": claims.extra.get("app_metadata").and_then(|m| m.get("plan")),
    }))
}

/// Serves `/me` behind `layer` on 127.0.0.1:0; returns its URL.
async fn serve_axum(layer: AuthdLayer) -> String {
    let app = axum::Router::new().route("/me", get(me)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/me", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn get_with(url: &str, header: Option<(&str, String)>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

async fn assert_invalid_token(response: reqwest::Response) {
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert!(body["message"].is_string());
}

async fn assert_service_unavailable(status: u16, retry_after: Option<&str>, body: Value) {
    assert_eq!(status, 503);
    assert_eq!(retry_after, Some("1"));
    assert_eq!(body["error"], "service_unavailable");
}

#[tokio::test]
async fn the_axum_handler_gets_the_claims_of_a_valid_token() {
    let env = Env::start();
    let url = serve_axum(AuthdLayer::new(env.verifier().await)).await;
    let mut claims = env.claims("s1");
    claims["app_metadata"] = json!({"plan": "pro"});
    let bearer = format!("Bearer {}", env.key.sign(&claims));
    let response = get_with(&url, Some(("authorization", bearer))).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"sub": "u1", "sid": "s1", "email": "ada@example.com", "plan": "pro"})
    );
}

#[tokio::test]
async fn axum_answers_401_with_the_bearer_challenge_to_missing_bad_and_ended_tokens() {
    let env = Env::start();
    env.fake.revoke("ended", env.clock.now_secs() + 300);
    let url = serve_axum(AuthdLayer::new(env.verifier().await)).await;
    assert_invalid_token(get_with(&url, None).await).await;
    for value in [
        "Bearer not-a-token".to_owned(),
        format!("Bearer {}", env.token("ended")),
        format!("Basic {}", env.token("s1")),
    ] {
        assert_invalid_token(get_with(&url, Some(("authorization", value))).await).await;
    }
}

#[tokio::test]
async fn axum_answers_503_when_the_verifier_is_stale() {
    let mut env = Env::start();
    let verifier = env
        .builder()
        .max_staleness(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let url = serve_axum(AuthdLayer::new(verifier.clone())).await;
    let token = env.token("s1");
    env.fake.stop();
    env.clock.advance(Duration::from_secs(30));
    assert_eq!(refusal(&verifier, &token), authd_verify::VerifyError::Stale);
    let response = get_with(&url, Some(("authorization", format!("Bearer {token}")))).await;
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").cloned();
    assert!(response.headers().get("www-authenticate").is_none());
    let body: Value = response.json().await.unwrap();
    let retry_after = retry_after.as_ref().map(|v| v.to_str().unwrap());
    assert_service_unavailable(status, retry_after, body).await;
}

#[tokio::test]
async fn axum_reads_the_token_from_the_configured_cookie() {
    let env = Env::start();
    let verifier = env.verifier().await;
    let with_cookie = serve_axum(AuthdLayer::new(verifier.clone()).cookie("access_token")).await;
    let without = serve_axum(AuthdLayer::new(verifier)).await;
    let cookie = format!("theme=dark; access_token={}", env.token("s1"));
    let response = get_with(&with_cookie, Some(("cookie", cookie.clone()))).await;
    assert_eq!(response.status(), 200);
    assert_invalid_token(get_with(&without, Some(("cookie", cookie))).await).await;
}

#[poem::handler]
fn poem_me(claims: poem::web::Data<&Claims>) -> poem::web::Json<Value> {
    poem::web::Json(json!({"sub": claims.sub, "sid": claims.sid}))
}

fn poem_app(verifier: Verifier) -> poem::test::TestClient<impl poem::Endpoint> {
    use poem::EndpointExt;
    let app = poem::Route::new()
        .at("/me", poem::get(poem_me))
        .with(AuthdMiddleware::new(verifier).cookie("access_token"));
    poem::test::TestClient::new(app)
}

#[tokio::test]
async fn the_poem_handler_gets_the_claims_and_refusals_get_401() {
    let env = Env::start();
    env.fake.revoke("ended", env.clock.now_secs() + 300);
    let client = poem_app(env.verifier().await);

    let response = client
        .get("/me")
        .header("authorization", format!("Bearer {}", env.token("s1")))
        .send()
        .await;
    response.assert_status_is_ok();
    response
        .assert_json(json!({"sub": "u1", "sid": "s1"}))
        .await;

    let response = client
        .get("/me")
        .header("cookie", format!("access_token={}", env.token("s2")))
        .send()
        .await;
    response.assert_status_is_ok();

    for authorization in [None, Some(format!("Bearer {}", env.token("ended")))] {
        let mut request = client.get("/me");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await;
        response.assert_status(poem::http::StatusCode::UNAUTHORIZED);
        response.assert_header("www-authenticate", r#"Bearer error="invalid_token""#);
        let body: Value = response.0.into_body().into_json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
}

#[tokio::test]
async fn poem_answers_503_when_the_verifier_is_stale() {
    let mut env = Env::start();
    let verifier = env
        .builder()
        .max_staleness(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let client = poem_app(verifier);
    let token = env.token("s1");
    env.fake.stop();
    env.clock.advance(Duration::from_secs(30));
    let response = client
        .get("/me")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await;
    let status = response.0.status().as_u16();
    let retry_after = response
        .0
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.0.into_body().into_json().await.unwrap();
    assert_service_unavailable(status, retry_after.as_deref(), body).await;
}
