//! An account can always be contained: sessions per user are capped, ending any number of
//! sessions works in one request, and no login outlives the change that should have ended it.
use reqwest::StatusCode;
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use authd::clock::Clock;
use authd::store::{ClientMeta, NewSession};

use crate::helpers::*;

const PASSWORD: &str = "correct horse battery";

/// Gives the user of `email` `n` more live sessions, written straight to the database (logging
/// in thousands of times would take minutes of argon2).
async fn seed_sessions(app: &TestApp, user_id: &str, n: usize) {
    let now = app.clock.now();
    let rows: Vec<_> = (0..n)
        .map(|_| entity::sessions::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            user_id: Set(user_id.to_owned()),
            created_at: Set(now - 60),
            last_refreshed_at: Set(now - 60),
            idle_expires_at: Set(now + 3600),
            absolute_expires_at: Set(now + 7200),
            user_agent: Set(Some("seeded".into())),
            ip: Set(None),
            persistent: Set(true),
        })
        .collect();
    let db = app.state().store().connection();
    for chunk in rows.chunks(1000) {
        entity::sessions::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await
            .expect("seed sessions");
    }
}

#[tokio::test]
async fn a_login_past_the_session_limit_ends_the_users_oldest_session() {
    let app = spawn_app_with(|c| c.max_sessions_per_user = 3).await;
    let mail = email();
    let first = app.user(&mail).await;
    app.clock.advance(1);
    let second = app.login_body(&mail, PASSWORD).await;
    app.clock.advance(1);
    let third = app.login_body(&mail, PASSWORD).await;
    assert_eq!(app.me_status(&first.access).await, StatusCode::OK);
    app.clock.advance(1);
    let fourth = app.login_body(&mail, PASSWORD).await;
    assert_eq!(app.me_status(&first.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&first.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for t in [&second, &third, &fourth] {
        assert_eq!(app.me_status(&t.access).await, StatusCode::OK);
    }
    let listed: Vec<Value> = app
        .get_auth("/auth/sessions", &fourth.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        app.events(&fourth.access)
            .await
            .contains(&"session_revoked".to_owned())
    );
}

#[tokio::test]
async fn ending_more_sessions_than_one_statement_can_bind_works_in_one_request() {
    // Past both databases' limits on bound parameters (SQLite 32,766; Postgres 65,535) for the
    // six-per-session event insert: 11,001 sessions.
    let app = spawn_app().await;
    let mail = email();
    let t = app.user(&mail).await;
    let user_id = app.user_id_of(&t.access).await;
    seed_sessions(&app, &user_id, 11_000).await;
    let r = app
        .change_password(&t.access, PASSWORD, "a brand new passphrase")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let old = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": PASSWORD, "delivery": "body"}),
        )
        .await;
    assert_error(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let listed: Vec<Value> = app
        .get_auth("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "only the caller's session is left");
    seed_sessions(&app, &user_id, 11_000).await;
    let r = app.logout(&t.access, "global").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
    // And the operator's commands, the same way.
    seed_sessions(&app, &user_id, 11_000).await;
    let out = crate::process::run_cli(&app.db.database_url, &["users", "disable", &mail]).await;
    assert!(out.contains("ended 11000 session(s)"), "{out}");
    seed_sessions(&app, &user_id, 11_000).await;
    let out = crate::process::run_cli(
        &app.db.database_url,
        &["sessions", "revoke", "--user", &mail],
    )
    .await;
    assert!(out.contains("ended 11000 session(s)"), "{out}");
}

#[tokio::test]
async fn the_session_list_is_bounded_newest_first() {
    let app = spawn_app().await;
    let t = app.user(&email()).await;
    let user_id = app.user_id_of(&t.access).await;
    seed_sessions(&app, &user_id, 500).await;
    let listed: Vec<Value> = app
        .get_auth("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 100);
    assert_eq!(
        listed[0]["current"], true,
        "the newest (the caller's) comes first"
    );
}

#[tokio::test]
async fn a_login_whose_verified_password_was_replaced_meanwhile_opens_no_session() {
    let app = spawn_app().await;
    let mail = email();
    let t = app.user(&mail).await;
    let user_id = app.user_id_of(&t.access).await;
    let store = &app.state().store();
    let user = store.user_by_id(&user_id).await.unwrap().unwrap();
    let attempt = |hash: String| NewSession {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.clone(),
        now: app.clock.now(),
        idle_secs: 3600,
        max_secs: 7200,
        meta: ClientMeta::default(),
        token_hash: authd::tokens::RefreshToken::mint().unwrap().hash(),
        verified_password_hash: hash,
        max_sessions: 0,
        persistent: true,
    };
    // As if the password had changed between the argon2 check and the insert.
    let stale = store
        .create_session(attempt("$argon2id$v=19$m=19456,t=2,p=1$old$old".into()))
        .await
        .unwrap();
    assert!(stale.is_none());
    assert!(
        store
            .create_session(attempt(user.password_hash.clone()))
            .await
            .unwrap()
            .is_some()
    );
    // As if the user had been disabled meanwhile.
    store
        .set_user_disabled(&mail, true, app.clock.now())
        .await
        .unwrap();
    let disabled = store
        .create_session(attempt(user.password_hash.clone()))
        .await
        .unwrap();
    assert!(disabled.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_racing_a_password_change_leave_no_session_behind() {
    let app = spawn_app().await;
    let mail = email();
    let victim = app.user(&mail).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for _ in 0..4 {
        let (client, url, mail, stop) = (
            app.client.clone(),
            app.url("/auth/login"),
            mail.clone(),
            stop.clone(),
        );
        attackers.push(tokio::spawn(async move {
            let mut refresh_tokens = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = client
                    .post(&url)
                    .json(&json!({"email": mail, "password": PASSWORD, "delivery": "body"}))
                    .send()
                    .await
                    .unwrap();
                if r.status() == StatusCode::OK {
                    let v: Value = r.json().await.unwrap();
                    refresh_tokens.push(v["refresh_token"].as_str().unwrap().to_owned());
                }
            }
            refresh_tokens
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = app
        .change_password(&victim.access, PASSWORD, "the attacker is out")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut alive = 0;
    let mut tried = 0;
    for a in attackers {
        for rt in a.await.unwrap() {
            tried += 1;
            if app.refresh(&rt).await.status() == StatusCode::OK {
                alive += 1;
            }
        }
    }
    assert!(tried > 0, "no login succeeded before the change");
    assert_eq!(
        alive, 0,
        "{alive} of {tried} sessions opened with the old password survived"
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_presented_at_logout_after_its_grace_window_is_reuse() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 10).await;
    let mail = email();
    let t = app.user(&mail).await;
    let next = app.rotate(&t.refresh).await;
    app.clock.advance(11);
    let r = app
        .post_json("/auth/logout", json!({"refresh_token": t.refresh}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh(&next.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let fresh = app.login_body(&mail, PASSWORD).await;
    let kinds = app.events(&fresh.access).await;
    assert!(
        kinds.contains(&"refresh_token_reused".to_owned()),
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"logout".to_owned()), "{kinds:?}");
    // Within the window it is a racing tab's logout, not a theft.
    let a = app.login_body(&mail, PASSWORD).await;
    app.rotate(&a.refresh).await;
    let r = app
        .post_json("/auth/logout", json!({"refresh_token": a.refresh}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let kinds = app.events(&fresh.access).await;
    assert_eq!(kinds[0], "logout", "{kinds:?}");
}

#[tokio::test]
async fn a_burst_of_revocations_elsewhere_does_not_hold_up_the_ones_behind_it() {
    let app = spawn_app().await;
    let victim = app.user(&email()).await;
    let now = app.clock.now();
    let row = |session_id: String| entity::revoked_sessions::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        session_id: Set(session_id),
        user_id: Set("someone".into()),
        revoked_at: Set(now),
        expires_at: Set(now + 600),
        reason: Set("logout".into()),
    };
    // Another instance ends 10,500 sessions, then the victim's, all within the settle window.
    let burst: Vec<_> = (0..10_500)
        .map(|_| row(uuid::Uuid::new_v4().to_string()))
        .collect();
    let db = app.state().store().connection();
    for chunk in burst.chunks(1000) {
        entity::revoked_sessions::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await
            .unwrap();
    }
    entity::revoked_sessions::Entity::insert(row(victim.session_id.clone()))
        .exec_without_returning(db)
        .await
        .unwrap();
    app.eventually_me(&victim.access, StatusCode::UNAUTHORIZED)
        .await;
}

#[tokio::test]
async fn failed_logins_never_push_the_events_that_matter_out_of_the_log() {
    let app = spawn_app().await;
    let mail = email();
    app.register(&mail, PASSWORD).await;
    let intrusion = app
        .client
        .post(app.url("/auth/login"))
        .header("user-agent", "attacker-ua")
        .json(&json!({"email": mail, "password": PASSWORD, "delivery": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(intrusion.status(), StatusCode::OK);
    for _ in 0..60 {
        let r = app
            .post_json(
                "/auth/login",
                json!({"email": mail, "password": "x".repeat(8)}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The failures are written after the answer: wait until the log has them.
    let user = app.login_body(&mail, PASSWORD).await;
    let listed = || async {
        let v: Vec<Value> = app
            .get_auth("/auth/events", &user.access)
            .await
            .json()
            .await
            .unwrap();
        v
    };
    eventually("ten login_failed events are listed", || async {
        let v = listed().await;
        v.iter().filter(|e| e["kind"] == "login_failed").count() >= 10
    })
    .await;
    let events = listed().await;
    let failed = events
        .iter()
        .filter(|e| e["kind"] == "login_failed")
        .count();
    assert_eq!(failed, 10, "at most 10 failures are listed");
    assert!(
        events.iter().any(|e| e["user_agent"] == "attacker-ua"),
        "the intrusion's login was pushed out"
    );
}

#[tokio::test]
async fn emails_with_invisible_or_bidirectional_characters_are_refused() {
    let app = spawn_app().await;
    for mail in [
        "a\u{202e}moc.elpmaxe@example.com",
        "pg\u{200b}@example.com",
        "ada@exam\u{ad}ple.com",
    ] {
        let r = app.register(mail, PASSWORD).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_email").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_run_neither_holds_the_server_nor_keeps_other_clients_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|c| {
        c.http_header_timeout_ms = 1000;
        c.max_connections_per_ip = 20;
        c.max_connections = 100;
    })
    .await;
    let addr = app.app.as_ref().unwrap().addr;
    // Sixty connections from one address that never finish their request's head.
    let mut slow = Vec::new();
    for _ in 0..60 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(s);
    }
    // A client elsewhere is served at once.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = elsewhere
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The server closes every one of them: over the cap at once, the rest at the deadline.
    for (i, mut s) in slow.into_iter().enumerate() {
        let mut buf = [0u8; 512];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "slow connection {i} is still open");
    }
    // And the slow address is served again once its connections are gone.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn guessing_from_many_addresses_cannot_lock_out_a_device_that_logged_in_before() {
    let app = spawn_app_with(|c| {
        c.rate_limits = true;
        c.trust_proxy = 1;
    })
    .await;
    let mail = email();
    app.register(&mail, PASSWORD).await;
    let login = |ip: String, password: &'static str, device: Option<&str>| {
        let mut body = json!({"email": mail, "password": password, "delivery": "body"});
        if let Some(d) = device {
            body["device_token"] = json!(d);
        }
        app.client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&body)
            .send()
    };
    let first = login("198.51.100.7".into(), PASSWORD, None).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let device: Value = first.json().await.unwrap();
    let device = device["device_token"].as_str().unwrap().to_owned();
    // Thirty addresses, one wrong guess each: past the account's bucket for unknown clients.
    for i in 0..30 {
        let _ = login(format!("203.0.113.{i}"), "a wrong guess", None)
            .await
            .unwrap();
    }
    let unknown = login("198.51.100.8".into(), PASSWORD, None).await.unwrap();
    assert_error(unknown, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let known = login("198.51.100.8".into(), PASSWORD, Some(&device))
        .await
        .unwrap();
    assert_eq!(
        known.status(),
        StatusCode::OK,
        "the known device was locked out"
    );
    // A device token guesses under its own small budget.
    for _ in 0..5 {
        let r = login("198.51.100.9".into(), "a wrong guess", Some(&device))
            .await
            .unwrap();
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let r = login("198.51.100.9".into(), PASSWORD, Some(&device))
        .await
        .unwrap();
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}
