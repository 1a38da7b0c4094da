//! The conformance fixtures: one authd in a known state and the tokens that probe it, each with
//! the verdict every verifier kit must give. The Rust kit runs them in `tests/conformance/main.rs`
//! (part of `cargo test`); the Node and Python kits run them through the `conformance` example
//! (`tests/conformance/generate.rs`), which prints them as JSON and keeps authd running until its
//! standard input closes. One generator, three consumers: the kits cannot drift apart.
//!
//! The state: three signing keys A, B, C (A signed first, then `authd keys rotate` twice, then
//! `authd keys revoke A`: B is a rotated-out key still in its overlap, C is current, A is gone),
//! sessions ended in each way authd ends one (logout, `users disable`, `sessions revoke`, an
//! admin's and a user's own deletion, a password change, refresh-token reuse), a token carrying
//! the `app_metadata` claim, and tokens forged with C's private key (read from the
//! database) that differ from a valid one in exactly one respect. Before handing them out, the
//! generator asks authd itself (`GET /me`) about every token and fails unless authd accepts
//! exactly the tokens marked `accept`: the verdicts are authd's, not the generator's opinion.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value, json};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The access-token lifetime of the fixture server: the fixtures stay valid this long.
pub const ACCESS_TTL_SECS: i64 = 3600;
/// The leeway of the fixture server, which every kit must be configured with.
pub const LEEWAY_SECS: i64 = 60;
const PASSWORD: &str = "conformance horse battery";

/// What a kit must answer for one token: `accept`, or the kind of refusal (the kits' error
/// kinds: Rust `VerifyError` variants, Node `code`s, Python classes, in snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    Malformed,
    ForbiddenHeader,
    UnknownKey,
    Invalid,
    Expired,
    NotYetValid,
    Revoked,
}

/// One token and its verdict; `sub` and `sid` are the claims an accepted token must yield.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub name: String,
    pub description: String,
    pub token: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Everything a kit needs: where authd is, how to configure the verifier, and the cases.
#[derive(Debug, Clone, Serialize)]
pub struct Fixtures {
    pub version: u32,
    pub authd_url: String,
    pub service_key: String,
    pub issuer: String,
    pub audience: String,
    pub leeway_secs: i64,
    /// Unix time after which the accepted tokens start to expire: run the cases before it.
    pub valid_until: i64,
    pub cases: Vec<Case>,
}

/// The fixture server; killed, and its directory removed, when dropped.
pub struct Running {
    child: Child,
    dir: PathBuf,
}

