//! Logout never fails open, bodies that carry no refresh token, throttles and queues, and the
//! client address behind trusted proxies.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A POST to `path` that carries `cookie` the way a browser SPA sends it.
fn with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(path))
        .header("cookie", cookie)
        .header("x-requested-with", "fetch")
}

#[tokio::test]
async fn logout_with_an_access_token_and_an_empty_json_object_ends_the_session() {
    let app = spawn_app().await;
    for body in [json!({}), json!({"refresh_token": null})] {
        let t = app.user(&email()).await;
        let r = app
            .client
            .post(app.url("/auth/logout"))
            .bearer_auth(&t.access)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{body}");
        assert_eq!(app.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.refresh(&t.refresh).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn refresh_and_logout_with_the_cookie_and_an_empty_json_object_use_the_cookie() {
    let app = spawn_app().await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    let (_, cookie) = app.cookie_login(&mail).await;
    let r = with_cookie(&app, "/auth/refresh", &cookie)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let next = refresh_cookie(&r);
    assert!(!next.is_empty(), "the refresh set no cookie");
    let access = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = with_cookie(&app, "/auth/logout", &next)
        .json(&json!({"refresh_token": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(expires_cookie(&r));
    assert_eq!(app.me_status(&access).await, StatusCode::UNAUTHORIZED);
    let r = with_cookie(&app, "/auth/refresh", &next)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
}

#[tokio::test]
async fn a_logout_refused_as_malformed_or_cross_site_keeps_the_cookie_and_the_session() {
    let app = spawn_app().await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    let (access, cookie) = app.cookie_login(&mail).await;
    let r = with_cookie(&app, "/auth/logout", &cookie)
        .json(&json!({"refresh_token": 12}))
        .send()
        .await
        .unwrap();
    assert!(!expires_cookie(&r), "a 400 dropped the cookie");
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(!expires_cookie(&r), "a 403 dropped the cookie");
    let body = assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("X-Requested-With"),
        "{body}"
    );
    assert_eq!(app.me_status(&access).await, StatusCode::OK);
    let r = with_cookie(&app, "/auth/refresh", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the session is still alive");
}

#[tokio::test]
async fn logout_with_a_stale_access_token_and_a_live_refresh_token_ends_the_session() {
    let app = spawn_app_with(|c| {
        c.access_ttl_secs = 5;
        c.leeway_secs = 0;
    })
    .await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    let (access, cookie) = app.cookie_login(&mail).await;
    let body = app.login_body(&mail, "correct horse battery").await;
    app.clock.advance(10);
    assert_eq!(app.me_status(&access).await, StatusCode::UNAUTHORIZED);
    // The browser: its expired access token and the refresh cookie.
    let r = with_cookie(&app, "/auth/logout", &cookie)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(expires_cookie(&r));
    let r = with_cookie(&app, "/auth/refresh", &cookie)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // An SDK: a garbage access token and its refresh token in the body.
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth("x")
        .json(&json!({"refresh_token": body.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh(&body.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_bad_body_is_answered_with_the_field_that_is_wrong_but_never_its_value() {
    let app = spawn_app().await;
    let cases = [
        (json!({"email": "ada@example.com"}), "`password` is missing"),
        (
            json!({"email": "ada@example.com", "password": "hunter2hunter2", "delivery": "Body"}),
            "`delivery` must be one of `cookie`, `body`",
        ),
        (
            json!({"email": "ada@example.com", "password": 31337}),
            "`password` must be a JSON string",
        ),
    ];
    for (body, says) in cases {
        let r = app.post_json("/auth/login", body.clone()).await;
        let err = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
        let message = err["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
        assert!(
            !message.contains("hunter2") && !message.contains("31337"),
            "{message}"
        );
    }
    let r = app
        .client
        .post(app.url("/auth/logout?scope=everything"))
        .send()
        .await
        .unwrap();
    let err = assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(
        err["message"].as_str().unwrap().contains("`scope`"),
        "{err}"
    );
}

#[tokio::test]
async fn password_change_is_throttled_like_login() {
    let app = spawn_app_with(|c| c.rate_limits = true).await;
    let t = app.user(&email()).await;
    for _ in 0..5 {
        let r = app
            .change_password(&t.access, "a wrong guess", "a new long passphrase")
            .await;
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let r = app
        .change_password(&t.access, "another wrong guess", "a new long passphrase")
        .await;
    assert!(r.headers().contains_key("retry-after"));
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Even the right password waits: the guesses are what is limited, not the outcome.
    let r = app
        .change_password(&t.access, "correct horse battery", "a new long passphrase")
        .await;
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    app.clock.advance(61);
    let r = app
        .change_password(&t.access, "correct horse battery", "a new long passphrase")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_hashing_queue_answers_503_with_retry_after_instead_of_queueing() {
    let app = spawn_app_with(|c| {
        c.hash_threads = 1;
        c.hash_queue = 1;
    })
    .await;
    let logins = (0..24).map(|i| {
        app.post_json(
            "/auth/login",
            json!({"email": format!("nobody{i}@example.com"), "password": "wrong wrong"}),
        )
    });
    let answers = futures::future::join_all(logins).await;
    let mut busy = 0;
    for r in answers {
        match r.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(r.headers()["retry-after"], "1");
                assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "24 logins at once never filled a queue of one");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_address_is_the_one_the_proxy_appended() {
    let app = spawn_app_with(|c| {
        c.trust_proxy = 1;
        c.rate_limits = true;
    })
    .await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    // The client wrote the first entry itself; the proxy appended the second.
    let login = |spoofed: String| {
        app.client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", format!("{spoofed}, 203.0.113.9"))
            .json(&json!({"email": mail, "password": "correct horse battery", "delivery": "body"}))
            .send()
    };
    let r = login("198.51.100.1".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t = Tokens::from_json(&r.json().await.unwrap());
    let sessions: Vec<Value> = app
        .get_auth("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["ip"], "203.0.113.9");
    // A new made-up first entry per request does not buy a new per-IP bucket.
    let mut limited = false;
    for i in 0..25 {
        let r = login(format!("10.0.{}.{}", i / 250, i % 250 + 1))
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(
        limited,
        "a spoofed X-Forwarded-For bypassed the per-IP limit"
    );
}
