//! Parallel refreshes of one token: rotation is one atomic step.
use std::collections::HashSet;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn race(app: &TestApp, token: &str, n: usize) -> Vec<(StatusCode, Option<String>)> {
    let calls = (0..n).map(|_| async {
        let r = app.refresh(token).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        (status, body["refresh_token"].as_str().map(str::to_owned))
    });
    join_all(calls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_grace_off_exactly_one_of_n_parallel_refreshes_wins() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 0).await;
    for n in [2, 10, 50] {
        let mail = email();
        let t = app.user(&mail).await;
        let witness = app.login_body(&mail, "correct horse battery").await;
        let results = race(&app, &t.refresh, n).await;
        assert!(
            results.iter().all(|(s, _)| !s.is_server_error()),
            "{results:?}"
        );
        // The losers presented a rotated token: the family is revoked, and recorded once.
        let events = app.events(&witness.access).await;
        assert_eq!(
            events
                .iter()
                .filter(|k| *k == "refresh_token_reused")
                .count(),
            1,
            "{events:?}"
        );
        assert_eq!(app.me_status(&witness.access).await, StatusCode::OK);
        let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        assert_eq!(ok, 1, "n={n}: {results:?}");
        assert!(
            results
                .iter()
                .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_grace_on_every_parallel_refresh_gets_the_same_successor() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 10).await;
    for n in [2, 10, 50] {
        let t = app.user(&email()).await;
        let results = race(&app, &t.refresh, n).await;
        assert!(
            results.iter().all(|(s, _)| *s == StatusCode::OK),
            "n={n}: {results:?}"
        );
        let successors: HashSet<_> = results.iter().filter_map(|(_, t)| t.clone()).collect();
        assert_eq!(successors.len(), 1, "n={n}");
        // And the successor is live.
        let next = successors.into_iter().next().unwrap();
        assert_eq!(app.refresh(&next).await.status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_different_sessions_never_fail() {
    let app = spawn_app().await;
    let mut users = Vec::new();
    for _ in 0..10 {
        users.push(app.user(&email()).await);
    }
    let chains = users.iter().map(|u| async {
        let mut token = u.refresh.clone();
        for _ in 0..10 {
            let r = app.refresh(&token).await;
            assert_eq!(r.status(), StatusCode::OK);
            let v: Value = r.json().await.unwrap();
            token = v["refresh_token"].as_str().unwrap().to_owned();
        }
    });
    let registrations = (0..10).map(|_| async {
        let r = app.register(&email(), "correct horse battery").await;
        assert_eq!(r.status(), StatusCode::CREATED);
    });
    futures::join!(join_all(chains), join_all(registrations));
}

/// A refresh racing the logout of its session: whichever commits first, the session ends and
/// nothing the refresh handed out outlives it (no successor written into an ended session, no
/// refresh answered after the logout's).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_racing_a_logout_never_leaves_the_session_alive() {
    let app = spawn_app().await;
    let mut refreshed = 0;
    for _ in 0..30 {
        let t = app.user(&email()).await;
        let (refresh, logout) =
            futures::join!(app.refresh(&t.refresh), app.logout(&t.access, "local"));
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        let status = refresh.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "{status}"
        );
        if status == StatusCode::OK {
            refreshed += 1;
            let v: Value = refresh.json().await.unwrap();
            let successor = v["refresh_token"].as_str().unwrap();
            let access = v["access_token"].as_str().unwrap();
            assert_eq!(
                app.refresh(successor).await.status(),
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(app.me_status(access).await, StatusCode::UNAUTHORIZED);
        }
    }
    eprintln!("{refreshed} of 30 refreshes committed before their logout");
}