impl Running {
    /// Where authd's log is (kept until drop).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("authd.log")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `authd` with none of the caller's `AUTHD_*` settings.
fn authd(bin: &Path, database_url: &str) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTHD_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs an admin command to completion and returns its stdout.
fn cli(bin: &Path, database_url: &str, args: &[&str]) -> Result<String, BoxError> {
    let out = authd(bin, database_url).args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "authd {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A logged-in session: its tokens and the claims of its access token.
struct Session {
    access: String,
    refresh: String,
    claims: Map<String, Value>,
}

impl Session {
    fn kid(&self) -> String {
        header_of(&self.access)["kid"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
    fn claim(&self, name: &str) -> String {
        self.claims[name].as_str().unwrap_or_default().to_owned()
    }
}

fn part(token: &str, i: usize) -> Value {
    token
        .split('.')
        .nth(i)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

fn header_of(token: &str) -> Value {
    part(token, 0)
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> Result<reqwest::Response, BoxError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        Ok(req.send().await?)
    }

    /// An admin API request with `key`, once the server knows the key; fails unless it succeeds.
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(key);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let r = req.send().await?;
            if r.status().is_success() {
                return Ok(());
            }
            // A key made by a command reaches the server through the database.
            if r.status() != reqwest::StatusCode::UNAUTHORIZED || Instant::now() > deadline {
                return Err(format!("{method} {path}: authd answered {}", r.status()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn tokens(r: reqwest::Response) -> Result<Session, BoxError> {
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            return Err(format!("authd answered {status}: {v}").into());
        }
        let access = v["access_token"].as_str().unwrap_or_default().to_owned();
        let refresh = v["refresh_token"].as_str().unwrap_or_default().to_owned();
        let claims = match part(&access, 1) {
            Value::Object(m) => m,
            _ => return Err("the access token's payload is not an object".into()),
        };
        Ok(Session {
            access,
            refresh,
            claims,
        })
    }

    async fn login(&self, email: &str) -> Result<Session, BoxError> {
        let r = self
            .post(
                "/auth/register",
                None,
                json!({"email": email, "password": PASSWORD}),
            )
            .await?;
        if !(r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT) {
            return Err(format!("register {email}: {}", r.status()).into());
        }
        let body = json!({"email": email, "password": PASSWORD, "delivery": "body"});
        Self::tokens(self.post("/auth/login", None, body).await?).await
    }

    async fn refresh(&self, refresh: &str) -> Result<reqwest::Response, BoxError> {
        self.post("/auth/refresh", None, json!({"refresh_token": refresh}))
            .await
    }

    async fn expect(&self, r: reqwest::Response, what: &str) -> Result<(), BoxError> {
        if !r.status().is_success() {
            return Err(format!("{what}: authd answered {}", r.status()).into());
        }
        Ok(())
    }

    /// authd's own verdict: `Some(sub)` if `GET /me` accepts the token, `None` on a 401.
    async fn me(&self, token: &str) -> Result<Option<String>, BoxError> {
        let r = self
            .http
            .get(format!("{}/me", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        match r.status().as_u16() {
            200 => {
                let v: Value = r.json().await?;
                Ok(Some(v["user_id"].as_str().unwrap_or_default().to_owned()))
            }
            401 => Ok(None),
            s => Err(format!("GET /me answered {s}").into()),
        }
    }

    async fn kids(&self) -> Result<Vec<String>, BoxError> {
        let v: Value = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.base))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Waits until the JWKS holds a key that is not one of `known` (a rotation made through the
    /// database reached the server), and returns its `kid`.
    async fn new_kid(&self, known: &[&str]) -> Result<String, BoxError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(kid) = self
                .kids()
                .await?
                .into_iter()
                .find(|k| !known.contains(&k.as_str()))
            {
                return Ok(kid);
            }
            if Instant::now() > deadline {
                return Err("no new key in the JWKS after a rotation".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the JWKS is exactly `kids` (the server picked up a key change made through
    /// the database).
    async fn await_kids(&self, kids: &[&str]) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut have = self.kids().await?;
            have.sort();
            let mut want: Vec<String> = kids.iter().map(|k| (*k).to_owned()).collect();
            want.sort();
            if have == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the JWKS is {have:?}, not {want:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the server takes `key` (made by an admin command, it arrives through the
    /// database).
    async fn await_service_key(&self, key: &str) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .http
                .get(format!("{}/auth/revocations", self.base))
                .bearer_auth(key)
                .send()
                .await?;
            if r.status().is_success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(
                    format!("the new service key is still refused ({})", r.status()).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until authd refuses `token` (an end made by an admin command reaches the server
    /// through the database).
    async fn await_refused(&self, token: &str) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.me(token).await?.is_some() {
            if Instant::now() > deadline {
                return Err("authd still accepts a token of an ended session".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// Signs `header.payload` with Ed25519 or HMAC-SHA256; or leaves it unsigned.
enum Sig<'a> {
    Ed(&'a Ed25519KeyPair),
    Hs256(&'a [u8]),
    None,
}

fn compact(header: &Value, payload: &Value, sig: Sig<'_>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = match sig {
        Sig::Ed(pair) => b64(pair.sign(input.as_bytes()).as_ref()),
        Sig::Hs256(secret) => {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
            b64(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref())
        }
        Sig::None => String::new(),
    };
    format!("{input}.{signature}")
}

/// Starts authd on a fresh SQLite database in a temporary directory, puts it in the fixture
/// state and returns it with the cases. `bin` is the authd binary.
pub async fn generate(bin: &Path) -> Result<(Running, Fixtures), BoxError> {
    let dir = std::env::temp_dir().join(format!(
        "authd-conformance-{}-{}",
        std::process::id(),
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    let database_url = format!("sqlite://{}?mode=rwc", dir.join("authd.db").display());
    let mut child = authd(bin, &database_url)
        .arg("serve")
        .env("AUTHD_LISTEN", "127.0.0.1:0")
        .env("AUTHD_RATE_LIMITS", "off")
        .env("AUTHD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("AUTHD_ACCESS_TTL_SECS", ACCESS_TTL_SECS.to_string())
        .env("AUTHD_LEEWAY_SECS", LEEWAY_SECS.to_string())
        .env("AUTHD_REUSE_GRACE_SECS", "0")
        .env("AUTHD_SYNC_INTERVAL_MS", "100")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let running = Running { child, dir };
    let mut log = std::fs::File::create(running.log_path())?;
    let (tx, rx) = mpsc::channel();
    // Copies the log for the whole life of the process (a full pipe would block authd), and
    // hands over the address it listens on.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "{line}");
            let addr = serde_json::from_str::<Value>(&line).ok().and_then(|v| {
                let f = &v["fields"];
                (f["message"] == "authd listening")
                    .then(|| f["addr"].as_str().map(str::to_owned))?
            });
            if let Some(addr) = addr
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr);
            }
        }
    });
    let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await?
        .map_err(|_| format!("authd did not start; see {}", running.log_path().display()))?;
    let c = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: format!("http://{addr}"),
    };
    let fixtures = build(bin, &database_url, &c).await?;
    Ok((running, fixtures))
}

async fn build(bin: &Path, database_url: &str, c: &Client) -> Result<Fixtures, BoxError> {
    // Key A.
    let on_a = c.login("revoked-key@conformance.test").await?;
    let kid_a = on_a.kid();

    // Key B.
    cli(bin, database_url, &["keys", "rotate", "--activate-in", "0"])?;
    let kid_b = c.new_kid(&[&kid_a]).await?;
    c.await_kids(&[&kid_a, &kid_b]).await?;
    let on_b = c.login("previous-key@conformance.test").await?;
    let on_b_out = c.login("previous-key-logged-out@conformance.test").await?;
    c.expect(
        c.post("/auth/logout", Some(&on_b_out.access), json!({}))
            .await?,
        "logout",
    )
    .await?;

    // Key C, the current one; A revoked.
    cli(bin, database_url, &["keys", "rotate", "--activate-in", "0"])?;
    let kid_c = c.new_kid(&[&kid_a, &kid_b]).await?;
    c.await_kids(&[&kid_a, &kid_b, &kid_c]).await?;
    cli(bin, database_url, &["keys", "revoke", &kid_a])?;
    c.await_kids(&[&kid_b, &kid_c]).await?;

    let valid = c.login("valid@conformance.test").await?;
    if valid.kid() != kid_c || on_b.kid() != kid_b || on_a.kid() == kid_b {
        return Err("a token is not signed by the key the generator expects".into());
    }
    let refreshed = Client::tokens(c.refresh(&valid.refresh).await?).await?;
    let out = c.login("logged-out@conformance.test").await?;
    c.expect(
        c.post("/auth/logout", Some(&out.access), json!({})).await?,
        "logout",
    )
    .await?;
    let disabled = c.login("disabled@conformance.test").await?;
    cli(
        bin,
        database_url,
        &["users", "disable", "disabled@conformance.test"],
    )?;
    let revoked = c.login("sessions-revoked@conformance.test").await?;
    cli(
        bin,
        database_url,
        &[
            "sessions",
            "revoke",
            "--user",
            "sessions-revoked@conformance.test",
        ],
    )?;
    let kept = c.login("password-changed@conformance.test").await?;
    let elsewhere = c.login("password-changed@conformance.test").await?;
    let body = json!({"current_password": PASSWORD, "new_password": "another conformance horse"});
    c.expect(
        c.post("/auth/password", Some(&kept.access), body).await?,
        "password change",
    )
    .await?;
    let admin_key = cli(
        bin,
        database_url,
        &[
            "service-keys",
            "create",
            "--name",
            "conformance-admin",
            "--scope",
            "admin",
        ],
    )?;
    let with_metadata = c.login("app-metadata@conformance.test").await?;
    let path = format!("/admin/users/{}", with_metadata.claim("sub"));
    let roles = json!({"app_metadata": {"roles": ["support"], "tenant": 7}});
    c.admin(reqwest::Method::PATCH, &path, &admin_key, Some(roles))
        .await?;
    let with_metadata = Client::tokens(c.refresh(&with_metadata.refresh).await?).await?;
    if with_metadata.claims.get("app_metadata").is_none() {
        return Err("the refreshed access token carries no app_metadata".into());
    }
    let deleted = c.login("admin-deleted@conformance.test").await?;
    let path = format!("/admin/users/{}", deleted.claim("sub"));
    c.admin(reqwest::Method::DELETE, &path, &admin_key, None)
        .await?;
    let self_deleted = c.login("self-deleted@conformance.test").await?;
    c.admin(
        reqwest::Method::DELETE,
        "/me",
        &self_deleted.access,
        Some(json!({"current_password": PASSWORD})),
    )
    .await?;
    let reused = c.login("reused@conformance.test").await?;
    let successor = Client::tokens(c.refresh(&reused.refresh).await?).await?;
    // The rotated-out refresh token again, with no grace window: reuse ends the session.
    let _ = c.refresh(&reused.refresh).await?;
    for ended in [&disabled.access, &revoked.access, &successor.access] {
        c.await_refused(ended).await?;
    }

    let service_key = cli(
        bin,
        database_url,
        &[
            "service-keys",
            "create",
            "--name",
            "conformance",
            "--scope",
            "revocations:read",
        ],
    )?;

    c.await_service_key(&service_key).await?;

    // C's private key, as the server keeps it.
    let store = authd::store::Store::connect(&authd::config::DbConfig {
        database_url: database_url.to_owned(),
        ..authd::config::DbConfig::default()
    })
    .await?;
    let stored = store.live_keys(now(), i64::MAX / 2).await?;
    let key_c = stored
        .iter()
        .find(|k| k.kid == kid_c)
        .ok_or("key C is not in the database")?;
    let signer =
        Ed25519KeyPair::from_pkcs8(&key_c.private_pkcs8).map_err(|_| "key C does not parse")?;
    let public_c = signer.public_key().as_ref().to_vec();
    drop(store);
    let stranger = Ed25519KeyPair::generate().map_err(|_| "no key")?;

    let mut cases = Vec::new();
    let mut real = |name: &str, description: &str, s: &Session, verdict: Verdict| {
        cases.push(Case {
            name: name.to_owned(),
            description: description.to_owned(),
            token: s.access.clone(),
            verdict,
            sub: (verdict == Verdict::Accept).then(|| s.claim("sub")),
            sid: (verdict == Verdict::Accept).then(|| s.claim("sid")),
        });
    };
    use Verdict::*;
    real(
        "valid",
        "an access token from a login, signed by the current key",
        &valid,
        Accept,
    );
    real(
        "valid_after_refresh",
        "the access token a refresh answered",
        &refreshed,
        Accept,
    );
    real(
        "previous_key_in_overlap",
        "signed by a key rotated out but still in its overlap",
        &on_b,
        Accept,
    );
    real(
        "revoked_key",
        "signed by a key that `authd keys revoke` removed from the JWKS",
        &on_a,
        UnknownKey,
    );
    real("ended_by_logout", "its session logged out", &out, Revoked);
    real(
        "ended_by_logout_previous_key",
        "signed by the rotated-out key, its session logged out",
        &on_b_out,
        Revoked,
    );
    real(
        "ended_by_user_disable",
        "its user disabled with `authd users disable`",
        &disabled,
        Revoked,
    );
    real(
        "ended_by_sessions_revoke",
        "its sessions ended with `authd sessions revoke`",
        &revoked,
        Revoked,
    );
    real(
        "ended_by_password_change",
        "another session of the user changed the password",
        &elsewhere,
        Revoked,
    );
    real(
        "ended_by_reuse",
        "a rotated-out refresh token of its session was presented again",
        &reused,
        Revoked,
    );
    real(
        "ended_by_reuse_successor",
        "the successor's access token of a session ended by reuse",
        &successor,
        Revoked,
    );
    real(
        "with_app_metadata",
        "carries the `app_metadata` claim an admin set (refreshed after the change)",
        &with_metadata,
        Accept,
    );
    real(
        "ended_by_admin_delete",
        "its user deleted through the admin API",
        &deleted,
        Revoked,
    );
    real(
        "ended_by_self_delete",
        "its user deleted their own account (`DELETE /me`)",
        &self_deleted,
        Revoked,
    );
    real(
        "password_changer_kept",
        "the session that changed the password stays",
        &kept,
        Accept,
    );

    let base_header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid_c});
    let mut base = Map::new();
    for (k, v) in &valid.claims {
        base.insert(k.clone(), v.clone());
    }
    let t = now();
    let with = |changes: &[(&str, Value)]| {
        let mut p = base.clone();
        p.insert(
            "jti".into(),
            json!(format!("conformance-{}", uuid::Uuid::new_v4())),
        );
        for (k, v) in changes {
            if v.is_null() {
                p.remove(*k);
            } else {
                p.insert((*k).into(), v.clone());
            }
        }
        Value::Object(p)
    };
    let header_with = |changes: &[(&str, Value)]| {
        let mut h = base_header.as_object().cloned().unwrap_or_default();
        for (k, v) in changes {
            if v.is_null() {
                h.remove(*k);
            } else {
                h.insert((*k).into(), v.clone());
            }
        }
        Value::Object(h)
    };
    let mut forged = |name: &str, description: &str, token: String, verdict: Verdict| {
        cases.push(Case {
            name: name.to_owned(),
            description: description.to_owned(),
            sub: (verdict == Accept).then(|| valid.claim("sub")),
            sid: (verdict == Accept).then(|| valid.claim("sid")),
            token,
            verdict,
        });
    };
    let exp = |e: i64| [("iat", json!(e - ACCESS_TTL_SECS)), ("exp", json!(e))];

    forged(
        "forged_valid",
        "made with the current key and the claims of a valid token (proves the forgeries below differ in one respect only)",
        compact(&base_header, &with(&[]), Sig::Ed(&signer)),
        Accept,
    );
    forged(
        "alg_none",
        "`alg: none` and no signature (an empty third part is not a JWS authd writes)",
        compact(
            &header_with(&[("alg", json!("none"))]),
            &with(&[]),
            Sig::None,
        ),
        Malformed,
    );
    forged(
        "alg_none_signed",
        "`alg: none` with the real signature left on",
        {
            let h = header_with(&[("alg", json!("none"))]);
            let p = with(&[]);
            let input = format!(
                "{}.{}",
                b64(h.to_string().as_bytes()),
                b64(p.to_string().as_bytes())
            );
            format!("{input}.{}", b64(signer.sign(input.as_bytes()).as_ref()))
        },
        ForbiddenHeader,
    );
    forged(
        "hs256_with_public_key",
        "HS256 keyed with the raw public key (algorithm confusion)",
        compact(
            &header_with(&[("alg", json!("HS256"))]),
            &with(&[]),
            Sig::Hs256(&public_c),
        ),
        ForbiddenHeader,
    );
    forged(
        "hs256_with_public_jwk_x",
        "HS256 keyed with the JWK's `x` string",
        compact(
            &header_with(&[("alg", json!("HS256"))]),
            &with(&[]),
            Sig::Hs256(b64(&public_c).as_bytes()),
        ),
        ForbiddenHeader,
    );
    forged(
        "rs256_header",
        "`alg: RS256` over an Ed25519 signature",
        compact(
            &header_with(&[("alg", json!("RS256"))]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        ForbiddenHeader,
    );
    forged(
        "typ_jwt",
        "`typ: JWT` (an ID token or another JWT, not an access token)",
        compact(
            &header_with(&[("typ", json!("JWT"))]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        ForbiddenHeader,
    );
    forged(
        "typ_missing",
        "no `typ`",
        compact(
            &header_with(&[("typ", Value::Null)]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        ForbiddenHeader,
    );
    forged(
        "typ_upper_case",
        "`typ: AT+JWT` (authd writes lower case, and compares exactly)",
        compact(
            &header_with(&[("typ", json!("AT+JWT"))]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        ForbiddenHeader,
    );
    forged(
        "jku_header",
        "a `jku` pointing at a key set of the attacker's",
        compact(
            &header_with(&[("jku", json!("http://attacker.test/jwks.json"))]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        ForbiddenHeader,
    );
    forged(
        "jwk_header",
        "an embedded `jwk` of the attacker's, signed with it",
        compact(
            &header_with(&[
                (
                    "jwk",
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(stranger.public_key().as_ref())}),
                ),
                ("kid", Value::Null),
            ]),
            &with(&[]),
            Sig::Ed(&stranger),
        ),
        ForbiddenHeader,
    );
    forged(
        "x5u_header",
        "an `x5u` certificate URL",
        compact(
            &header_with(&[("x5u", json!("http://attacker.test/cert.pem"))]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        ForbiddenHeader,
    );
    forged(
        "crit_header",
        "a `crit` extension",
        compact(
            &header_with(&[("crit", json!(["exp"]))]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        ForbiddenHeader,
    );
    forged(
        "b64_false",
        "`b64: false` (an unencoded payload)",
        compact(
            &header_with(&[("b64", json!(false))]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        ForbiddenHeader,
    );
    forged(
        "kid_missing",
        "no `kid`",
        compact(
            &header_with(&[("kid", Value::Null)]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        UnknownKey,
    );
    forged(
        "kid_unknown",
        "a `kid` that is in no JWKS, signed with a stranger's key",
        compact(
            &header_with(&[("kid", json!("conformance-unknown-kid"))]),
            &with(&[]),
            Sig::Ed(&stranger),
        ),
        UnknownKey,
    );
    forged(
        "kid_not_a_string",
        "a numeric `kid`",
        compact(
            &header_with(&[("kid", json!(7))]),
            &with(&[]),
            Sig::Ed(&signer),
        ),
        UnknownKey,
    );
    forged(
        "foreign_key_known_kid",
        "the current `kid`, signed with a stranger's key",
        compact(&base_header, &with(&[]), Sig::Ed(&stranger)),
        Invalid,
    );
    forged(
        "tampered_payload",
        "a valid token whose payload names another user",
        {
            let mut parts: Vec<String> = valid.access.split('.').map(str::to_owned).collect();
            let mut p = valid.claims.clone();
            p.insert("sub".into(), json!(on_b.claim("sub")));
            parts[1] = b64(Value::Object(p).to_string().as_bytes());
            parts.join(".")
        },
        Invalid,
    );
    forged(
        "signature_truncated",
        "a valid token with its signature cut short",
        {
            let (head, sig) = valid.access.rsplit_once('.').unwrap_or_default();
            format!("{head}.{}", &sig[..sig.len() - 8])
        },
        Invalid,
    );
    forged(
        "aud_wrong",
        "`aud` of another service",
        compact(
            &base_header,
            &with(&[("aud", json!("another-service"))]),
            Sig::Ed(&signer),
        ),
        Invalid,
    );
    forged(
        "iss_wrong",
        "`iss` of another server",
        compact(
            &base_header,
            &with(&[("iss", json!("http://attacker.test"))]),
            Sig::Ed(&signer),
        ),
        Invalid,
    );
    forged(
        "iss_trailing_slash",
        "`iss` with a trailing slash (compared exactly)",
        compact(
            &base_header,
            &with(&[("iss", json!(format!("{}/", valid.claim("iss"))))]),
            Sig::Ed(&signer),
        ),
        Invalid,
    );
    forged(
        "expired",
        "`exp` an hour ago",
        compact(&base_header, &with(&exp(t - 3600)), Sig::Ed(&signer)),
        Expired,
    );
    forged(
        "expired_within_leeway",
        "`exp` 10 s ago, inside the 60 s leeway",
        compact(&base_header, &with(&exp(t - 10)), Sig::Ed(&signer)),
        Accept,
    );
    forged(
        "issued_in_the_future",
        "`iat` ten minutes ahead, past the leeway",
        compact(
            &base_header,
            &with(&[
                ("iat", json!(t + 600)),
                ("exp", json!(t + 600 + ACCESS_TTL_SECS)),
            ]),
            Sig::Ed(&signer),
        ),
        NotYetValid,
    );
    forged(
        "issued_within_leeway",
        "`iat` 10 s ahead, inside the leeway",
        compact(
            &base_header,
            &with(&[
                ("iat", json!(t + 10)),
                ("exp", json!(t + 10 + ACCESS_TTL_SECS)),
            ]),
            Sig::Ed(&signer),
        ),
        Accept,
    );
    // authd never writes `nbf`; a token that carries one is refused until then (RFC 7519).
    for (name, description, nbf, verdict) in [
        (
            "in_the_future",
            "ten minutes ahead, past the leeway",
            json!(t + 600),
            NotYetValid,
        ),
        (
            "within_leeway",
            "10 s ahead, inside the leeway",
            json!(t + 10),
            Accept,
        ),
        ("null", "null", Value::Null, Invalid),
        ("a_string", "a string", json!(t.to_string()), Invalid),
    ] {
        // Set directly: `with` takes null for "leave the claim out".
        let mut payload = with(&[]);
        payload["nbf"] = nbf;
        forged(
            &format!("not_before_{name}"),
            &format!("`nbf` {description}"),
            compact(&base_header, &payload, Sig::Ed(&signer)),
            verdict,
        );
    }
    // Not `email`: the kits hand it over when present and need it for nothing, and authd has
    // always written it.
    for claim in ["sub", "sid", "exp", "iat", "iss", "aud", "jti"] {
        forged(
            &format!("missing_{claim}"),
            &format!("no `{claim}` claim"),
            compact(
                &base_header,
                &with(&[(claim, Value::Null)]),
                Sig::Ed(&signer),
            ),
            Invalid,
        );
    }
    forged(
        "exp_a_string",
        "`exp` as a string",
        compact(
            &base_header,
            &with(&[("exp", json!((t + 600).to_string()))]),
            Sig::Ed(&signer),
        ),
        Invalid,
    );
    forged(
        "sub_a_number",
        "`sub` as a number",
        compact(&base_header, &with(&[("sub", json!(42))]), Sig::Ed(&signer)),
        Invalid,
    );
    forged(
        "ended_session_forged",
        "a well-signed token for a logged-out session's `sid`",
        compact(
            &base_header,
            &with(&[
                ("sid", json!(out.claim("sid"))),
                ("sub", json!(out.claim("sub"))),
            ]),
            Sig::Ed(&signer),
        ),
        Revoked,
    );
    for (name, description, token) in [
        ("empty", "the empty string", String::new()),
        ("not_a_jwt", "a word", "hello".to_owned()),
        ("two_parts", "two dot-separated parts", "e30.e30".to_owned()),
        (
            "five_parts",
            "five parts (a JWE)",
            "e30.e30.e30.e30.e30".to_owned(),
        ),
        (
            "header_not_base64",
            "a header that is not base64url",
            format!("!!!.{}", valid.access.split_once('.').map_or("", |p| p.1)),
        ),
        (
            "header_not_json",
            "a header that decodes to no JSON",
            format!(
                "{}.{}",
                b64(b"not json"),
                valid.access.split_once('.').map_or("", |p| p.1)
            ),
        ),
        (
            "too_long",
            "a well-signed token longer than 4096 bytes (refused before parsing)",
            compact(
                &base_header,
                &with(&[(
                    "email",
                    json!(format!("{}@conformance.test", "a".repeat(4000))),
                )]),
                Sig::Ed(&signer),
            ),
        ),
    ] {
        forged(name, description, token, Malformed);
    }

    // authd's own verdict on every case.
    let mut disagreements = Vec::new();
    for case in &cases {
        let accepted = c.me(&case.token).await?;
        if accepted.is_some() != (case.verdict == Accept)
            || accepted.is_some() && accepted != case.sub
        {
            disagreements.push(format!(
                "{}: authd {}",
                case.name,
                if accepted.is_some() {
                    "accepts it"
                } else {
                    "refuses it"
                }
            ));
        }
    }
    if !disagreements.is_empty() {
        return Err(format!(
            "authd disagrees with the fixtures: {}",
            disagreements.join("; ")
        )
        .into());
    }

    Ok(Fixtures {
        version: 1,
        authd_url: c.base.clone(),
        service_key,
        issuer: valid.claim("iss"),
        audience: valid.claim("aud"),
        leeway_secs: LEEWAY_SECS,
        valid_until: t - 10 + LEEWAY_SECS,
        cases,
    })
}
