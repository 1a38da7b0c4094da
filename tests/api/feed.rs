//! The revocation feed (`GET /auth/revocations`) and the service keys that read it: every way a
//! session ends gives one entry with its reason, snapshots page, held requests answer as soon
//! as a session ends, and the caps and cursors refuse what they must.
use std::time::{Duration, Instant};

use authd::tokens::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::process::run_cli;

const PASSWORD: &str = "correct horse battery";

fn reasons_of(entries: &[Value], session_id: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["session_id"] == session_id)
        .map(|e| e["reason"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn the_feed_needs_a_service_key_with_its_scope() {
    let app = spawn_app().await;
    let user = app.user(&email()).await;
    let reader = app.service_key(&[Scope::RevocationsRead]).await;
    let introspector = app.service_key(&[Scope::Introspect]).await;

    let r = app
        .client
        .get(app.url("/auth/revocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_service_key").await;
    // A user's access token is never a service key, and a near miss is no key.
    for wrong in [
        user.access.clone(),
        format!("{}x", &reader[..reader.len() - 1]),
        "authd_sk_".to_owned(),
    ] {
        let r = app.revocations(&wrong, "").await;
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_service_key").await;
    }
    let r = app.revocations(&introspector, "").await;
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="revocations:read""#
    );
    assert_error(r, StatusCode::FORBIDDEN, "insufficient_scope").await;
    let r = app.revocations(&reader, "").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    // And a service key is never an access token.
    assert_eq!(app.me_status(&reader).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refused_service_keys_are_throttled_per_address() {
    let app = spawn_app_with(|c| c.rate_limits = true).await;
    let reader = app.service_key(&[Scope::RevocationsRead]).await;
    // A good key spends nothing.
    for _ in 0..30 {
        assert_eq!(app.revocations(&reader, "").await.status(), StatusCode::OK);
    }
    let mut refused = 0;
    for _ in 0..20 {
        let r = app.revocations("authd_sk_guess", "").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        refused += 1;
    }
    let r = app.revocations("authd_sk_guess", "").await;
    assert!(r.headers().contains_key("retry-after"));
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(refused, 20);
}

#[tokio::test]
async fn every_way_a_session_ends_gives_one_entry_with_its_reason() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 0).await;
    let key = app.service_key(&[Scope::RevocationsRead]).await;
    let mail = email();
    let first = app.user(&mail).await;
    let login = || app.login_body(&mail, PASSWORD);

    // logout local, others and global
    let local = login().await;
    assert_eq!(
        app.logout(&local.access, "local").await.status(),
        StatusCode::NO_CONTENT
    );
    let (kept, other) = (login().await, login().await);
    assert_eq!(
        app.logout(&kept.access, "others").await.status(),
        StatusCode::NO_CONTENT
    );
    let global = login().await;
    assert_eq!(
        app.logout(&global.access, "global").await.status(),
        StatusCode::NO_CONTENT
    );
    // DELETE /auth/sessions/{id}, from another session
    let (deleter, deleted) = (login().await, login().await);
    let r = app
        .client
        .delete(app.url(&format!("/auth/sessions/{}", deleted.session_id)))
        .bearer_auth(&deleter.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // reuse
    let reused = login().await;
    app.rotate(&reused.refresh).await;
    assert_eq!(
        app.refresh(&reused.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // password change ends every other session
    let (changer, changed) = (login().await, login().await);
    let r = app
        .change_password(&changer.access, PASSWORD, "another horse battery")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // the CLI: sessions revoke, then disable
    let new_password = "another horse battery";
    let revoked = app.login_body(&mail, new_password).await;
    run_cli(
        &app.db.database_url,
        &["sessions", "revoke", "--user", &mail],
    )
    .await;
    let disabled = app.login_body(&mail, new_password).await;
    run_cli(&app.db.database_url, &["users", "disable", &mail]).await;

    let (entries, _) = app.feed_snapshot(&key).await;
    let expect = [
        (&local, "logout"),
        (&other, "logout"),
        (&first, "logout"),
        (&kept, "logout"),
        (&global, "logout"),
        (&deleted, "session_revoked"),
        (&reused, "refresh_token_reused"),
        (&changed, "password_changed"),
        (&changer, "session_revoked"),
        (&revoked, "session_revoked"),
        (&disabled, "user_disabled"),
    ];
    for (tokens, reason) in expect {
        assert_eq!(
            reasons_of(&entries, &tokens.session_id),
            [reason],
            "session {} ({reason})",
            tokens.session_id
        );
    }
    let user_id = entries[0]["user_id"].as_str().unwrap();
    for e in &entries {
        assert_eq!(e["user_id"], user_id);
        let revoked_at = time::OffsetDateTime::parse(
            e["revoked_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let expires_at = time::OffsetDateTime::parse(
            e["expires_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(expires_at > revoked_at, "{e}");
    }
    // `deleter` was ended by the password change and is in the list too; nothing else is.
    assert_eq!(
        reasons_of(&entries, &deleter.session_id),
        ["password_changed"]
    );
    assert_eq!(entries.len(), expect.len() + 1, "{entries:#?}");
}

#[tokio::test]
async fn a_snapshot_comes_in_pages_and_the_cursor_then_yields_only_what_is_new() {
    let app = spawn_app().await;
    let key = app.service_key(&[Scope::RevocationsRead]).await;
    let mail = email();
    let keep = app.user(&mail).await;
    for _ in 0..24 {
        app.login_body(&mail, PASSWORD).await;
    }
    assert_eq!(
        app.logout(&keep.access, "global").await.status(),
        StatusCode::NO_CONTENT
    );

    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut query = "limit=10".to_owned();
    let cursor = loop {
        let page: Value = app.revocations(&key, &query).await.json().await.unwrap();
        for e in page["entries"].as_array().unwrap() {
            assert!(seen.insert(e["session_id"].as_str().unwrap().to_owned()));
        }
        pages.push((
            page["entries"].as_array().unwrap().len(),
            page["more"].as_bool().unwrap(),
        ));
        let cursor = page["cursor"].as_str().unwrap().to_owned();
        if !page["more"].as_bool().unwrap() {
            break cursor;
        }
        query = format!("limit=10&cursor={cursor}");
    };
    assert_eq!(seen.len(), 25);
    assert_eq!(pages[..3], [(10, true), (10, true), (5, false)]);

    let r: Value = app
        .revocations(&key, &format!("cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["entries"], json!([]));
    assert_eq!(r["more"], false);
    let next = app.user(&email()).await;
    app.logout(&next.access, "local").await;
    let r: Value = app
        .revocations(&key, &format!("cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        reasons_of(r["entries"].as_array().unwrap(), &next.session_id),
        ["logout"]
    );
    assert_eq!(r["entries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_held_request_answers_as_soon_as_a_session_ends() {
    let app = spawn_app().await;
    let key = app.service_key(&[Scope::RevocationsRead]).await;
    let user = app.user(&email()).await;
    let (_, cursor) = app.feed_snapshot(&key).await;

    let query = format!("cursor={cursor}&wait=30");
    let poll = app.revocations(&key, &query);
    let logout = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at = Instant::now();
        assert_eq!(
            app.logout(&user.access, "local").await.status(),
            StatusCode::NO_CONTENT
        );
        at
    };
    let (r, logged_out) = tokio::join!(poll, logout);
    let took = logged_out.elapsed();
    println!(
        "held feed request answered {} ms after the logout",
        took.as_millis()
    );
    assert!(
        took < Duration::from_secs(5),
        "answered after {took:?}, not at once"
    );
    let page: Value = r.json().await.unwrap();
    assert_eq!(
        reasons_of(page["entries"].as_array().unwrap(), &user.session_id),
        ["logout"]
    );
    assert_eq!(app.state().feed.held(), 0, "the place is given back");
}

#[tokio::test]
async fn an_idle_held_request_answers_empty_after_its_wait_with_a_usable_cursor() {
    let app = spawn_app().await;
    let key = app.service_key(&[Scope::RevocationsRead]).await;
    let (_, cursor) = app.feed_snapshot(&key).await;
    let started = Instant::now();
    let r = app
        .revocations(&key, &format!("cursor={cursor}&wait=1"))
        .await;
    let took = started.elapsed();
    assert_eq!(r.status(), StatusCode::OK);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["entries"], json!([]));
    assert_eq!(page["more"], false);
    assert!(took >= Duration::from_secs(1), "held {took:?}");
    let next = page["cursor"].as_str().unwrap();
    let r = app.revocations(&key, &format!("cursor={next}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Without a cursor, `wait` does not hold the snapshot.
    let started = Instant::now();
    assert_eq!(
        app.revocations(&key, "wait=30").await.status(),
        StatusCode::OK
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn cursors_that_cannot_be_continued_answer_410_and_bad_parameters_400() {
    let app = spawn_app().await;
    let other = spawn_app().await;
    let key = app.service_key(&[Scope::RevocationsRead]).await;
    let other_key = other.service_key(&[Scope::RevocationsRead]).await;
    let (_, foreign) = other.feed_snapshot(&other_key).await;
    let (_, mine) = app.feed_snapshot(&key).await;
    let (payload, tag) = mine.split_once('.').unwrap();
    let tampered = format!("{payload}A.{tag}");
    for cursor in [foreign.as_str(), "garbage", "a.b", tampered.as_str(), ""] {
        let r = app.revocations(&key, &format!("cursor={cursor}")).await;
        if cursor.is_empty() {
            // An empty cursor is no cursor the server made either.
            assert_eq!(r.status(), StatusCode::GONE, "empty cursor");
            continue;
        }
        assert_error(r, StatusCode::GONE, "cursor_expired").await;
    }
    for query in ["limit=0", "limit=10001", "wait=31", "limit=x", "wait=-1"] {
        let r = app.revocations(&key, query).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn held_requests_past_the_caps_answer_503_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.feed_max_waiters = 2;
        c.feed_max_waiters_per_key = 1;
    })
    .await;
    let a = app.service_key(&[Scope::RevocationsRead]).await;
    let b = app.service_key(&[Scope::RevocationsRead]).await;
    let c = app.service_key(&[Scope::RevocationsRead]).await;
    let (_, cursor) = app.feed_snapshot(&a).await;
    let hold = |key: String| {
        let client = app.client.clone();
        let url = app.url(&format!("/auth/revocations?cursor={cursor}&wait=30"));
        tokio::spawn(async move { client.get(url).bearer_auth(key).send().await })
    };
    let held_a = hold(a.clone());
    eventually("a's request is held", || async {
        app.state().feed.held() == 1
    })
    .await;
    let r = app
        .revocations(&a, &format!("cursor={cursor}&wait=30"))
        .await;
    assert!(r.headers().contains_key("retry-after"));
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let held_b = hold(b);
    eventually("b's request is held", || async {
        app.state().feed.held() == 2
    })
    .await;
    let r = app
        .revocations(&c, &format!("cursor={cursor}&wait=30"))
        .await;
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("\nauthd_feed_held_requests 2\n"),
        "{metrics}"
    );
    // Reads that do not wait are never capped.
    assert_eq!(
        app.revocations(&c, &format!("cursor={cursor}"))
            .await
            .status(),
        StatusCode::OK
    );
    // A session ending answers both held requests, and their places come back.
    let user = app.user(&email()).await;
    app.logout(&user.access, "local").await;
    for held in [held_a, held_b] {
        let page: Value = held.await.unwrap().unwrap().json().await.unwrap();
        assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    }
    assert_eq!(app.state().feed.held(), 0);
}

#[tokio::test]
async fn stopping_the_server_answers_held_requests_at_once() {
    let mut app = spawn_app().await;
    let key = app.service_key(&[Scope::RevocationsRead]).await;
    let (_, cursor) = app.feed_snapshot(&key).await;
    let client = app.client.clone();
    let url = app.url(&format!("/auth/revocations?cursor={cursor}&wait=30"));
    let held = tokio::spawn(async move { client.get(url).bearer_auth(key).send().await });
    eventually("the request is held", || async {
        app.state().feed.held() == 1
    })
    .await;
    let started = Instant::now();
    app.stop().await;
    let r = held.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn service_keys_are_created_listed_and_revoked_from_the_command_line() {
    let app = spawn_app().await;
    let url = &app.db.database_url;
    let out = run_cli(
        url,
        &[
            "service-keys",
            "create",
            "--name",
            "my-api",
            "--scope",
            "revocations:read",
        ],
    )
    .await;
    let key = out.trim().to_owned();
    assert!(key.starts_with("authd_sk_") && key.len() == 52, "{out}");
    eventually("the new key works", || async {
        app.revocations(&key, "").await.status() == StatusCode::OK
    })
    .await;
    // Only the hash is stored.
    let stored = run_cli(url, &["service-keys", "list"]).await;
    assert!(stored.contains("my-api\trevocations:read"), "{stored}");
    assert!(!stored.contains(&key[9..]), "{stored}");
    eventually("last use is recorded", || async {
        run_cli(url, &["service-keys", "list"])
            .await
            .contains("last used")
    })
    .await;

    run_cli(url, &["service-keys", "revoke", "my-api"]).await;
    let revoked_at = Instant::now();
    eventually("the revoked key is refused", || async {
        app.revocations(&key, "").await.status() == StatusCode::UNAUTHORIZED
    })
    .await;
    println!(
        "service key refused {} ms after revoke",
        revoked_at.elapsed().as_millis()
    );
    assert!(
        run_cli(url, &["service-keys", "list"])
            .await
            .contains("revoked ")
    );
    // The name is free again; a bad scope or name is refused with a reason.
    run_cli(
        url,
        &[
            "service-keys",
            "create",
            "--name",
            "my-api",
            "--scope",
            "introspect",
        ],
    )
    .await;
    for args in [
        [
            "service-keys",
            "create",
            "--name",
            "my-api",
            "--scope",
            "introspect",
        ],
        [
            "service-keys",
            "create",
            "--name",
            "other",
            "--scope",
            "root",
        ],
        [
            "service-keys",
            "create",
            "--name",
            "a b",
            "--scope",
            "admin",
        ],
    ] {
        let out = crate::process::authd_command()
            .env("DATABASE_URL", url)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
}

#[tokio::test]
async fn introspection_answers_from_memory_for_live_access_tokens_only() {
    let app = spawn_app().await;
    let key = app.service_key(&[Scope::Introspect]).await;
    let mail = email();
    let user = app.user(&mail).await;
    let introspect = |token: String| {
        let client = app.client.clone();
        let url = app.url("/auth/introspect");
        let key = key.clone();
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .form(&[
                    ("token", token.as_str()),
                    ("token_type_hint", "access_token"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = introspect(user.access.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "access_token");
    assert_eq!(v["sid"], user.session_id.as_str());
    assert_eq!(v["email"], mail.as_str());
    for claim in ["sub", "iss", "aud", "exp", "iat", "jti"] {
        assert!(!v[claim].is_null(), "{claim}");
    }
    let inactive = json!({"active": false});
    for token in [user.refresh.clone(), "garbage".to_owned(), String::new()] {
        let v: Value = introspect(token).await.json().await.unwrap();
        assert_eq!(v, inactive);
    }
    let ended = app.login_body(&mail, PASSWORD).await;
    app.logout(&ended.access, "local").await;
    let v: Value = introspect(ended.access).await.json().await.unwrap();
    assert_eq!(v, inactive, "ended session");
    app.clock.advance(301 + 30);
    let v: Value = introspect(user.access.clone()).await.json().await.unwrap();
    assert_eq!(v, inactive, "expired");

    // The form is the contract; JSON, no token, or the wrong scope are refused.
    let r = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(&key)
        .json(&json!({"token": user.access}))
        .send()
        .await
        .unwrap();
    assert_error(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let r = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(&key)
        .form(&[("token_type_hint", "x")])
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let reader = app.service_key(&[Scope::RevocationsRead]).await;
    let r = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(&reader)
        .form(&[("token", user.access.as_str())])
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::FORBIDDEN, "insufficient_scope").await;
    let r = app
        .client
        .post(app.url("/auth/introspect"))
        .form(&[("token", user.access.as_str())])
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_service_key").await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "postgres-tests"),
    ignore = "Postgres only: TEST_DATABASE_URL=postgres://... cargo test --features postgres-tests"
)]
async fn an_entry_committed_after_a_later_one_is_still_delivered() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    crate::faults::needs_postgres();
    let app = spawn_app().await;
    let key = app.service_key(&[Scope::RevocationsRead]).await;
    let (_, cursor) = app.feed_snapshot(&key).await;

    // A slow ending takes its transaction id and its entry's id, and has not committed...
    let slow = app.state().store().connection().begin().await.unwrap();
    slow.execute_unprepared("SELECT pg_current_xact_id()")
        .await
        .unwrap();
    slow.execute_unprepared(
        "INSERT INTO revoked_sessions (session_id, user_id, revoked_at, expires_at, reason) \
         VALUES ('slow-session', 'someone', 0, 9999999999, 'logout')",
    )
    .await
    .unwrap();
    // ...when a later ending commits.
    let user = app.user(&email()).await;
    app.logout(&user.access, "local").await;
    let page: Value = app
        .revocations(&key, &format!("cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(reasons_of(entries, &user.session_id), ["logout"]);
    assert!(reasons_of(entries, "slow-session").is_empty());
    let after_later = page["cursor"].as_str().unwrap().to_owned();

    // The cursor past the later entry still yields the earlier one once it commits, on the feed
    // and in the server's own revoked set.
    slow.commit().await.unwrap();
    let page: Value = app
        .revocations(&key, &format!("cursor={after_later}"))
        .await
        .json()
        .await
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(reasons_of(entries, "slow-session"), ["logout"]);
    assert_eq!(entries.len(), 1);
    eventually("the server's sync picks it up", || async {
        app.state().access.revoked().contains("slow-session")
    })
    .await;
    // Once nothing can fill the gap any more, nothing comes twice.
    let page: Value = app
        .revocations(
            &key,
            &format!("cursor={}", page["cursor"].as_str().unwrap()),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["entries"], json!([]));
}
