//! `spawn_app()`: the real server on port 0 with its own database and a test clock, and the
//! small HTTP helpers every test uses.
use std::path::PathBuf;

use authd::app::{self, RunningApp};
use authd::clock::{Clock as _, TestClock};
use authd::config::{DbConfig, ServeConfig};
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

/// A running test server.
pub struct TestApp {
    pub base: String,
    pub clock: TestClock,
    pub app: Option<RunningApp>,
    pub client: reqwest::Client,
    pub db: DbConfig,
    pub cfg: ServeConfig,
    /// The SQLite file, when the test runs on SQLite.
    pub sqlite_path: Option<PathBuf>,
    /// The database's owner: it goes with the last app on it.
    pub database: TestDb,
}

/// Settings a test may change before the server starts.
pub fn test_config() -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        sync_interval_ms: 50,
        rate_limits: false,
        prune_interval_secs: 86_400,
        // One hashing thread per test app: tests run many apps at once, and each thread keeps
        // 19 MiB once it has verified a password.
        hash_threads: 1,
        // Never the work tree: mail written as files goes to a directory of the test's own.
        mail: authd::config::MailConfig {
            mail_dir: std::env::temp_dir()
                .join("authd-tests")
                .join(format!("mail-{}", uuid::Uuid::new_v4().simple())),
            ..authd::config::MailConfig::default()
        },
        ..ServeConfig::default()
    }
}

/// A test's own database, removed when the last handle to it is dropped: the SQLite file with
/// its `-wal` and `-shm`, or the Postgres database. Clones share it (a restarted app).
#[derive(Clone, Default)]
pub struct TestDb(std::sync::Arc<Owned>);

#[derive(Default)]
struct Owned {
    sqlite_path: Option<PathBuf>,
    /// The admin URL and the database's name.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// The SQLite file, when the test runs on SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.0.sqlite_path.clone()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(path) = &self.sqlite_path {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some((admin, name)) = self.postgres.take() {
            // Drop may run on the test's runtime, which cannot block: a thread of its own.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let conn = Database::connect(admin).await.ok()?;
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    conn.execute_unprepared(&sql).await.ok()?;
                    conn.close().await.ok()
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("could not drop the test database (.ci/run drops leftovers)");
            }
        }
    }
}

/// Removes test databases older than an hour, once per run: a test's own are removed when it
/// ends, but a server task still winding down can reopen (and so recreate, empty) its file.
fn sweep_stale_files(dir: &std::path::Path) {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < hour_ago);
            if old && entry.file_name().to_string_lossy().starts_with("authd_t_") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    });
}

/// A fresh database: an SQLite file, or a new Postgres database when `TEST_DATABASE_URL` is set.
/// It is removed when the returned [`TestDb`] (and every clone) is dropped: keep it bound.
pub async fn fresh_database() -> (DbConfig, TestDb) {
    let name = format!("authd_t_{}", uuid::Uuid::new_v4().simple());
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let conn = Database::connect(admin.clone())
                .await
                .expect("connect TEST_DATABASE_URL");
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            conn.close().await.ok();
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(b, _)| b)
                .to_owned();
            let url = format!("{base}/{name}");
            (
                DbConfig {
                    database_url: url,
                    ..DbConfig::default()
                },
                TestDb(std::sync::Arc::new(Owned {
                    sqlite_path: None,
                    postgres: Some((admin, name)),
                })),
            )
        }
        _ => {
            let dir = std::env::temp_dir().join("authd-tests");
            std::fs::create_dir_all(&dir).expect("temp dir");
            sweep_stale_files(&dir);
            let path = dir.join(format!("{name}.db"));
            let url = format!("sqlite://{}?mode=rwc", path.display());
            (
                DbConfig {
                    database_url: url,
                    ..DbConfig::default()
                },
                TestDb(std::sync::Arc::new(Owned {
                    sqlite_path: Some(path),
                    postgres: None,
                })),
            )
        }
    }
}

/// Starts the app with the default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `tweak` adjusts its settings.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (db, database) = fresh_database().await;
    let mut cfg = test_config();
    tweak(&mut cfg);
    start_on(db, cfg, database, TestClock::new()).await
}

