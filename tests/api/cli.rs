//! The binary: `authd openapi`, `migrate`, `keys rotate`, and configuration validation.

use reqwest::StatusCode;
use serde_json::Value;

use sea_orm::ConnectionTrait;

use crate::helpers::*;

use crate::process::authd_command as authd;

#[test]
fn the_committed_openapi_yaml_matches_the_code() {
    let out = authd().arg("openapi").output().unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .unwrap_or_default();
    assert!(
        generated == committed,
        "openapi.yaml is out of date: regenerate it with `cargo run -- openapi > openapi.yaml`"
    );
}

#[tokio::test]
async fn the_served_spec_is_the_committed_one() {
    let app = spawn_app().await;
    let yaml = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    assert_eq!(yaml, committed);
    let json: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["servers"][0]["url"], "/");
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[test]
fn a_bad_setting_stops_the_server_with_a_message_naming_the_variable() {
    for (var, value) in [
        ("AUTHD_ACCESS_TTL_SECS", "five minutes"),
        ("AUTHD_LISTEN", "not-an-address"),
        ("AUTHD_REUSE_GRACE_SECS", "-1"),
        ("AUTHD_ALLOWED_ORIGINS", "https://ok.example,not an origin"),
        ("AUTHD_INSECURE_COOKIES", "maybe"),
        ("AUTHD_LOG_FORMAT", "jsn"),
        ("AUTHD_TRUST_PROXY", "many"),
    ] {
        let out = authd().env(var, value).arg("serve").output().unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
    }
    let dir = std::env::temp_dir().join(format!("authd-cfg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = authd()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/x.db?mode=rwc", dir.display()),
        )
        .env("AUTHD_REFRESH_IDLE_SECS", "7200")
        .env("AUTHD_SESSION_MAX_SECS", "3600")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AUTHD_REFRESH_IDLE_SECS") && err.contains("AUTHD_SESSION_MAX_SECS"),
        "{err}"
    );
}

