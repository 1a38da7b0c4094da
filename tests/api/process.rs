//! `authd serve` as a real child process, for the tests that need several instances, signals or
//! a crash. It listens on `127.0.0.1:0` (the bound address is read from its JSON log line
//! "authd listening"), and it is killed when dropped. It derefs to a [`TestApp`] without an
//! in-process server, so the usual HTTP helpers (`user`, `rotate`, `me_status`, ...) work on it.
use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authd::clock::TestClock;
use authd::config::DbConfig;
use serde_json::Value;

use crate::helpers::{TestApp, TestDb, fresh_database, test_config};

/// The issuer every instance of a test shares, as behind one load balancer.
pub const ISSUER: &str = "http://authd.test";

/// The `authd` binary with no `AUTHD_*` or `DATABASE_URL` inherited from the test's environment.
pub fn authd_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTHD_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Runs `authd <args>` on `database_url` to completion (off the async runtime) and returns its
/// stdout; panics with its stderr if it fails.
pub async fn run_cli(database_url: &str, args: &[&str]) -> String {
    let mut cmd = authd_command();
    cmd.env("DATABASE_URL", database_url).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run authd");
    assert!(
        out.status.success(),
        "authd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `authd serve` child process.
pub struct Authd {
    child: Child,
    http: TestApp,
    log: Arc<Mutex<Vec<String>>>,
}

impl Authd {
    /// Keeps `database` (and so its file or Postgres database) as long as this process.
    pub fn owning(mut self, database: TestDb) -> Self {
        self.http.sqlite_path = database.sqlite_path();
        self.http.database = database;
        self
    }
}

impl Deref for Authd {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.http
    }
}

impl Drop for Authd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a JSON log line `{"fields":{"message":"authd listening","addr":...}}`.
fn listening_addr(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    (fields.get("message")?.as_str()? == "authd listening")
        .then(|| fields.get("addr")?.as_str().map(str::to_owned))
        .flatten()
}

impl Authd {
    /// Starts `authd serve` on `database_url` with the shared [`ISSUER`], rate limits off, and
    /// `env` on top; returns once it listens.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Authd {
        let mut cmd = authd_command();
        cmd.arg("serve")
            .env("DATABASE_URL", database_url)
            .env("AUTHD_LISTEN", "127.0.0.1:0")
            .env("AUTHD_ISSUER", ISSUER)
            .env("AUTHD_RATE_LIMITS", "off")
            .env(
                "AUTHD_MAIL_DIR",
                std::env::temp_dir().join("authd-tests").join("mail"),
            )
            .env("AUTHD_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn authd");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        // Drains stderr for the whole life of the process, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut authd = Authd {
            child,
            http: TestApp {
                base: String::new(),
                clock: TestClock::new(),
                app: None,
                client,
                db: DbConfig {
                    database_url: database_url.to_owned(),
                    ..DbConfig::default()
                },
                cfg: test_config(),
                sqlite_path: None,
                database: TestDb::default(),
            },
            log,
        };
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(addr)) => authd.http.base = format!("http://{addr}"),
            _ => panic!("authd did not start:\n{}", authd.log_text()),
        }
        authd
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `KILL`, ...) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits (without blocking the runtime) until the process exits, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Everything the process logged so far, for failure messages.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }
}

/// The `kid` in an access token's header.
pub fn kid_of(access_token: &str) -> String {
    use base64::Engine;
    let header = access_token.split('.').next().expect("jws");
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("b64");
    let header: Value = serde_json::from_slice(&header).expect("header json");
    header["kid"].as_str().expect("kid").to_owned()
}

/// Two instances on one fresh database, started at the same time (as a deployment would).
pub async fn pair(env: &[(&str, &str)]) -> (Authd, Authd) {
    let (db, database) = fresh_database().await;
    let (a, b) = tokio::join!(
        Authd::start(&db.database_url, env),
        Authd::start(&db.database_url, env)
    );
    (a.owning(database.clone()), b.owning(database))
}

/// A service key with the scope `revocations:read`, made by `authd service-keys create` on the
/// database of `servers`, once every one of them accepts it.
pub async fn feed_key(servers: &[&Authd]) -> String {
    cli_key(servers, "api", "revocations:read", "/auth/revocations").await
}

/// A service key with the scope `admin`, made the same way.
pub async fn admin_key(servers: &[&Authd]) -> String {
    cli_key(servers, "backoffice", "admin", "/admin/users?limit=1").await
}

/// `authd service-keys create --name NAME --scope SCOPE`, once every server answers `probe`
/// with it.
async fn cli_key(servers: &[&Authd], name: &str, scope: &str, probe: &str) -> String {
    let url = &servers[0].db.database_url;
    let args = ["service-keys", "create", "--name", name, "--scope", scope];
    let key = run_cli(url, &args).await.trim().to_owned();
    crate::helpers::eventually("every instance knows the new key", || async {
        for s in servers {
            let r = s.client.get(s.url(probe)).bearer_auth(&key).send().await;
            if !r.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                return false;
            }
        }
        true
    })
    .await;
    key
}
