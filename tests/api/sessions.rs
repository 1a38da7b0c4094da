//! Logout scopes, the session list, ending one session, password change, events, /me, JWKS,
//! health.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn logout_local_ends_only_this_session_and_its_access_tokens_at_once() {
    let app = spawn_app().await;
    let mail = email();
    let a = app.user(&mail).await;
    let b = app.login_body(&mail, "correct horse battery").await;
    let r = app.logout(&a.access, "local").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(expires_cookie(&r));
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(app.me_status(&a.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&a.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me_status(&b.access).await, StatusCode::OK);
    assert!(app.events(&b.access).await.contains(&"logout".to_owned()));
}

#[tokio::test]
async fn logout_others_keeps_only_this_session() {
    let app = spawn_app().await;
    let mail = email();
    let a = app.user(&mail).await;
    let b = app.login_body(&mail, "correct horse battery").await;
    let c = app.login_body(&mail, "correct horse battery").await;
    assert_eq!(
        app.logout(&a.access, "others").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me_status(&a.access).await, StatusCode::OK);
    assert_eq!(app.me_status(&b.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&c.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&c.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let events = app.events(&a.access).await;
    assert_eq!(
        events.iter().filter(|k| *k == "session_revoked").count(),
        2,
        "{events:?}"
    );
}

#[tokio::test]
async fn logout_global_ends_every_session() {
    let app = spawn_app().await;
    let mail = email();
    let a = app.user(&mail).await;
    let b = app.login_body(&mail, "correct horse battery").await;
    assert_eq!(
        app.logout(&a.access, "global").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me_status(&a.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&b.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&a.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_with_a_refresh_token_in_the_body_ends_its_session() {
    let app = spawn_app().await;
    let a = app.user(&email()).await;
    let r = app
        .post_json("/auth/logout", json!({"refresh_token": a.refresh}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(expires_cookie(&r));
    assert_eq!(app.me_status(&a.access).await, StatusCode::UNAUTHORIZED);
    // Logging out again with the same token is not an error: the session is gone either way.
    let r = app
        .post_json("/auth/logout", json!({"refresh_token": a.refresh}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn no_logout_error_expires_the_cookie() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert!(!expires_cookie(&r));
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let r = app
        .client
        .post(app.url("/auth/logout?scope=everything"))
        .send()
        .await
        .unwrap();
    assert!(!expires_cookie(&r));
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A logout refused as cross-site does not expire the cookie: a foreign page must not be able
    // to log the browser out.
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", "__Host-refresh_token=abc")
        .header("origin", "https://evil.example")
        .header("x-requested-with", "x")
        .send()
        .await
        .unwrap();
    assert!(!expires_cookie(&r));
    assert_error(r, StatusCode::FORBIDDEN, "csrf_rejected").await;
    // Nor does a cross-site form POST that carried no cookie at all (SameSite=Strict).
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert!(!expires_cookie(&r));
    // A dead refresh cookie is expired: the session is gone either way.
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", "__Host-refresh_token=abc")
        .header("x-requested-with", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(expires_cookie(&r));
}

#[tokio::test]
async fn sessions_lists_the_callers_live_sessions_and_marks_the_current_one() {
    let app = spawn_app().await;
    let mail = email();
    let a = app.user(&mail).await;
    let b = app.login_body(&mail, "correct horse battery").await;
    app.user(&email()).await; // someone else
    let r = app.get_auth("/auth/sessions", &a.access).await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: Vec<Value> = r.json().await.unwrap();
    assert_eq!(list.len(), 2);
    let ids: Vec<_> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&a.session_id.as_str()) && ids.contains(&b.session_id.as_str()));
    for s in &list {
        assert_eq!(s["current"], s["id"] == a.session_id.as_str());
        for field in ["created_at", "last_refreshed_at", "expires_at"] {
            assert!(
                s[field].as_str().is_some_and(|t| t.contains('T')),
                "{field}: {s}"
            );
        }
        assert_eq!(s["ip"], "127.0.0.1");
    }
}

#[tokio::test]
async fn deleting_a_session_ends_it_and_foreign_ids_are_not_found() {
    let app = spawn_app().await;
    let mail = email();
    let a = app.user(&mail).await;
    let b = app.login_body(&mail, "correct horse battery").await;
    let stranger = app.user(&email()).await;

    let del = |access: String, id: String| {
        let app = &app;
        async move {
            app.client
                .delete(app.url(&format!("/auth/sessions/{id}")))
                .bearer_auth(access)
                .send()
                .await
                .unwrap()
        }
    };
    let r = del(stranger.access.clone(), b.session_id.clone()).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.me_status(&b.access).await, StatusCode::OK);
    let r = del(a.access.clone(), "no-such-session".into()).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    let r = del(a.access.clone(), b.session_id.clone()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&b.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&b.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(
        app.events(&a.access)
            .await
            .contains(&"session_revoked".to_owned())
    );
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_and_keeps_this_one() {
    let app = spawn_app().await;
    let mail = email();
    let a = app.user(&mail).await;
    let b = app.login_body(&mail, "correct horse battery").await;
    assert_error(
        app.change_password(&a.access, "wrong one!", "new password 1")
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // Too short, or on the list of common passwords (OWASP ASVS 6.2.4), as at registration.
    for weak in ["short", "Password123"] {
        assert_error(
            app.change_password(&a.access, "correct horse battery", weak)
                .await,
            StatusCode::BAD_REQUEST,
            "weak_password",
        )
        .await;
    }
    assert_eq!(
        app.me_status(&b.access).await,
        StatusCode::OK,
        "failed attempts change nothing"
    );

    assert_eq!(
        app.change_password(&a.access, "correct horse battery", "new password 1")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me_status(&a.access).await, StatusCode::OK);
    assert_eq!(app.me_status(&b.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&b.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.rotate(&a.refresh).await;
    let r = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": "correct horse battery"}),
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    app.login_body(&mail, "new password 1").await;
    let events = app.events(&a.access).await;
    assert!(
        events.contains(&"password_changed".to_owned()),
        "{events:?}"
    );
}

#[tokio::test]
async fn events_list_the_callers_history_newest_first() {
    let app = spawn_app().await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    let r = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": "nope nope nope"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // login_failed is recorded just after the answer (so it costs no time the client can see).
    let user_id = app
        .state()
        .store()
        .user_by_email(&mail)
        .await
        .unwrap()
        .unwrap()
        .id;
    eventually("login_failed is recorded", || async {
        let events = app.state().store().recent_events(&user_id, 10, 10).await;
        !events.unwrap().is_empty()
    })
    .await;
    app.clock.advance(1);
    let a = app.login_body(&mail, "correct horse battery").await;
    let r = app
        .client
        .get(app.url("/auth/events"))
        .bearer_auth(&a.access)
        .header("user-agent", "events-test/1.0")
        .send()
        .await
        .unwrap();
    let events: Vec<Value> = r.json().await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["login", "login_failed"]);
    assert_eq!(events[0]["session_id"], a.session_id.as_str());
    assert_eq!(events[0]["ip"], "127.0.0.1");
    assert!(events[0]["at"].as_str().is_some());
}

#[tokio::test]
async fn me_answers_who_the_token_belongs_to() {
    let app = spawn_app().await;
    let mail = email();
    let a = app.user(&mail).await;
    let v: Value = app.get_auth("/me", &a.access).await.json().await.unwrap();
    assert_eq!(v["email"], mail.as_str());
    assert_eq!(v["session_id"], a.session_id.as_str());
    assert!(v["user_id"].as_str().is_some());
}

#[tokio::test]
async fn jwks_publishes_the_ed25519_public_key_only() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = keys[0].as_object().unwrap();
    assert_eq!(k["kty"], "OKP");
    assert_eq!(k["crv"], "Ed25519");
    assert_eq!(k["alg"], "EdDSA");
    assert_eq!(k["use"], "sig");
    assert!(!k.contains_key("d"), "no private part");
    let mut names: Vec<_> = k.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x"]);
}

#[tokio::test]
async fn health_answers_ok_while_the_database_is_reachable() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
