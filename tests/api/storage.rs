//! What reaches the database, session expiry, restart, and pruning.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use crate::helpers::*;

/// Everything the database holds, as bytes: the SQLite files, or every Postgres row as text.
async fn database_bytes(app: &TestApp) -> Vec<u8> {
    if let Some(path) = &app.sqlite_path {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let p = format!("{}{suffix}", path.display());
            if let Ok(bytes) = std::fs::read(&p) {
                all.extend(bytes);
            }
        }
        return all;
    }
    let db = app.state().store().connection();
    let mut all = Vec::new();
    for table in [
        "users",
        "sessions",
        "refresh_tokens",
        "revoked_sessions",
        "security_events",
        "signing_keys",
    ] {
        let rows = db
            .query_all_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                format!("SELECT t::text AS row FROM {table} t"),
            ))
            .await
            .unwrap();
        for row in rows {
            let text: String = row.try_get("", "row").unwrap();
            all.extend(text.into_bytes());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn only_hashes_of_refresh_tokens_ever_reach_the_database() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 10).await;
    let mut given = Vec::new();
    for _ in 0..3 {
        let t = app.user(&email()).await;
        given.push(t.refresh.clone());
        let t1 = app.rotate(&t.refresh).await;
        given.push(t1.refresh.clone());
        let replay = app.rotate(&t.refresh).await; // grace replay: the sealed successor is stored
        given.push(replay.refresh.clone());
        let t2 = app.rotate(&t1.refresh).await;
        given.push(t2.refresh);
    }
    let dump = database_bytes(&app).await;
    assert!(dump.len() > 1000, "the dump is real");
    for token in &given {
        let raw = URL_SAFE_NO_PAD.decode(token).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !contains(&dump, token.as_bytes()),
            "a refresh token is stored in clear"
        );
        assert!(
            !contains(&dump, &raw),
            "a refresh token's raw bytes are stored"
        );
        assert!(
            !contains(&dump, hex.as_bytes()),
            "a refresh token is stored as hex"
        );
    }
}

#[tokio::test]
async fn a_session_ends_when_it_is_not_refreshed_within_the_idle_limit() {
    let app = spawn_app_with(|c| {
        c.refresh_idle_secs = 3600;
        c.session_max_secs = 3 * 3600;
    })
    .await;
    let t = app.user(&email()).await;
    app.clock.advance(3599);
    let t1 = app.rotate(&t.refresh).await;
    app.clock.advance(3600);
    assert_error(
        app.refresh(&t1.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_limit_however_often_it_is_refreshed() {
    let app = spawn_app_with(|c| {
        c.refresh_idle_secs = 3600;
        c.session_max_secs = 3 * 3600;
    })
    .await;
    let mut t = app.user(&email()).await;
    for _ in 0..5 {
        app.clock.advance(1800);
        t = app.rotate(&t.refresh).await;
    }
    // 9000 s in: 1800 s left before the absolute end, which caps the refresh lifetime.
    app.clock.advance(1700);
    let r = app.refresh(&t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["refresh_expires_in"], 100);
    assert_eq!(v["expires_in"], 100, "no access token outlives its session");
    let next = v["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(100);
    assert_error(
        app.refresh(&next).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let app = spawn_app().await;
    let t = app.user(&email()).await;
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let app = app.restart().await;
    assert_eq!(app.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn pruning_removes_what_can_no_longer_matter_and_keeps_reuse_detection() {
    let app = spawn_app_with(|c| {
        c.refresh_idle_secs = 3600;
        c.session_max_secs = 7200;
        c.reuse_grace_secs = 10;
    })
    .await;
    let live = app.user(&email()).await;
    let live1 = app.rotate(&live.refresh).await;
    let ended = app.user(&email()).await;
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&ended.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let expired = app.user(&email()).await;

    app.clock.advance(3000);
    let live2 = app.rotate(&live1.refresh).await;
    app.clock.advance(1000); // `expired` is past its idle limit; `live` is not
    let p = app.prune().await;
    assert_eq!(p.sessions, 1, "{p:?}");
    assert_eq!(
        p.revocations, 1,
        "the logged-out session's access tokens have all expired"
    );
    assert!(p.sealed_successors >= 1, "{p:?}");
    assert_eq!(
        app.refresh(&expired.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Reuse of an old token of the live session is still detected after pruning.
    assert_eq!(
        app.refresh(&live.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&live2.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // And a second pass has nothing left to do.
    let again = app.prune().await;
    assert_eq!((again.sessions, again.revocations), (0, 0));
}

#[tokio::test]
async fn the_in_memory_revoked_set_forgets_sessions_once_their_tokens_expired() {
    let app = spawn_app().await;
    let t = app.user(&email()).await;
    app.client
        .post(app.url("/auth/logout"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(app.state().access.revoked().len(), 1);
    app.clock.advance(300 + 30 + 1);
    eventually("the revoked set forgets the expired entries", || async {
        app.state().access.revoked().is_empty()
    })
    .await;
    assert_eq!(app.state().access.revoked().len(), 0);
    assert_eq!(
        app.me_status(&t.access).await,
        StatusCode::UNAUTHORIZED,
        "expired anyway"
    );
}
