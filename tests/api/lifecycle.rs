//! Register, login, refresh rotation, reuse detection and the grace window.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn register_normalises_the_email_and_keeps_it_unique() {
    let app = spawn_app().await;
    let r = app
        .register("  Ada.Lovelace@Example.COM ", "correct horse battery")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["email"], "ada.lovelace@example.com");
    assert!(body["user_id"].as_str().is_some_and(|s| !s.is_empty()));

    let again = app
        .register("ada.lovelace@example.com", "another password")
        .await;
    assert_error(again, StatusCode::CONFLICT, "email_taken").await;
    // The login works with any spelling of the same address.
    app.login_body("ADA.LOVELACE@example.com ", "correct horse battery")
        .await;
}

#[tokio::test]
async fn register_rejects_bad_emails_and_weak_passwords() {
    let app = spawn_app().await;
    for bad in [
        "",
        "no-at-sign",
        "@example.com",
        "a@b",
        "a b@example.com",
        "a@@example.com",
    ] {
        let r = app.register(bad, "correct horse battery").await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_email").await;
    }
    for weak in ["", "short", "1234567", &"x".repeat(1025)] {
        let r = app.register(&email(), weak).await;
        assert_error(r, StatusCode::BAD_REQUEST, "weak_password").await;
    }
    // Exactly 8 and exactly 1024 characters (multi-byte ones count as one) are fine.
    assert_eq!(
        app.register(&email(), "k3#vq9!z").await.status(),
        StatusCode::CREATED
    );
    // Common passwords are weak whatever their length or case (OWASP ASVS 6.2.4).
    for common in ["12345678", "Password123", " iloveyou1 ", "QWERTYUIOP"] {
        let r = app.register(&email(), common).await;
        assert_error(r, StatusCode::BAD_REQUEST, "weak_password").await;
    }
    assert_eq!(
        app.register(&email(), &"é".repeat(1024)).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn passwords_are_hashed_with_argon2id_at_owasp_strength_and_used_exactly() {
    let app = spawn_app().await;
    let mail = email();
    let password = "  Pässwörd 🔑 with spaces  ";
    assert_eq!(
        app.register(&mail, password).await.status(),
        StatusCode::CREATED
    );
    let user = app
        .state()
        .store()
        .user_by_email(&mail)
        .await
        .unwrap()
        .unwrap();
    assert!(
        user.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        user.password_hash
            .split('$')
            .take(4)
            .collect::<Vec<_>>()
            .join("$")
    );
    // Never trimmed, never case-folded.
    for wrong in [
        password.trim(),
        &password.to_uppercase(),
        &password.to_lowercase(),
    ] {
        let r = app
            .post_json(
                "/auth/login",
                json!({"email": mail, "password": wrong, "delivery": "body"}),
            )
            .await;
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    app.login_body(&mail, password).await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_byte_identical_answers() {
    let app = spawn_app().await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;
    let wrong = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": "wrong password"}),
        )
        .await;
    let unknown = app
        .post_json(
            "/auth/login",
            json!({"email": email(), "password": "wrong password"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let strip = |r: &reqwest::Response| {
        let mut h: Vec<_> = r
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date" && *k != "x-request-id")
            .map(|(k, v)| format!("{k}: {v:?}"))
            .collect();
        h.sort();
        h
    };
    assert_eq!(strip(&wrong), strip(&unknown));
    assert_eq!(wrong.bytes().await.unwrap(), unknown.bytes().await.unwrap());
}

#[tokio::test]
async fn cookie_delivery_sets_only_the_host_cookie_and_body_delivery_only_the_body() {
    let app = spawn_app().await;
    let mail = email();
    app.register(&mail, "correct horse battery").await;

    let r = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookies: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let c = &cookies[0];
    assert!(c.starts_with("__Host-refresh_token="), "{c}");
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=1209600",
    ] {
        assert!(c.split("; ").any(|a| a == attr), "{attr} missing in {c}");
    }
    assert!(!c.contains("Domain"), "{c}");
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 1_209_600);

    let r = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": "correct horse battery", "delivery": "body"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("set-cookie").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["refresh_token"].as_str().map(str::len), Some(43));
}

#[tokio::test]
async fn refresh_rotates_the_token_and_keeps_the_session() {
    let app = spawn_app().await;
    let t0 = app.user(&email()).await;
    let t1 = app.rotate(&t0.refresh).await;
    assert_ne!(t1.refresh, t0.refresh);
    assert_eq!(t1.session_id, t0.session_id);
    let t2 = app.rotate(&t1.refresh).await;
    assert_eq!(app.me_status(&t2.access).await, StatusCode::OK);
    assert_eq!(
        app.me_status(&t0.access).await,
        StatusCode::OK,
        "old access tokens live until exp"
    );
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_session() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 0).await;
    let mail = email();
    let victim = app.user(&mail).await;
    let other = app.login_body(&mail, "correct horse battery").await;
    let current = app.rotate(&victim.refresh).await;

    let r = app.refresh(&victim.refresh).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    // The whole family is gone: its current token and its access tokens.
    assert_error(
        app.refresh(&current.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    assert_eq!(
        app.me_status(&current.access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me_status(&victim.access).await,
        StatusCode::UNAUTHORIZED
    );
    // The user's other session is untouched.
    assert_eq!(app.me_status(&other.access).await, StatusCode::OK);
    let other2 = app.rotate(&other.refresh).await;
    let events = app.events(&other2.access).await;
    assert_eq!(
        events
            .iter()
            .filter(|k| *k == "refresh_token_reused")
            .count(),
        1,
        "{events:?}"
    );
}

#[tokio::test]
async fn reusing_a_token_from_deep_in_the_chain_revokes_the_session() {
    let app = spawn_app().await;
    let t0 = app.user(&email()).await;
    let mut chain = vec![t0.clone()];
    for _ in 0..5 {
        let next = app.rotate(&chain.last().unwrap().refresh).await;
        chain.push(next);
    }
    // Past token 1's grace window, presenting it is reuse.
    app.clock.advance(10);
    assert_eq!(
        app.refresh(&chain[1].refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&chain[5].refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me_status(&chain[5].access).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn within_the_grace_window_the_rotated_token_returns_the_same_successor() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 10).await;
    let t0 = app.user(&email()).await;
    let t1 = app.rotate(&t0.refresh).await;
    app.clock.advance(5);
    let again = app.rotate(&t0.refresh).await;
    assert_eq!(again.refresh, t1.refresh, "the very same successor");
    assert_ne!(again.access, t1.access, "a fresh access token");
    // The successor still works (it was never consumed by the replay).
    let t2 = app.rotate(&t1.refresh).await;
    assert_eq!(app.me_status(&t2.access).await, StatusCode::OK);
}

#[tokio::test]
async fn the_grace_window_starts_at_the_first_rotation_and_does_not_slide() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 10).await;
    let t0 = app.user(&email()).await;
    let t1 = app.rotate(&t0.refresh).await;
    app.clock.advance(6);
    assert_eq!(app.rotate(&t0.refresh).await.refresh, t1.refresh);
    app.clock.advance(6); // 12 s after the first rotation, 6 s after the replay
    assert_eq!(
        app.refresh(&t0.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&t1.refresh).await.status(),
        StatusCode::UNAUTHORIZED,
        "reuse revoked the family"
    );
}

/// The race behind "several tabs logged me out": one tab's late request still carries the token
/// another tab has already rotated twice. Within the window it gets the session's current token,
/// so the shared cookie jar ends up holding the one token that still works.
#[tokio::test]
async fn within_the_grace_window_a_token_whose_successor_moved_on_gets_the_current_token() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 10).await;
    let t0 = app.user(&email()).await;
    let t1 = app.rotate(&t0.refresh).await;
    let t2 = app.rotate(&t1.refresh).await;
    let t3 = app.rotate(&t2.refresh).await;
    app.clock.advance(3);
    let late = app.rotate(&t0.refresh).await;
    assert_eq!(
        late.refresh, t3.refresh,
        "the current token, not a stale one"
    );
    assert_eq!(app.rotate(&t1.refresh).await.refresh, t3.refresh);
    assert_eq!(app.me_status(&late.access).await, StatusCode::OK);
    assert_eq!(app.me_status(&t3.access).await, StatusCode::OK);
    // The current token was not consumed by the replays.
    let t4 = app.rotate(&t3.refresh).await;
    assert_eq!(app.me_status(&t4.access).await, StatusCode::OK);
    assert!(
        !app.events(&t4.access)
            .await
            .contains(&"refresh_token_reused".to_owned())
    );
}

#[tokio::test]
async fn a_token_whose_successor_moved_on_is_reuse_once_its_window_has_passed() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 10).await;
    let t0 = app.user(&email()).await;
    let t1 = app.rotate(&t0.refresh).await;
    app.clock.advance(8);
    let t2 = app.rotate(&t1.refresh).await;
    app.clock.advance(2); // t0's window closed; t1's is still open
    assert_eq!(
        app.refresh(&t0.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me_status(&t2.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh(&t2.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_token_more_than_sixteen_rotations_behind_is_reuse_even_within_the_window() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 10).await;
    let t0 = app.user(&email()).await;
    let mut chain = vec![t0];
    for _ in 0..17 {
        let next = app.rotate(&chain.last().unwrap().refresh).await;
        chain.push(next);
    }
    // 16 behind: still a replay.
    assert_eq!(
        app.rotate(&chain[1].refresh).await.refresh,
        chain[17].refresh
    );
    // 17 behind: reuse.
    assert_eq!(
        app.refresh(&chain[0].refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me_status(&chain[17].access).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn every_refresh_failure_answers_the_same_bytes() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 0).await;
    let t0 = app.user(&email()).await;
    app.rotate(&t0.refresh).await;
    let mut bodies = Vec::new();
    for token in [
        "garbage".to_owned(),
        "A".repeat(43),
        String::new(),
        "x".repeat(400),
        t0.refresh.clone(), // rotated: reuse
        t0.refresh.clone(), // now revoked
    ] {
        let r = app.refresh(&token).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        bodies.push(r.bytes().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert!(String::from_utf8_lossy(&bodies[0]).contains("invalid_refresh_token"));
}