#[tokio::test]
async fn migrate_creates_the_schema_on_a_fresh_database() {
    let (db, _database) = fresh_database().await;
    let out = authd()
        .env("DATABASE_URL", &db.database_url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = sea_orm::Database::connect(db.database_url.clone())
        .await
        .unwrap();
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        _ => {
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
        }
    };
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(backend, sql))
        .await
        .unwrap();
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("", "name").unwrap())
        .collect();
    for table in [
        "users",
        "sessions",
        "refresh_tokens",
        "revoked_sessions",
        "security_events",
        "signing_keys",
    ] {
        assert!(
            names.iter().any(|n| n == table),
            "{table} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn keys_rotate_makes_a_new_key_current_and_keeps_the_old_one_verifying() {
    let app = spawn_app().await;
    let before = app.user(&email()).await;
    let jwks = |app: &TestApp| {
        let url = app.url("/.well-known/jwks.json");
        let client = app.client.clone();
        async move {
            let v: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let old = jwks(&app).await;
    assert_eq!(old.len(), 1);
    let out = authd()
        .env("DATABASE_URL", &app.db.database_url)
        .args(["keys", "rotate", "--activate-in", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The running server picks the new key up from the database within its sync interval.
    eventually("the JWKS lists both keys", || async {
        jwks(&app).await.len() >= 2
    })
    .await;
    let both = jwks(&app).await;
    assert_eq!(both.len(), 2);
    // The CLI stamped the new key's start with the wall clock, which may be a second ahead of
    // the test clock: until the server's clock reaches it, the old key signs.
    app.clock.advance(2);
    let after = app.user(&email()).await;
    let header = after.access.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_ne!(header["kid"], old[0].as_str(), "signs with the new key");
    assert_eq!(
        app.me_status(&before.access).await,
        StatusCode::OK,
        "the old key still verifies"
    );
    assert_eq!(app.me_status(&after.access).await, StatusCode::OK);

    // Once every token the old key signed has expired, it leaves the JWKS. (The CLI stamped the
    // retirement with the wall clock, a little after the test clock's start: move well past.)
    app.clock.advance(300 + 30 + 120);
    eventually("the JWKS drops the retired key", || async {
        jwks(&app).await.len() <= 1
    })
    .await;
    assert_eq!(
        jwks(&app).await,
        vec![header["kid"].as_str().unwrap().to_owned()]
    );
}

/// `authd serve` with `env` (on a database in a fresh directory unless `env` names one): its
/// stderr, after checking that it refused to start.
fn refused(env: &[(&str, &str)]) -> String {
    let dir = std::env::temp_dir().join(format!("authd-cfg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = authd();
    cmd.env(
        "DATABASE_URL",
        format!("sqlite://{}/x.db?mode=rwc", dir.display()),
    )
    .env("AUTHD_LISTEN", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.arg("serve").output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{env:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn settings_that_cannot_work_are_refused_with_what_would() {
    let err = refused(&[("AUTHD_LISTEN", ":8080")]);
    assert!(err.contains("127.0.0.1:8080"), "{err}");
    let err = refused(&[("AUTHD_LISTEN", "0.0.0.0:0")]);
    assert!(err.contains("AUTHD_ISSUER"), "{err}");
    let err = refused(&[
        ("AUTHD_ACCESS_TTL_SECS", "3600"),
        ("AUTHD_REFRESH_IDLE_SECS", "60"),
    ]);
    assert!(
        err.contains("AUTHD_ACCESS_TTL_SECS") && err.contains("AUTHD_REFRESH_IDLE_SECS"),
        "{err}"
    );
}

#[test]
fn database_errors_say_what_is_wrong_and_never_print_the_password() {
    let err = refused(&[("DATABASE_URL", "postgress://admin:s3cretpw@127.0.0.1/db")]);
    assert!(
        err.contains("postgres://") && !err.contains("s3cretpw"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("authd-db-{}", uuid::Uuid::new_v4().simple()));
    let err = refused(&[(
        "DATABASE_URL",
        &format!("sqlite://{}/x.db?mode=rwc", dir.display()),
    )]);
    assert!(
        err.contains("does not exist") && err.contains(&dir.display().to_string()),
        "{err}"
    );
    std::fs::create_dir_all(&dir).unwrap();
    let err = refused(&[("DATABASE_URL", &format!("sqlite://{}/x.db", dir.display()))]);
    assert!(err.contains("?mode=rwc") && err.contains("x.db"), "{err}");
    // Nothing listens on port 1: the real cause, not the pool's "timed out".
    let err = refused(&[
        (
            "DATABASE_URL",
            "postgres://postgres:pw1234@127.0.0.1:1/postgres",
        ),
        ("AUTHD_DB_ACQUIRE_TIMEOUT_MS", "500"),
    ]);
    assert!(err.contains("refused") && !err.contains("pw1234"), "{err}");
    assert!(!err.contains("timed out"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_commands_never_create_a_database() {
    let dir = std::env::temp_dir().join(format!("authd-adm-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("authd.db");
    for args in [&["users", "list"][..], &["prune"], &["keys", "rotate"]] {
        let out = authd()
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", file.display()),
            )
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded on no database");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&file.display().to_string()), "{args:?}: {err}");
        assert!(!file.exists(), "{args:?} created {}", file.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pooler_settings_are_refused_with_sqlite_and_a_bad_direct_url_is_not_repeated() {
    let dir = std::env::temp_dir().join(format!("authd-pool-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("authd.db").display());
    let cases: [(&str, &str, &str); 2] = [
        ("AUTHD_DB_POOL_MODE", "transaction", "AUTHD_DB_POOL_MODE"),
        (
            "AUTHD_DATABASE_DIRECT_URL",
            "postgres://u:s3cretpw@[nope",
            "AUTHD_DATABASE_DIRECT_URL",
        ),
    ];
    for (var, value, named) in cases {
        let out = authd()
            .env("DATABASE_URL", &url)
            .env(var, value)
            .args(["migrate"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(named), "{var}: {err}");
        assert!(
            !err.contains("s3cretpw"),
            "{var}: the password is repeated: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
