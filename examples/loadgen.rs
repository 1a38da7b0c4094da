//! Load generator for authd: drives a running server with C concurrent clients, each
//! on its own keep-alive connection, for a fixed time, and prints ONE JSON line per run.
//!
//! ```sh
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080 --mode verify \
//!     --concurrency 64 --duration 15 --pid "$(pgrep -n authd)"
//! ```
//!
//! Modes (see `--help`):
//! - `login`: pre-created users (registered by the tool first, `--users` of them), each request
//!   a `POST /auth/login` with body delivery.
//! - `refresh-chain`: each client logs in once, then rotates its own chain, always presenting the
//!   refresh token the previous answer gave it. Any failure counts as an error (the client then
//!   logs in again to start a new chain).
//! - `verify`: `GET /me` with a valid access token (one login per client).
//! - `logout`: per iteration, a login then a `POST /auth/logout` with the access token; the
//!   figures are those of the logout requests (the loop's rate is bounded by the login).
//! - `baseline`: `GET /.well-known/jwks.json`, the cost of HTTP alone.
//! - `seed`: inserts `--sessions` sessions (one user, one refresh-token row each) straight into
//!   `--database-url`, in batched multi-row INSERTs inside transactions.
//! - `startup`: execs `--exec` (with this process's environment) and reports the time until
//!   `/healthz` (and `/readyz`) answer 200, then kills it.
//!
//! Only the measured window counts: setup (registrations, first logins) and the `--warmup`
//! seconds are excluded. With `--pid`, the server's resident memory (VmRSS) is read at the start
//! and at the end of the measured window.
// A load run whose set-up fails has nothing to measure: it stops there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::StreamExt;
use reqwest::{Client, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseBackend, TransactionTrait};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Login,
    RefreshChain,
    Verify,
    Logout,
    Baseline,
    Seed,
    Startup,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Login => "login",
            Mode::RefreshChain => "refresh-chain",
            Mode::Verify => "verify",
            Mode::Logout => "logout",
            Mode::Baseline => "baseline",
            Mode::Seed => "seed",
            Mode::Startup => "startup",
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Load generator and seeder for authd")]
struct Args {
    /// Base URL of the running server (only 127.0.0.1 / localhost are accepted).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// What to measure.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measured window starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// The server's process id: its VmRSS is read at the start and at the end of the window.
    #[arg(long)]
    pid: Option<u32>,
    /// How many users to register (and log in as, round-robin); default: min(concurrency, 64).
    #[arg(long)]
    users: Option<usize>,
    /// Email prefix of the users the tool registers (`PREFIX-N@loadgen.example.com`).
    #[arg(long, default_value = "loadgen")]
    user_prefix: String,
    /// Password of the users the tool registers.
    #[arg(long, default_value = "loadgen password 0123")]
    password: String,
    /// Free-form label copied into the JSON line (e.g. the database).
    #[arg(long)]
    label: Option<String>,
    /// refresh-chain: start a new chain (a new login, not counted) once a chain is this many
    /// seconds old, so that a soak outlives `AUTHD_SESSION_MAX_SECS`; 0 never does.
    #[arg(long, default_value_t = 0.0)]
    chain_max_secs: f64,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// seed: database URL (sqlite://PATH?mode=rwc or postgres://...); migrated first.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// seed: number of sessions to insert.
    #[arg(long, default_value_t = 1_000_000)]
    sessions: u64,
    /// seed: rows per multi-row INSERT.
    #[arg(long, default_value_t = 2_000)]
    batch: u64,
    /// seed: INSERT statements (of each table) per transaction.
    #[arg(long, default_value_t = 10)]
    batches_per_txn: u64,
    /// startup: the server binary to exec (it inherits this process's environment).
    #[arg(long)]
    exec: Option<String>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let res = match args.mode {
        Mode::Seed => seed(&args).await,
        Mode::Startup => startup(&args).await,
        _ => load(&args).await,
    };
    match res {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP load

/// What one client measured in the window.
#[derive(Default)]
struct WorkerStats {
    /// Latencies of the measured requests, in microseconds (errors included).
    lat_us: Vec<u32>,
    errors: u64,
    error_kinds: BTreeMap<String, u64>,
    /// Requests made in the window that are not the measured kind (the logins of `logout`).
    aux: u64,
    /// When the last measured request of this client completed.
    last_done: Option<Instant>,
}

impl WorkerStats {
    fn error(&mut self, kind: String) {
        self.errors += 1;
        *self.error_kinds.entry(kind).or_default() += 1;
    }
}

#[derive(Clone)]
struct Ctx {
    base: Arc<str>,
    password: Arc<str>,
    emails: Arc<Vec<String>>,
    timeout: Duration,
    chain_max: Option<Duration>,
}

impl Ctx {
    fn client(&self) -> Result<Client, BoxError> {
        Ok(Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .timeout(self.timeout)
            .build()?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn login(&self, client: &Client, i: usize) -> Result<Tokens, String> {
        let email = &self.emails[i % self.emails.len()];
        let resp = client
            .post(self.url("/auth/login"))
            .json(&json!({"email": email, "password": &*self.password, "delivery": "body"}))
            .send()
            .await
            .map_err(|e| format!("login transport: {e}"))?;
        tokens_of(resp, "login").await
    }
}

#[derive(Debug)]
struct Tokens {
    access: String,
    refresh: String,
}

async fn tokens_of(resp: reqwest::Response, what: &str) -> Result<Tokens, String> {
    let status = resp.status();
    if status != StatusCode::OK {
        let _ = resp.bytes().await;
        return Err(format!("{what} {}", status.as_u16()));
    }
    let v: Value = resp.json().await.map_err(|e| format!("{what} body: {e}"))?;
    let get = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match (get("access_token"), get("refresh_token")) {
        (Some(access), Some(refresh)) => Ok(Tokens { access, refresh }),
        _ => Err(format!("{what} body without tokens")),
    }
}

fn check_local(url: &str) -> Result<(), BoxError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be http://127.0.0.1:PORT or http://localhost:PORT")?;
    let host = rest.split(['/', ':']).next().unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost") && !rest.starts_with("[::1]") {
        return Err("this tool only targets 127.0.0.1 / localhost".into());
    }
    Ok(())
}

fn rss_kb(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Clock ticks per second of `/proc` CPU times (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // The fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The machine's (busy, total) clock ticks, over every CPU.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// How long set-up (registrations, first logins) waits out a server that answers 503.
const SETUP_PATIENCE: Duration = Duration::from_secs(60);

/// Registers `n` users (201, or 409 when a previous run created them).
async fn ensure_users(ctx: &Ctx, n: usize, prefix: &str) -> Result<Vec<String>, BoxError> {
    let emails: Vec<String> = (0..n)
        .map(|i| format!("{prefix}-{i}@loadgen.example.com"))
        .collect();
    let client = Client::builder().timeout(ctx.timeout).build()?;
    let results: Vec<Result<(), String>> = futures::stream::iter(emails.clone())
        .map(|email| {
            let client = client.clone();
            let url = ctx.url("/auth/register");
            let password = ctx.password.clone();
            async move {
                let started = Instant::now();
                loop {
                    let resp = client
                        .post(&url)
                        .json(&json!({"email": email, "password": &*password}))
                        .send()
                        .await
                        .map_err(|e| format!("register: {e}"))?;
                    match resp.status().as_u16() {
                        201 | 409 => return Ok(()),
                        // Busy hashing (a login storm is running): wait as a client would.
                        503 if started.elapsed() < SETUP_PATIENCE => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        s => return Err(format!("register {email}: HTTP {s}")),
                    }
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(emails)
}

async fn load(args: &Args) -> Result<String, BoxError> {
    check_local(&args.url)?;
    let base: Arc<str> = args.url.trim_end_matches('/').into();
    let c = args.concurrency.max(1);
    let setup_started = Instant::now();
    let needs_users = matches!(
        args.mode,
        Mode::Login | Mode::RefreshChain | Mode::Verify | Mode::Logout
    );
    let mut ctx = Ctx {
        base,
        password: args.password.as_str().into(),
        emails: Arc::new(Vec::new()),
        timeout: Duration::from_secs_f64(args.timeout),
        chain_max: (args.chain_max_secs > 0.0)
            .then(|| Duration::from_secs_f64(args.chain_max_secs)),
    };
    if needs_users {
        let n = args.users.unwrap_or(c.min(64)).max(1);
        ctx.emails = Arc::new(ensure_users(&ctx, n, &args.user_prefix).await?);
    }

    // Every client connects (and logs in where its mode needs it) before the clock starts.
    let ready = Arc::new(tokio::sync::Barrier::new(c + 1));
    let start_at = Arc::new(tokio::sync::OnceCell::<(Instant, Instant)>::new());
    let mut handles = Vec::with_capacity(c);
    for i in 0..c {
        let ctx = ctx.clone();
        let ready = ready.clone();
        let start_at = start_at.clone();
        let mode = args.mode;
        handles.push(tokio::spawn(async move {
            worker(i, mode, ctx, ready, start_at).await
        }));
    }
    ready.wait().await;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    // Workers poll the cell after the barrier; set it before they can look.
    let _ = start_at.set((measure_from, until));
    if args.warmup > 0.0 {
        tokio::time::sleep_until(measure_from.into()).await;
    }
    let rss_start = rss_kb(args.pid);
    let cpu_start = (
        cpu_ticks(args.pid),
        cpu_ticks(Some(std::process::id())),
        machine_ticks(),
    );
    let cpu_t0 = Instant::now();
    let mut stats = Vec::with_capacity(c);
    for h in handles {
        stats.push(h.await??);
    }
    let rss_end = rss_kb(args.pid);
    let cpu_end = (
        cpu_ticks(args.pid),
        cpu_ticks(Some(std::process::id())),
        machine_ticks(),
    );
    let cpu_secs = cpu_t0.elapsed().as_secs_f64();

    let mut lat: Vec<u32> = Vec::new();
    let mut errors = 0;
    let mut aux = 0;
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut last = measure_from;
    for s in stats {
        lat.extend_from_slice(&s.lat_us);
        errors += s.errors;
        aux += s.aux;
        for (k, v) in s.error_kinds {
            *kinds.entry(k).or_default() += v;
        }
        if let Some(t) = s.last_done {
            last = last.max(t);
        }
    }
    lat.sort_unstable();
    let requests = lat.len() as u64;
    let window = last.max(until).duration_since(measure_from).as_secs_f64();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let idx = ((p / 100.0) * lat.len() as f64).ceil() as usize;
        f64::from(lat[idx.clamp(1, lat.len()) - 1]) / 1000.0
    };
    let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
    let mut out = json!({
        "mode": args.mode.name(),
        "concurrency": c,
        "duration_s": round(window, 3),
        "requests": requests,
        "errors": errors,
        "rps": round(requests as f64 / window, 1),
        "p50_ms": pct(50.0),
        "p90_ms": pct(90.0),
        "p99_ms": pct(99.0),
        "max_ms": pct(100.0),
        "setup_s": round(setup_s, 2),
    });
    let o = out.as_object_mut().ok_or("json")?;
    if let Some(label) = &args.label {
        o.insert("label".into(), json!(label));
    }
    if args.mode == Mode::Logout || aux > 0 {
        o.insert("logins".into(), json!(aux));
    }
    // Who used the CPU in the window: the server, this tool, the whole machine.
    let cores = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(round((b - a) as f64 / USER_HZ / cpu_secs, 2)),
        _ => None,
    };
    if let Some(v) = cores(cpu_start.0, cpu_end.0) {
        o.insert("server_cpu_cores".into(), json!(v));
    }
    if let Some(v) = cores(cpu_start.1, cpu_end.1) {
        o.insert("loadgen_cpu_cores".into(), json!(v));
    }
    if let (Some((busy0, all0)), Some((busy1, all1))) = (cpu_start.2, cpu_end.2)
        && all1 > all0
    {
        let pct = 100.0 * (busy1 - busy0) as f64 / (all1 - all0) as f64;
        o.insert("machine_busy_pct".into(), json!(round(pct, 1)));
    }
    if !kinds.is_empty() {
        o.insert("error_kinds".into(), json!(kinds));
    }
    if let Some(pid) = args.pid {
        o.insert("pid".into(), json!(pid));
        o.insert(
            "rss_start_mb".into(),
            json!(rss_start.map(|k| round(k as f64 / 1024.0, 1))),
        );
        o.insert(
            "rss_end_mb".into(),
            json!(rss_end.map(|k| round(k as f64 / 1024.0, 1))),
        );
    }
    Ok(out.to_string())
}

/// One client: its own connection, its own chain.
async fn worker(
    i: usize,
    mode: Mode,
    ctx: Ctx,
    ready: Arc<tokio::sync::Barrier>,
    start_at: Arc<tokio::sync::OnceCell<(Instant, Instant)>>,
) -> Result<WorkerStats, BoxError> {
    let client = ctx.client()?;
    let mut stats = WorkerStats::default();
    // Setup: the first login (and with it the connection), retried a few times.
    let mut tokens = None;
    let mut chain_started = Instant::now();
    if matches!(mode, Mode::RefreshChain | Mode::Verify) {
        // A server busy hashing (a login storm) answers 503: wait as a client would, for up
        // to SETUP_PATIENCE; any other failure is retried a few times.
        let mut last_err = String::new();
        let (started, mut failures) = (Instant::now(), 0);
        while failures < 5 && started.elapsed() < SETUP_PATIENCE {
            match ctx.login(&client, i).await {
                Ok(t) => {
                    tokens = Some(t);
                    break;
                }
                Err(e) => {
                    if !e.ends_with(" 503") {
                        failures += 1;
                    }
                    last_err = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if tokens.is_none() {
            ready.wait().await;
            return Err(format!("client {i}: setup login failed: {last_err}").into());
        }
    } else {
        // Open the keep-alive connection before the clock starts.
        let _ = client.get(ctx.url("/healthz")).send().await;
    }
    ready.wait().await;
    let (measure_from, until) = loop {
        if let Some(t) = start_at.get() {
            break *t;
        }
        tokio::task::yield_now().await;
    };
    let jwks = ctx.url("/.well-known/jwks.json");
    let me = ctx.url("/me");
    let refresh = ctx.url("/auth/refresh");
    let logout = ctx.url("/auth/logout");

    loop {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let measured = started >= measure_from;
        let outcome: Result<(), String> = match mode {
            Mode::Baseline => get_ok(&client, &jwks).await,
            Mode::Verify => {
                let at = &tokens.as_ref().ok_or("no tokens")?.access;
                let r = client
                    .get(&me)
                    .bearer_auth(at)
                    .send()
                    .await
                    .map_err(|e| format!("transport: {e}"));
                match r {
                    Ok(resp) if resp.status() == StatusCode::OK => {
                        resp.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                    }
                    Ok(resp) => Err(format!("me {}", resp.status().as_u16())),
                    Err(e) => Err(e),
                }
            }
            Mode::Login => ctx.login(&client, i).await.map(|_| ()),
            Mode::RefreshChain => {
                if let Some(max) = ctx.chain_max
                    && chain_started.elapsed() >= max
                {
                    // A voluntary new chain (the old session is abandoned, left to expire).
                    if let Ok(t) = ctx.login(&client, i).await {
                        tokens = Some(t);
                        chain_started = Instant::now();
                        if measured {
                            stats.aux += 1;
                        }
                        continue;
                    }
                }
                let rt = tokens.as_ref().ok_or("no tokens")?.refresh.clone();
                let r = client
                    .post(&refresh)
                    .json(&json!({"refresh_token": rt}))
                    .send()
                    .await
                    .map_err(|e| format!("transport: {e}"));
                match r {
                    Ok(resp) => match tokens_of(resp, "refresh").await {
                        Ok(t) => {
                            tokens = Some(t);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
            Mode::Logout => {
                // The login is not the measured request: time the logout alone.
                let t = match ctx.login(&client, i).await {
                    Ok(t) => t,
                    Err(e) => {
                        if measured {
                            stats.error(e);
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if measured {
                    stats.aux += 1;
                }
                let started = Instant::now();
                if started >= until {
                    break;
                }
                let measured = started >= measure_from;
                let r = client
                    .post(&logout)
                    .bearer_auth(&t.access)
                    .send()
                    .await
                    .map_err(|e| format!("transport: {e}"));
                let outcome = match r {
                    Ok(resp) if resp.status() == StatusCode::NO_CONTENT => Ok(()),
                    Ok(resp) => Err(format!("logout {}", resp.status().as_u16())),
                    Err(e) => Err(e),
                };
                let done = Instant::now();
                if measured {
                    record(&mut stats, started, done, outcome);
                }
                continue;
            }
            Mode::Seed | Mode::Startup => unreachable!(),
        };
        let done = Instant::now();
        let failed = outcome.is_err();
        // A login refused because the hashing queue is full (503, `Retry-After: 1`): wait as a
        // client would, instead of spinning on refusals (counted as errors all the same).
        let shed = mode == Mode::Login && matches!(&outcome, Err(e) if e.ends_with(" 503"));
        if measured {
            record(&mut stats, started, done, outcome);
        }
        if shed {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if failed && mode == Mode::RefreshChain {
            // The chain is broken: start a new one (the error is already counted).
            loop {
                if Instant::now() >= until {
                    break;
                }
                match ctx.login(&client, i).await {
                    Ok(t) => {
                        tokens = Some(t);
                        chain_started = Instant::now();
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }
    Ok(stats)
}

fn record(stats: &mut WorkerStats, started: Instant, done: Instant, outcome: Result<(), String>) {
    let us = done
        .duration_since(started)
        .as_micros()
        .min(u32::MAX as u128) as u32;
    stats.lat_us.push(us);
    stats.last_done = Some(done);
    if let Err(kind) = outcome {
        stats.error(kind);
    }
}

async fn get_ok(client: &Client, url: &str) -> Result<(), String> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = resp.status();
    let _ = resp.bytes().await;
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(format!("get {}", status.as_u16()))
    }
}

// ---------------------------------------------------------------------------------------------
// Seed

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

fn blob(backend: DatabaseBackend, bytes: &[u8]) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("'\\x{}'::bytea", hex(bytes)),
        _ => format!("X'{}'", hex(bytes)),
    }
}

async fn seed(args: &Args) -> Result<String, BoxError> {
    let url = args
        .database_url
        .clone()
        .ok_or("seed needs --database-url (or DATABASE_URL)")?;
    let started = Instant::now();
    let store = authd::store::Store::connect(&authd::config::DbConfig {
        database_url: url,
        ..Default::default()
    })
    .await?;
    store.migrate().await?;
    let backend = store.backend();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // One user owns every seeded session; its password is real (argon2id) but random.
    let hasher = authd::passwords::Hasher::new(1, 1024).await?;
    let user_id = uuid::Uuid::new_v4().to_string();
    let mut pw = [0u8; 16];
    getrandom::fill(&mut pw).map_err(|e| e.to_string())?;
    let password_hash = hasher.hash(hex(&pw)).await?;
    store
        .create_user(authd::store::NewUser {
            id: user_id.clone(),
            email: format!("seed-{user_id}@loadgen.example.com"),
            password_hash,
            now,
            email_verified: false,
            created_by: None,
        })
        .await?;

    let db = store.connection();
    let total = args.sessions;
    let batch = args.batch.max(1);
    let per_txn = args.batches_per_txn.max(1);
    let idle = now + 14 * 86_400;
    let absolute = now + 30 * 86_400;
    let progress = std::io::stderr().is_terminal();
    let mut done = 0u64;
    let mut rnd = vec![0u8; (batch as usize) * 32];
    while done < total {
        let txn = db.begin().await?;
        for _ in 0..per_txn {
            if done >= total {
                break;
            }
            let n = batch.min(total - done) as usize;
            getrandom::fill(&mut rnd[..n * 32]).map_err(|e| e.to_string())?;
            let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
            let mut s = String::with_capacity(n * 160);
            s.push_str(
                "INSERT INTO sessions (id, user_id, created_at, last_refreshed_at, \
                 idle_expires_at, absolute_expires_at, user_agent, ip) VALUES ",
            );
            for (k, id) in ids.iter().enumerate() {
                if k > 0 {
                    s.push(',');
                }
                s.push_str(&format!(
                    "('{id}','{user_id}',{now},{now},{idle},{absolute},'loadgen-seed','127.0.0.1')"
                ));
            }
            txn.execute_unprepared(&s).await?;
            let mut t = String::with_capacity(n * 120);
            t.push_str(
                "INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at, \
                 used_at, successor_hash, successor_sealed) VALUES ",
            );
            for (k, id) in ids.iter().enumerate() {
                if k > 0 {
                    t.push(',');
                }
                let h = blob(backend, &rnd[k * 32..(k + 1) * 32]);
                t.push_str(&format!("({h},'{id}',0,{now},NULL,NULL,NULL)"));
            }
            txn.execute_unprepared(&t).await?;
            done += n as u64;
        }
        txn.commit().await?;
        if progress {
            let el = started.elapsed().as_secs_f64();
            eprint!(
                "\rseeded {done}/{total} sessions ({:.0}/s)   ",
                done as f64 / el.max(1e-9)
            );
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "mode": "seed",
        "backend": format!("{backend:?}").to_lowercase(),
        "sessions": total,
        "refresh_tokens": total,
        "user_id": user_id,
        "seconds": (secs * 100.0).round() / 100.0,
        "rows_per_s": (2.0 * total as f64 / secs).round(),
    })
    .to_string())
}

// ---------------------------------------------------------------------------------------------
// Start-up time

async fn startup(args: &Args) -> Result<String, BoxError> {
    check_local(&args.url)?;
    let exe = args.exec.clone().ok_or("startup needs --exec PATH")?;
    let base = args.url.trim_end_matches('/').to_owned();
    let client = Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    // Nothing may already answer on that address.
    if client.get(format!("{base}/healthz")).send().await.is_ok() {
        return Err(format!("something already answers on {base}").into());
    }
    let t0 = Instant::now();
    let mut child = std::process::Command::new(&exe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    let deadline = t0 + Duration::from_secs(60);
    let mut healthz = None;
    let mut readyz = None;
    while Instant::now() < deadline && (healthz.is_none() || readyz.is_none()) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("server exited early: {status}").into());
        }
        if healthz.is_none()
            && let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == StatusCode::OK
        {
            healthz = Some(t0.elapsed());
        }
        if readyz.is_none()
            && let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == StatusCode::OK
        {
            readyz = Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rss = rss_kb(Some(pid));
    let _ = child.kill();
    let _ = child.wait();
    let ms = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1e5).round() / 100.0);
    Ok(json!({
        "mode": "startup",
        "label": args.label,
        "healthz_ms": ms(healthz),
        "readyz_ms": ms(readyz),
        "rss_mb": rss.map(|k| (k as f64 / 102.4).round() / 10.0),
    })
    .to_string())
}
