//! The admin API (`/admin/*`, a service key of scope `admin`), custom claims, self-service
//! deletion and session policies.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use authd::clock::Clock as _;
use authd::tokens::Scope;

const PASSWORD: &str = "correct horse battery";

/// Requests with one service key.
struct Admin<'a> {
    app: &'a TestApp,
    key: String,
}

impl<'a> Admin<'a> {
    async fn new(app: &'a TestApp) -> Admin<'a> {
        let key = app.service_key(&[Scope::Admin]).await;
        Admin { app, key }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(&self.key)
            .header("user-agent", "backoffice/1.0");
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request")
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.send(Method::GET, path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.expect("json")
    }

    async fn patch(&self, id: &str, body: Value) -> Response {
        let path = format!("/admin/users/{id}");
        self.send(Method::PATCH, &path, Some(body)).await
    }

    async fn create(&self, body: Value) -> Response {
        self.send(Method::POST, "/admin/users", Some(body)).await
    }

    /// Events of `user_id`, newest first.
    async fn events_of(&self, user_id: &str) -> Vec<Value> {
        let page = self
            .get(&format!("/admin/events?user_id={user_id}&limit=200"))
            .await;
        page["events"].as_array().expect("events").clone()
    }
}

/// The `Set-Cookie` of an answer that must set the refresh cookie.
fn set_cookie(r: &Response) -> String {
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_owned()
}

/// `POST /auth/refresh` with the refresh cookie `cookie` (`name=value`).
async fn cookie_refresh(app: &TestApp, cookie: &str) -> Response {
    app.client
        .post(app.url("/auth/refresh"))
        .header("cookie", cookie)
        .header("x-requested-with", "x")
        .send()
        .await
        .expect("refresh")
}

/// The claims of an access token, unverified (the test only reads what authd wrote).
fn claims(access: &str) -> Value {
    let payload = access.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

/// The reasons the feed gives for the sessions of `user_id`.
async fn feed_reasons(app: &TestApp, user_id: &str) -> Vec<String> {
    let key = app.service_key(&[Scope::RevocationsRead]).await;
    let (entries, _) = app.feed_snapshot(&key).await;
    entries
        .iter()
        .filter(|e| e["user_id"] == user_id)
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn admin_operations_refuse_no_key_another_scope_and_a_users_access_token() {
    let app = spawn_app().await;
    let mail = email();
    let t = app.user(&mail).await;
    let id = app.user_id_of(&t.access).await;
    let feed_only = app
        .service_key(&[Scope::RevocationsRead, Scope::Introspect])
        .await;
    let operations: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/admin/users".into(), None),
        (
            Method::POST,
            "/admin/users".into(),
            Some(json!({"email": email(), "password": PASSWORD})),
        ),
        (Method::GET, format!("/admin/users/{id}"), None),
        (
            Method::PATCH,
            format!("/admin/users/{id}"),
            Some(json!({"disabled": true})),
        ),
        (Method::DELETE, format!("/admin/users/{id}"), None),
        (Method::GET, format!("/admin/users/{id}/sessions"), None),
        (Method::DELETE, format!("/admin/users/{id}/sessions"), None),
        (Method::GET, "/admin/events".into(), None),
        (
            Method::POST,
            format!("/admin/users/{id}/password-reset"),
            Some(json!({"send": false})),
        ),
    ];
    for (method, path, body) in &operations {
        let req = |auth: Option<&str>| {
            let mut r = app.client.request(method.clone(), app.url(path));
            if let Some(a) = auth {
                r = r.bearer_auth(a);
            }
            if let Some(b) = body {
                r = r.json(b);
            }
            r.send()
        };
        let none = req(None).await.expect("request");
        assert_error(none, StatusCode::UNAUTHORIZED, "invalid_service_key").await;
        let at = req(Some(&t.access)).await.expect("request");
        assert_error(at, StatusCode::UNAUTHORIZED, "invalid_service_key").await;
        let scoped = req(Some(&feed_only)).await.expect("request");
        assert_error(scoped, StatusCode::FORBIDDEN, "insufficient_scope").await;
    }
    // Nothing was done by any of them.
    assert_eq!(app.me_status(&t.access).await, StatusCode::OK);
    app.login_body(&mail, PASSWORD).await;
}

#[tokio::test]
async fn admins_create_read_and_edit_users_and_each_change_names_the_key() {
    let app = spawn_app().await;
    let admin = Admin::new(&app).await;
    let mail = email();
    let r = admin
        .create(json!({"email": format!("  {}", mail.to_uppercase()), "password": PASSWORD}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["email"], mail.as_str());
    assert_eq!(created["email_verified"], false);
    assert_eq!(created["disabled"], false);
    assert_eq!(created["app_metadata"], Value::Null);
    assert_eq!(created["max_sessions"], Value::Null);
    let id = created["id"].as_str().expect("id").to_owned();
    app.login_body(&mail, PASSWORD).await;

    let again = admin
        .create(json!({"email": mail, "password": PASSWORD}))
        .await;
    assert_error(again, StatusCode::CONFLICT, "email_taken").await;
    let weak = admin
        .create(json!({"email": email(), "password": "short"}))
        .await;
    assert_error(weak, StatusCode::BAD_REQUEST, "weak_password").await;
    let bad = admin
        .create(json!({"email": "not-an-email", "password": PASSWORD}))
        .await;
    assert_error(bad, StatusCode::BAD_REQUEST, "invalid_email").await;
    let unknown = admin
        .create(json!({"email": email(), "role": "admin"}))
        .await;
    assert_error(unknown, StatusCode::BAD_REQUEST, "invalid_request").await;

    // Without a password, nobody can log in until a reset.
    let nopass = email();
    let r = admin
        .create(json!({"email": nopass, "email_verified": true}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["email_verified"], true);
    let login = app
        .post_json(
            "/auth/login",
            json!({"email": nopass, "password": "", "delivery": "body"}),
        )
        .await;
    assert_error(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    let got = admin.get(&format!("/admin/users/{id}")).await;
    assert_eq!(got, created);
    let missing = admin
        .send(Method::GET, "/admin/users/no-such-user", None)
        .await;
    assert_error(missing, StatusCode::NOT_FOUND, "not_found").await;

    let r = admin
        .patch(&id, json!({"email_verified": true, "max_sessions": 3}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["email_verified"], true);
    assert_eq!(v["max_sessions"], 3);
    for bad in [
        json!({"max_sessions": 0}),
        json!({"max_sessions": 10_001}),
        json!({"disabled": "yes"}),
        json!({"password": "new password here"}),
        json!({"app_metadata": ["not", "an", "object"]}),
    ] {
        let r = admin.patch(&id, bad.clone()).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let unchanged = admin.get(&format!("/admin/users/{id}")).await;
    assert_eq!(unchanged["max_sessions"], 3);

    let events = admin.events_of(&id).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in [
        "user_created",
        "email_verification_changed",
        "session_limit_changed",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let by_admin: Vec<&Value> = events.iter().filter(|e| e["kind"] != "login").collect();
    assert!(by_admin.iter().all(|e| {
        e["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("service_key:key-"))
            && e["user_agent"] == "backoffice/1.0"
    }));
    let logins: Vec<&Value> = events.iter().filter(|e| e["kind"] == "login").collect();
    assert!(logins.iter().all(|e| e["actor"].is_null()));
}

#[tokio::test]
async fn searching_by_email_prefix_pages_in_order_without_repeats_while_users_come_and_go() {
    let app = spawn_app().await;
    let admin = Admin::new(&app).await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mail = |n: &str| format!("{tag}-{n}@example.com");
    for n in ["b", "d", "f", "h", "j", "l", "n"] {
        let r = admin
            .create(json!({"email": mail(n), "password": PASSWORD}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    // Not matched: another prefix, and a LIKE wildcard in the query matches only itself.
    admin
        .create(json!({"email": format!("x{tag}-a@example.com"), "password": PASSWORD}))
        .await;
    let wild: Value = admin
        .get(&format!("/admin/users?query={}_", &tag[..7]))
        .await;
    assert_eq!(wild["users"].as_array().map(Vec::len), Some(0), "{wild}");

    let mut seen = Vec::new();
    let mut query = format!("/admin/users?query={}&limit=3", tag.to_uppercase());
    for round in 0.. {
        let page = admin.get(&query).await;
        for u in page["users"].as_array().expect("users") {
            seen.push(u["email"].as_str().expect("email").to_owned());
        }
        // Between pages: one user before what was read, one after it; one deleted.
        if round == 0 {
            admin
                .create(json!({"email": mail("a"), "password": PASSWORD}))
                .await;
            admin
                .create(json!({"email": mail("k"), "password": PASSWORD}))
                .await;
            let h = admin
                .get(&format!("/admin/users?query={}", mail("h")))
                .await;
            let h_id = h["users"][0]["id"].as_str().expect("h").to_owned();
            let del = admin
                .send(Method::DELETE, &format!("/admin/users/{h_id}"), None)
                .await;
            assert_eq!(del.status(), StatusCode::NO_CONTENT);
        }
        match page["cursor"].as_str() {
            Some(c) => query = format!("/admin/users?query={tag}&limit=3&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<String> = ["b", "d", "f", "j", "k", "l", "n"]
        .iter()
        .map(|n| mail(n))
        .collect();
    assert_eq!(seen, want);

    // The query is folded as addresses are: full-width letters find the same users, and a
    // whole address with a Unicode domain finds its stored ASCII form.
    let wide: String = tag
        .chars()
        .map(|c| char::from_u32(c as u32 + 0xFEE0).expect("full-width"))
        .collect();
    let folded = admin
        .get(&format!("/admin/users?query={wide}&limit=200"))
        .await;
    let plain = admin
        .get(&format!("/admin/users?query={tag}&limit=200"))
        .await;
    // The seven read while paging, and the one created before the first page.
    assert_eq!(
        folded["users"].as_array().map(Vec::len),
        Some(8),
        "{folded}"
    );
    assert_eq!(folded["users"], plain["users"]);
    let unicode = admin
        .create(json!({"email": format!("{tag}-u@bücher.example"), "password": PASSWORD}))
        .await;
    assert_eq!(unicode.status(), StatusCode::CREATED);
    let whole = admin
        .get(&format!("/admin/users?query={tag}-u@Bücher.example"))
        .await;
    assert_eq!(
        whole["users"][0]["email"],
        format!("{tag}-u@xn--bcher-kva.example"),
        "{whole}"
    );

    let garbage = admin
        .send(Method::GET, "/admin/users?cursor=%%%", None)
        .await;
    assert_error(garbage, StatusCode::BAD_REQUEST, "invalid_request").await;
    let other_kind = URL_SAFE_NO_PAD.encode("e42");
    let wrong = admin
        .send(
            Method::GET,
            &format!("/admin/users?cursor={other_kind}"),
            None,
        )
        .await;
    assert_error(wrong, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A NUL reached Postgres as a pattern (a 500 there).
    let nul = admin
        .send(Method::GET, "/admin/users?query=a%00", None)
        .await;
    assert_error(nul, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn disabling_a_user_ends_every_session_at_once_and_enabling_lets_them_back_in() {
    let app = spawn_app().await;
    let admin = Admin::new(&app).await;
    let mail = email();
    let one = app.user(&mail).await;
    let two = app.login_body(&mail, PASSWORD).await;
    let id = app.user_id_of(&one.access).await;

    let r = admin.patch(&id, json!({"disabled": true})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["disabled"], true);
    // At once, on this instance: no sync needed.
    assert_eq!(app.me_status(&one.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&two.access).await, StatusCode::UNAUTHORIZED);
    let refresh = app.refresh(&two.refresh).await;
    assert_error(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let login = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": PASSWORD, "delivery": "body"}),
        )
        .await;
    assert_error(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        feed_reasons(&app, &id).await,
        vec!["user_disabled", "user_disabled"]
    );
    let sessions = admin.get(&format!("/admin/users/{id}/sessions")).await;
    assert_eq!(sessions.as_array().map(Vec::len), Some(0));

    let r = admin.patch(&id, json!({"disabled": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let back = app.login_body(&mail, PASSWORD).await;
    assert_eq!(app.me_status(&back.access).await, StatusCode::OK);
    let events = admin.events_of(&id).await;
    assert_by_key(&events, "user_disabled", 1);
    assert_by_key(&events, "user_enabled", 1);
}

#[tokio::test]
async fn deleting_a_user_ends_its_sessions_and_removes_its_personal_data_but_not_the_trail() {
    let app = spawn_app().await;
    let admin = Admin::new(&app).await;
    let mail = email();
    let t = app.user(&mail).await;
    let id = app.user_id_of(&t.access).await;
    // A failed login too: it records the client's address under the user.
    app.post_json(
        "/auth/login",
        json!({"email": mail, "password": "wrong password", "delivery": "body"}),
    )
    .await;
    eventually("login_failed is recorded", || async {
        admin
            .events_of(&id)
            .await
            .iter()
            .any(|e| e["kind"] == "login_failed")
    })
    .await;

    // And a reset link: its token row names the address.
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let tokens_of = || {
        entity::email_tokens::Entity::find()
            .filter(entity::email_tokens::Column::UserId.eq(id.as_str()))
            .count(app.state().store().connection())
    };
    app.post_json("/auth/password/forgot", json!({"email": mail}))
        .await;
    eventually("a reset token is issued", || async {
        tokens_of().await.expect("count") == 1
    })
    .await;

    let r = admin
        .send(Method::DELETE, &format!("/admin/users/{id}"), None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(tokens_of().await.expect("count"), 0);
    assert_eq!(app.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
    let refresh = app.refresh(&t.refresh).await;
    assert_error(refresh, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_eq!(feed_reasons(&app, &id).await, vec!["user_deleted"]);
    let gone = admin
        .send(Method::GET, &format!("/admin/users/{id}"), None)
        .await;
    assert_error(gone, StatusCode::NOT_FOUND, "not_found").await;
    let again = admin
        .send(Method::DELETE, &format!("/admin/users/{id}"), None)
        .await;
    assert_error(again, StatusCode::NOT_FOUND, "not_found").await;

    // The trail stays under the user id, without the user's addresses and browsers.
    let events = admin.events_of(&id).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"user_deleted"), "{kinds:?}");
    for kind in ["login", "login_failed", "session_revoked"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    for e in &events[1..] {
        assert!(e["ip"].is_null() && e["user_agent"].is_null(), "{e}");
    }
    assert!(
        events[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("service_key:"))
    );

    // No row holds the email, an address or a browser of the user any more.
    let db = app.state().store().connection();
    let by_email = entity::users::Entity::find()
        .filter(entity::users::Column::Email.eq(mail.as_str()))
        .all(db)
        .await
        .expect("users");
    assert!(by_email.is_empty());
    let sessions = entity::sessions::Entity::find()
        .filter(entity::sessions::Column::UserId.eq(id.as_str()))
        .all(db)
        .await
        .expect("sessions");
    assert!(sessions.is_empty());
    let rows = entity::security_events::Entity::find()
        .filter(entity::security_events::Column::UserId.eq(id.as_str()))
        .all(db)
        .await
        .expect("events");
    assert!(rows.len() >= 4);
    for e in rows.iter().filter(|e| e.kind != "user_deleted") {
        assert!(e.ip.is_none() && e.user_agent.is_none(), "{e:?}");
    }
    // The address is free again, for a new account.
    let r = app.register(&mail, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let fresh = app.login_body(&mail, PASSWORD).await;
    assert_ne!(app.user_id_of(&fresh.access).await, id);
}

#[tokio::test]
async fn app_metadata_reaches_access_tokens_from_the_next_refresh_and_introspection() {
    let app = spawn_app().await;
    let admin = Admin::new(&app).await;
    let t = app.user(&email()).await;
    let id = app.user_id_of(&t.access).await;
    assert!(claims(&t.access).get("app_metadata").is_none());

    let roles = json!({"roles": ["admin", "billing"], "tenant": 42});
    let r = admin.patch(&id, json!({"app_metadata": roles})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["app_metadata"], roles);
    // The token in hand is as it was; the next one carries the claim.
    assert!(claims(&t.access).get("app_metadata").is_none());
    let next = app.rotate(&t.refresh).await;
    assert_eq!(claims(&next.access)["app_metadata"], roles);
    assert_eq!(app.me_status(&next.access).await, StatusCode::OK);
    let fresh_login = app
        .login_body(v["email"].as_str().expect("email"), PASSWORD)
        .await;
    assert_eq!(claims(&fresh_login.access)["app_metadata"], roles);

    let introspector = app.service_key(&[Scope::Introspect]).await;
    let seen: Value = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(&introspector)
        .form(&[("token", next.access.as_str())])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(seen["active"], true);
    assert_eq!(seen["app_metadata"], roles);

    // Over 2 KiB: refused, nothing changed.
    let big = json!({"blob": "x".repeat(2040)});
    let r = admin
        .patch(&id, json!({"app_metadata": big, "email_verified": true}))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let kept = admin.get(&format!("/admin/users/{id}")).await;
    assert_eq!(kept["app_metadata"], roles);
    assert_eq!(kept["email_verified"], false);
    let just_fits = json!({"b": "x".repeat(2040)});
    assert_eq!(serde_json::to_string(&just_fits).expect("json").len(), 2048);
    let r = admin.patch(&id, json!({"app_metadata": just_fits})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The largest allowed still makes a token every verifier takes (they refuse over 4096).
    let largest = app.rotate(&next.refresh).await;
    assert_eq!(claims(&largest.access)["app_metadata"], just_fits);
    assert_eq!(app.me_status(&largest.access).await, StatusCode::OK);
    assert!(largest.access.len() < 4096, "{}", largest.access.len());
    println!(
        "access token with 2 KiB of app_metadata: {} bytes",
        largest.access.len()
    );
    let next = largest;

    // `null` removes it, from the next refresh on.
    let r = admin.patch(&id, json!({"app_metadata": null})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let after = app.rotate(&next.refresh).await;
    assert!(claims(&after.access).get("app_metadata").is_none());
}

#[tokio::test]
async fn an_admins_email_change_is_unique_unverified_unless_said_and_keeps_sessions() {
    let app = spawn_app().await;
    let admin = Admin::new(&app).await;
    let (old, taken, new) = (email(), email(), email());
    let t = app.user(&old).await;
    app.user(&taken).await;
    let id = app.user_id_of(&t.access).await;
    admin.patch(&id, json!({"email_verified": true})).await;

    let r = admin
        .patch(&id, json!({"email": taken.to_uppercase()}))
        .await;
    assert_error(r, StatusCode::CONFLICT, "email_taken").await;
    let r = admin.patch(&id, json!({"email": "nope"})).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_email").await;
    let r = admin.patch(&id, json!({"email": new})).await;
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["email"], new.as_str());
    assert_eq!(v["email_verified"], false, "a new address is unverified");
    // Sessions stay; the next token carries the new address.
    let next = app.rotate(&t.refresh).await;
    assert_eq!(claims(&next.access)["email"], new.as_str());
    app.login_body(&new, PASSWORD).await;
    let old_login = app
        .post_json(
            "/auth/login",
            json!({"email": old, "password": PASSWORD, "delivery": "body"}),
        )
        .await;
    assert_error(old_login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = admin
        .patch(&id, json!({"email": old, "email_verified": true}))
        .await;
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (&v["email"], &v["email_verified"]),
        (&json!(old), &json!(true))
    );
    assert_by_key(&admin.events_of(&id).await, "email_changed", 2);
}

/// `events` hold `n` events of `kind`, each naming the service key that made the change.
fn assert_by_key(events: &[Value], kind: &str, n: usize) {
    let of_kind: Vec<&Value> = events.iter().filter(|e| e["kind"] == kind).collect();
    assert_eq!(of_kind.len(), n, "{kind}: {events:?}");
    assert!(
        of_kind.iter().all(|e| e["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("service_key:key-"))),
        "{kind}: {of_kind:?}"
    );
}

#[tokio::test]
async fn concurrent_edits_of_different_fields_all_apply_and_a_racing_login_never_survives_a_disable()
 {
    let app = spawn_app().await;
    let admin = Admin::new(&app).await;
    let mail = email();
    let t = app.user(&mail).await;
    let id = app.user_id_of(&t.access).await;
    let edits = [
        json!({"email_verified": true}),
        json!({"app_metadata": {"plan": "pro"}}),
        json!({"max_sessions": 7}),
    ];
    let answers = join_all(edits.iter().map(|e| admin.patch(&id, e.clone()))).await;
    assert!(answers.iter().all(|r| r.status() == StatusCode::OK));
    let v = admin.get(&format!("/admin/users/{id}")).await;
    assert_eq!(v["email_verified"], true);
    assert_eq!(v["app_metadata"], json!({"plan": "pro"}));
    assert_eq!(v["max_sessions"], 7);

    // Logins racing a disable: whatever order they commit in, no session is left alive.
    let logins = (0..4).map(|_| {
        app.post_json(
            "/auth/login",
            json!({"email": mail, "password": PASSWORD, "delivery": "body"}),
        )
    });
    let (results, disabled) = tokio::join!(
        join_all(logins),
        admin.patch(&id, json!({"disabled": true}))
    );
    assert_eq!(disabled.status(), StatusCode::OK);
    for r in results {
        if r.status() == StatusCode::OK {
            let tokens = Tokens::from_json(&r.json().await.expect("json"));
            assert_eq!(
                app.me_status(&tokens.access).await,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(
                app.refresh(&tokens.refresh).await.status(),
                StatusCode::UNAUTHORIZED
            );
        }
    }
    let sessions = admin.get(&format!("/admin/users/{id}/sessions")).await;
    assert_eq!(sessions.as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn admins_list_a_users_sessions_and_end_them_all_without_locking_the_account() {
    let app = spawn_app().await;
    let admin = Admin::new(&app).await;
    let mail = email();
    let one = app.user(&mail).await;
    let r = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": PASSWORD, "delivery": "body", "remember": false}),
        )
        .await;
    let two = Tokens::from_json(&r.json().await.expect("json"));
    let id = app.user_id_of(&one.access).await;
    let listed = admin.get(&format!("/admin/users/{id}/sessions")).await;
    let mut ids: Vec<(&str, bool)> = listed
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| (s["id"].as_str().expect("id"), s["remember"] == true))
        .collect();
    ids.sort();
    let mut want = vec![
        (one.session_id.as_str(), true),
        (two.session_id.as_str(), false),
    ];
    want.sort();
    assert_eq!(ids, want);

    let r = admin
        .send(Method::DELETE, &format!("/admin/users/{id}/sessions"), None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&one.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&two.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        feed_reasons(&app, &id).await,
        vec!["session_revoked", "session_revoked"]
    );
    // Each ended session is a security event naming the key that ended it.
    assert_by_key(&admin.events_of(&id).await, "session_revoked", 2);
    app.login_body(&mail, PASSWORD).await;
    let nobody = admin
        .send(Method::DELETE, "/admin/users/nobody/sessions", None)
        .await;
    assert_error(nobody, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_users_own_session_cap_applies_from_the_next_login_and_null_restores_the_servers() {
    let app = spawn_app_with(|c| c.max_sessions_per_user = 100).await;
    let admin = Admin::new(&app).await;
    let mail = email();
    let first = app.user(&mail).await;
    let id = app.user_id_of(&first.access).await;
    let r = admin.patch(&id, json!({"max_sessions": 2})).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.clock.advance(1);
    let second = app.login_body(&mail, PASSWORD).await;
    assert_eq!(app.me_status(&first.access).await, StatusCode::OK);
    app.clock.advance(1);
    let third = app.login_body(&mail, PASSWORD).await;
    // The oldest made room.
    assert_eq!(app.me_status(&first.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&second.access).await, StatusCode::OK);
    assert_eq!(app.me_status(&third.access).await, StatusCode::OK);

    let r = admin.patch(&id, json!({"max_sessions": null})).await;
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["max_sessions"], Value::Null);
    for _ in 0..3 {
        app.clock.advance(1);
        app.login_body(&mail, PASSWORD).await;
    }
    assert_eq!(app.me_status(&second.access).await, StatusCode::OK);
    let sessions = admin.get(&format!("/admin/users/{id}/sessions")).await;
    assert_eq!(sessions.as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn the_audit_trail_pages_newest_first_stably_and_filters_by_user_kind_and_time() {
    let app = spawn_app().await;
    let admin = Admin::new(&app).await;
    let mail = email();
    let t = app.user(&mail).await;
    let id = app.user_id_of(&t.access).await;
    for _ in 0..4 {
        app.clock.advance(10);
        app.login_body(&mail, PASSWORD).await;
    }
    let since = app.clock.now() - 15;
    let mut seen = Vec::new();
    let mut query = format!("/admin/events?user_id={id}&limit=2");
    for round in 0.. {
        let page = admin.get(&query).await;
        let events = page["events"].as_array().expect("events");
        assert!(events.len() <= 2);
        seen.extend(
            events
                .iter()
                .map(|e| e["at"].as_str().expect("at").to_owned()),
        );
        if round == 0 {
            // New events meanwhile land before the first page, not in the next ones.
            app.clock.advance(10);
            app.login_body(&mail, PASSWORD).await;
        }
        match page["cursor"].as_str() {
            Some(c) => query = format!("/admin/events?user_id={id}&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");

    let recent = admin
        .get(&format!(
            "/admin/events?user_id={id}&kind=login&since={}",
            time::OffsetDateTime::from_unix_timestamp(since)
                .expect("time")
                .format(&time::format_description::well_known::Rfc3339)
                .expect("rfc3339")
                .replace('+', "%2B")
        ))
        .await;
    assert_eq!(
        recent["events"].as_array().map(Vec::len),
        Some(3),
        "{recent}"
    );
    let other = admin.get("/admin/events?kind=user_deleted").await;
    assert_eq!(other["events"].as_array().map(Vec::len), Some(0));
    for bad in [
        "kind=nope",
        "cursor=AAAA",
        "since=yesterday",
        "limit=0",
        "limit=201",
        // A NUL once dropped the filter and answered every user's events.
        "user_id=%00",
        "user_id=a%00b",
    ] {
        let r = admin
            .send(Method::GET, &format!("/admin/events?{bad}"), None)
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn deleting_my_account_needs_my_password_ends_every_session_and_expires_the_cookie() {
    let app = spawn_app().await;
    let mail = email();
    let (cookie_at, _cookie) = {
        app.register(&mail, PASSWORD).await;
        app.cookie_login(&mail).await
    };
    let other = app.login_body(&mail, PASSWORD).await;
    let id = app.user_id_of(&other.access).await;
    let delete = |password: &str| {
        app.client
            .delete(app.url("/me"))
            .bearer_auth(&cookie_at)
            .json(&json!({"current_password": password}))
            .send()
    };
    let wrong = delete("not my password").await.expect("request");
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(app.me_status(&other.access).await, StatusCode::OK);
    let no_password = app
        .client
        .delete(app.url("/me"))
        .bearer_auth(&cookie_at)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_error(no_password, StatusCode::BAD_REQUEST, "invalid_request").await;
    let anonymous = app
        .client
        .delete(app.url("/me"))
        .json(&json!({"current_password": PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let r = delete(PASSWORD).await.expect("request");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(expires_cookie(&r));
    assert_eq!(app.me_status(&cookie_at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&other.access).await, StatusCode::UNAUTHORIZED);
    let login = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": PASSWORD, "delivery": "body"}),
        )
        .await;
    assert_error(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        feed_reasons(&app, &id).await,
        vec!["user_deleted", "user_deleted"]
    );
    let admin = Admin::new(&app).await;
    let events = admin.events_of(&id).await;
    assert_eq!(events[0]["kind"], "user_deleted");
    assert!(
        events
            .iter()
            .all(|e| e["ip"].is_null() && e["actor"].is_null())
    );
}

#[tokio::test]
async fn deleting_my_account_is_throttled_like_a_password_guess() {
    let app = spawn_app_with(|c| c.rate_limits = true).await;
    let t = app.user(&email()).await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let r = app
            .client
            .delete(app.url("/me"))
            .bearer_auth(&t.access)
            .json(&json!({"current_password": "a wrong guess"}))
            .send()
            .await
            .expect("request");
        statuses.push(r.status());
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Throttled, the right password does not get through either, and nothing is deleted.
    let r = app
        .client
        .delete(app.url("/me"))
        .bearer_auth(&t.access)
        .json(&json!({"current_password": PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(app.me_status(&t.access).await, StatusCode::OK);
}

#[tokio::test]
async fn a_login_that_says_remember_false_gets_a_browser_session_cookie_and_a_short_session() {
    let app = spawn_app_with(|c| c.short_session_max_secs = 3600).await;
    let mail = email();
    app.register(&mail, PASSWORD).await;
    let r = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": PASSWORD, "remember": false}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let set = set_cookie(&r);
    assert!(set.starts_with("__Host-refresh_token="), "{set}");
    assert!(
        !set.contains("Max-Age"),
        "a cookie until the browser closes: {set}"
    );
    assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Strict"));
    let body: Value = r.json().await.expect("json");
    assert!(body["refresh_expires_in"].as_i64().expect("n") <= 3600);
    let cookie = set.split(';').next().expect("pair").to_owned();

    // Its rotations keep the cookie without Max-Age.
    app.clock.advance(1800);
    let r = cookie_refresh(&app, &cookie).await;
    assert_eq!(r.status(), StatusCode::OK);
    let set = set_cookie(&r);
    assert!(!set.contains("Max-Age"), "{set}");
    let cookie = set.split(';').next().expect("pair").to_owned();

    // An hour after login it is over, however often it was refreshed.
    app.clock.advance(1801);
    let r = cookie_refresh(&app, &cookie).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;

    // The default still remembers.
    let r = app
        .post_json("/auth/login", json!({"email": mail, "password": PASSWORD}))
        .await;
    let set = set_cookie(&r);
    let max_age: i64 = set
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .and_then(|n| n.parse().ok())
        .expect("Max-Age");
    assert!(max_age > 3600, "{set}");
}