/// Starts the app on an existing database.
pub async fn start_on(
    db: DbConfig,
    cfg: ServeConfig,
    database: TestDb,
    clock: TestClock,
) -> TestApp {
    let running = app::start(&db, &cfg, std::sync::Arc::new(clock.clone()), None)
        .await
        .expect("app starts");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        base,
        clock,
        app: Some(running),
        client,
        db,
        cfg,
        sqlite_path: database.sqlite_path(),
        database,
    }
}

/// Tokens from a body-delivery login or refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
}

impl Tokens {
    pub fn from_json(v: &Value) -> Self {
        Self {
            access: v["access_token"].as_str().expect("access_token").to_owned(),
            refresh: v["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            session_id: v["session_id"].as_str().expect("session_id").to_owned(),
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn state(&self) -> &authd::api::AppState {
        &self.app.as_ref().expect("running").state
    }

    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/register",
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers `email` with a fixed password and logs in with body delivery.
    pub async fn user(&self, email: &str) -> Tokens {
        let r = self.register(email, "correct horse battery").await;
        assert!(
            r.status() == StatusCode::CREATED || r.status() == StatusCode::CONFLICT,
            "register: {}",
            r.status()
        );
        self.login_body(email, "correct horse battery").await
    }

    pub async fn login_body(&self, email: &str, password: &str) -> Tokens {
        let r = self
            .post_json(
                "/auth/login",
                json!({"email": email, "password": password, "delivery": "body"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "login");
        Tokens::from_json(&r.json().await.expect("json"))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/auth/refresh", json!({"refresh_token": refresh_token}))
            .await
    }

    /// Refreshes and expects success.
    pub async fn rotate(&self, refresh_token: &str) -> Tokens {
        let r = self.refresh(refresh_token).await;
        assert_eq!(r.status(), StatusCode::OK, "refresh");
        Tokens::from_json(&r.json().await.expect("json"))
    }

    pub async fn get_auth(&self, path: &str, access: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .expect("request")
    }

    pub async fn me_status(&self, access: &str) -> StatusCode {
        self.get_auth("/me", access).await.status()
    }

    /// The id of the user `access` was issued to, as `/me` says.
    pub async fn user_id_of(&self, access: &str) -> String {
        let me: Value = self.get_auth("/me", access).await.json().await.expect("me");
        me["user_id"].as_str().expect("user_id").to_owned()
    }

    pub async fn events(&self, access: &str) -> Vec<String> {
        let v: Value = self
            .get_auth("/auth/events", access)
            .await
            .json()
            .await
            .expect("json");
        v.as_array()
            .expect("array")
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Runs one pruning pass at the test clock's time.
    pub async fn prune(&self) -> authd::store::Pruned {
        let s = self.state();
        s.store().prune(s.clock.now()).await.expect("prune")
    }
}

/// Asserts the API's error body (`{"error", "message"}`, docs/api.md) and returns it.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status, "status for {code}");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    assert_eq!(ct.as_deref(), Some("application/json; charset=utf-8"));
    let body: Value = resp.json().await.expect("json error body");
    assert_eq!(body["error"], code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "only error and message: {body}"
    );
    body
}

/// A unique email for a test.
pub fn email() -> String {
    format!("u{}@example.com", uuid::Uuid::new_v4().simple())
}

/// `mail` in full-width letters, which NFKC folds back to `mail`: the same account.
pub fn full_width(mail: &str) -> String {
    mail.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).expect("full-width form"),
            c => c,
        })
        .collect()
}

/// Polls `check` every 10 ms until it holds; panics naming `what` if it still does not after
/// 10 s (a generous bound on a loaded machine: what is waited for is a background sync of
/// 50 ms, and the time it took is not what the test asserts).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within 10 s: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

impl TestApp {
    /// Waits until `/me` with `access` answers `want` (after a background sync).
    pub async fn eventually_me(&self, access: &str, want: StatusCode) {
        eventually(&format!("/me answers {want}"), || async {
            self.me_status(access).await == want
        })
        .await;
    }
}

/// Does this answer expire the refresh cookie (empty, `Max-Age=0`, the cookie's attributes)?
pub fn expires_cookie(r: &reqwest::Response) -> bool {
    r.headers().get_all("set-cookie").iter().any(|v| {
        let v = v.to_str().unwrap_or("");
        v.starts_with("__Host-refresh_token=;")
            && v.contains("Max-Age=0")
            && v.contains("HttpOnly")
            && v.contains("Secure")
            && v.contains("SameSite=Strict")
            && v.contains("Path=/")
    })
}

/// The `name=value` of the refresh cookie a response sets ("" when it sets none).
pub fn refresh_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .to_owned()
}

impl TestApp {
    /// A cookie-delivery login of `mail`: the access token and the `name=value` of the refresh
    /// cookie.
    pub async fn cookie_login(&self, mail: &str) -> (String, String) {
        let r = self
            .post_json(
                "/auth/login",
                json!({"email": mail, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "cookie login");
        let cookie = refresh_cookie(&r);
        let body: Value = r.json().await.expect("json");
        (
            body["access_token"].as_str().unwrap_or("").to_owned(),
            cookie,
        )
    }

    /// The kids listed by this server's JWKS, sorted.
    pub async fn jwks_kids(&self) -> Vec<String> {
        let v: Value = self
            .client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks json");
        let mut kids: Vec<String> = v["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect();
        kids.sort();
        kids
    }

    /// Stops this server and starts another on the same database, settings and clock.
    pub async fn restart(mut self) -> TestApp {
        let (db, cfg, database, clock) = (
            self.db.clone(),
            self.cfg.clone(),
            self.database.clone(),
            self.clock.clone(),
        );
        self.stop().await;
        start_on(db, cfg, database, clock).await
    }
}

impl TestApp {
    /// `POST /auth/password` as the holder of `access`.
    pub async fn change_password(&self, access: &str, current: &str, new: &str) -> Response {
        self.client
            .post(self.url("/auth/password"))
            .bearer_auth(access)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
            .await
            .expect("request")
    }

    /// `POST /auth/logout?scope=SCOPE` with the access token `access`.
    pub async fn logout(&self, access: &str, scope: &str) -> Response {
        self.client
            .post(self.url(&format!("/auth/logout?scope={scope}")))
            .bearer_auth(access)
            .send()
            .await
            .expect("request")
    }
}

impl TestApp {
    /// A new service key with `scopes`, in force on this server at once (other instances
    /// pick it up with their sync).
    pub async fn service_key(&self, scopes: &[authd::tokens::Scope]) -> String {
        let store = self.state().store();
        let minted = authd::tokens::service::mint().expect("random");
        let name = format!("key-{}", uuid::Uuid::new_v4().simple());
        assert!(
            store
                .create_service_key(&name, scopes, minted.hash.clone(), self.clock.now())
                .await
                .expect("store")
        );
        self.state()
            .service_keys
            .reload(store.live_service_keys())
            .await
            .expect("keys");
        minted.key
    }

    /// `GET /auth/revocations` with `query` (e.g. `cursor=...&wait=1`) and the service key
    /// `key`.
    pub async fn revocations(&self, key: &str, query: &str) -> Response {
        self.client
            .get(self.url(&format!("/auth/revocations?{query}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    /// The whole snapshot of the feed: every entry, and the cursor to poll with next.
    pub async fn feed_snapshot(&self, key: &str) -> (Vec<Value>, String) {
        let mut entries = Vec::new();
        let mut query = String::new();
        loop {
            let r = self.revocations(key, &query).await;
            assert_eq!(r.status(), StatusCode::OK, "snapshot page");
            let page: Value = r.json().await.expect("json");
            entries.extend(page["entries"].as_array().expect("entries").iter().cloned());
            let cursor = page["cursor"].as_str().expect("cursor").to_owned();
            if !page["more"].as_bool().expect("more") {
                return (entries, cursor);
            }
            query = format!("cursor={cursor}");
        }
    }
}
