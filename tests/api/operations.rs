//! Operating authd: metrics, structured logs without secrets, admin commands.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// The binary without the test's own logging settings (each test sets what it reads).
fn authd() -> Command {
    let mut cmd = crate::process::authd_command();
    cmd.env_remove("RUST_LOG");
    cmd
}

/// The value of one sample of the Prometheus text, 0 when absent.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_exactly_what_a_scripted_flow_did() {
    let app = spawn_app_with(|c| c.reuse_grace_secs = 10).await;
    let mail = email();
    let a = app.user(&mail).await; // register + login
    let r = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": "wrong wrong"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let b = app.login_body(&mail, "correct horse battery").await;
    let a1 = app.rotate(&a.refresh).await; // rotated
    app.rotate(&a.refresh).await; // grace replay
    app.rotate(&a1.refresh).await; // rotated
    app.clock.advance(10); // a's grace window closes
    assert_eq!(
        app.refresh(&a.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    ); // reuse
    assert_eq!(
        app.refresh("garbage").await.status(),
        StatusCode::UNAUTHORIZED
    ); // rejected
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&b.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expect = [
        (r#"authd_logins_total{outcome="success"}"#, 2.0),
        (r#"authd_logins_total{outcome="invalid_credentials"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="rotated"}"#, 2.0),
        (r#"authd_refreshes_total{outcome="grace_replay"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="reuse_detected"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="rejected"}"#, 1.0),
        (r#"authd_sessions_revoked_total{cause="reuse"}"#, 1.0),
        (r#"authd_sessions_revoked_total{cause="logout"}"#, 1.0),
        (
            r#"authd_http_requests_total{operation="register",status="201"}"#,
            1.0,
        ),
        (
            r#"authd_http_requests_total{operation="login",status="200"}"#,
            2.0,
        ),
        (
            r#"authd_http_requests_total{operation="login",status="401"}"#,
            1.0,
        ),
        (
            r#"authd_http_requests_total{operation="refresh",status="200"}"#,
            3.0,
        ),
        (
            r#"authd_http_requests_total{operation="refresh",status="401"}"#,
            2.0,
        ),
        (
            r#"authd_http_requests_total{operation="logout",status="204"}"#,
            1.0,
        ),
        (
            r#"authd_http_request_duration_seconds_count{operation="refresh",status="200"}"#,
            3.0,
        ),
        ("authd_revoked_sessions", 2.0),
    ];
    for (name, value) in expect {
        assert_eq!(sample(&text, name), value, "{name}\n{text}");
    }
    assert!(text.contains("authd_db_pool_connections{state=\"idle\"}"));
}

#[tokio::test]
async fn metrics_can_live_on_a_separate_private_listener() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let app = spawn_app_with(|c| c.metrics_listen = Some(addr)).await;
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("authd_http_requests_total")
    );
}

/// Starts the binary with JSON logs at debug level; returns the child and its base URL.
fn start_logged(
    db_url: &str,
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = authd()
        .env("DATABASE_URL", db_url)
        .env("AUTHD_LISTEN", "127.0.0.1:0")
        .env("AUTHD_LOG_FORMAT", "json")
        .env("AUTHD_REUSE_GRACE_SECS", "0")
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            break;
        };
        if line.contains("authd listening") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let addr = v["fields"]["addr"].as_str().unwrap().to_owned();
            return (child, format!("http://{addr}"), rx);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("authd did not start");
}

#[tokio::test]
async fn logs_are_json_lines_and_never_contain_a_secret() {
    let (db, _database) = fresh_database().await;
    let (mut child, base, rx) = start_logged(&db.database_url);
    let client = reqwest::Client::new();
    let mail = email();
    let password = "s3cret-Pa55word-for-logs";
    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{base}{path}")).json(&body).send()
    };
    assert_eq!(
        post(
            "/auth/register",
            json!({"email": mail, "password": password})
        )
        .await
        .unwrap()
        .status(),
        201
    );
    let login: serde_json::Value = post(
        "/auth/login",
        json!({"email": mail, "password": password, "delivery": "body"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rt = login["refresh_token"].as_str().unwrap().to_owned();
    let at = login["access_token"].as_str().unwrap().to_owned();
    post(
        "/auth/login",
        json!({"email": mail, "password": "wrong-password-in-logs"}),
    )
    .await
    .unwrap();
    client
        .get(format!("{base}/me"))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    let next: serde_json::Value = post("/auth/refresh", json!({"refresh_token": rt}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rt2 = next["refresh_token"].as_str().unwrap().to_owned();
    post("/auth/refresh", json!({"refresh_token": rt}))
        .await
        .unwrap(); // reuse
    let _ = child.kill();
    let _ = child.wait();
    let lines: Vec<String> = rx.try_iter().collect();
    let all = lines.join("\n");
    for secret in [
        password,
        "wrong-password-in-logs",
        &rt,
        &rt2,
        &at,
        at.split('.').nth(2).unwrap(),
    ] {
        assert!(!all.contains(secret), "a secret reached the logs");
    }
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    let requests: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "authd::http")
        .collect();
    assert!(requests.len() >= 6, "{}", requests.len());
    let login_line = requests
        .iter()
        .find(|v| v["fields"]["route"] == "login")
        .unwrap();
    for field in ["method", "route", "status", "latency_ms", "request_id"] {
        assert!(
            login_line["fields"].get(field).is_some(),
            "{field}: {login_line}"
        );
    }
    let reuse = lines
        .iter()
        .find(|l| l.contains("refresh token reused"))
        .expect("reuse logged");
    let reuse: serde_json::Value = serde_json::from_str(reuse).unwrap();
    assert_eq!(reuse["level"], "WARN");
    assert!(
        reuse["fields"]["user_id"].as_str().is_some()
            && reuse["fields"]["session_id"].as_str().is_some()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("login failed") && l.contains("\"WARN\""))
    );
}

fn admin(db_url: &str, args: &[&str]) -> String {
    let out = authd()
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "error")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn wait_for_status(app: &TestApp, access: &str, want: StatusCode) {
    app.eventually_me(access, want).await;
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_refuses_logins_like_a_wrong_password() {
    let app = spawn_app().await;
    let mail = email();
    let t = app.user(&mail).await;
    let url = app.db.database_url.clone();
    assert!(admin(&url, &["users", "list"]).contains(&mail));

    let out = admin(&url, &["users", "disable", &mail.to_uppercase()]);
    assert!(out.contains("ended 1 session"), "{out}");
    wait_for_status(&app, &t.access, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        app.refresh(&t.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let disabled = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": "correct horse battery"}),
        )
        .await;
    let wrong = app
        .post_json(
            "/auth/login",
            json!({"email": mail, "password": "not the password"}),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        disabled.bytes().await.unwrap(),
        wrong.bytes().await.unwrap()
    );

    admin(&url, &["users", "enable", &mail]);
    let t2 = app.login_body(&mail, "correct horse battery").await;
    assert_eq!(app.me_status(&t2.access).await, StatusCode::OK);
}

#[tokio::test]
async fn sessions_revoke_ends_every_session_of_a_user_and_prune_reports() {
    let app = spawn_app().await;
    let mail = email();
    let a = app.user(&mail).await;
    let b = app.login_body(&mail, "correct horse battery").await;
    let other = app.user(&email()).await;
    let url = app.db.database_url.clone();
    let out = admin(&url, &["sessions", "revoke", "--user", &mail]);
    assert!(out.contains("ended 2 session"), "{out}");
    wait_for_status(&app, &a.access, StatusCode::UNAUTHORIZED).await;
    wait_for_status(&app, &b.access, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.me_status(&other.access).await, StatusCode::OK);
    let out = admin(&url, &["prune"]);
    assert!(out.starts_with("pruned: "), "{out}");
}

/// `authd ARGS` with only `DATABASE_URL` and `env` set (another shell than the server's).
fn admin_with(db_url: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = authd();
    cmd.env("DATABASE_URL", db_url).env("RUST_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn a_command_run_with_other_settings_never_shortens_what_the_servers_need() {
    let app = spawn_app_with(|c| {
        c.access_ttl_secs = 3600;
        c.reuse_grace_secs = 300;
    })
    .await;
    let mail = email();
    let t = app.user(&mail).await;
    let other = app.user(&email()).await;
    let current = app.rotate(&other.refresh).await;
    let url = app.db.database_url.clone();
    let short = [
        ("AUTHD_ACCESS_TTL_SECS", "1"),
        ("AUTHD_LEEWAY_SECS", "0"),
        ("AUTHD_REUSE_GRACE_SECS", "0"),
    ];
    admin_with(&url, &short, &["users", "disable", &mail]);
    wait_for_status(&app, &t.access, StatusCode::UNAUTHORIZED).await;
    // Two minutes on, far past the command's own horizon (1 s, no leeway) but well within the
    // access token's hour, and after a prune run the same way.
    app.clock.advance(120);
    let out = admin_with(&url, &short, &["prune"]);
    assert!(out.contains(" 0 revocations, 0 sealed successors"), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await; // several sync passes
    assert_eq!(app.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
    // The server's grace window (300 s) still covers the rotated token: a replay gets the
    // current token instead of ending the session.
    let replay = app.rotate(&other.refresh).await;
    assert_eq!(replay.refresh, current.refresh);
    // A restart loads the revocation from the database: still refused.
    let app = app.restart().await;
    assert_eq!(app.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
}
