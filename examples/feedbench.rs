//! Measures the revocation feed and the Rust verifier kit (`authd-verify`) against a running
//! authd, and prints ONE JSON line per run (see `benches/perf.sh feed`).
//!
//! ```sh
//! feedbench propagation --logout-url http://127.0.0.1:18080 --verify-url http://127.0.0.1:18081 \
//!     --issuer http://127.0.0.1:18080 --key authd_sk_... --logouts 1000 --rate 100
//! ```
//!
//! Subcommands:
//! - `propagation`: logs in `--logouts` (+ a few) sessions first (body delivery, not timed), then
//!   logs them out at `--rate` per second (open loop) on `--logout-url` while a `Verifier` built on
//!   `--verify-url` is polled until it refuses each access token (`VerifyError::Revoked`). Reports
//!   the time from the logout's 204 arriving, and from the request being sent, to the refusal.
//! - `tokens`: logs in `--n` sessions and writes their access tokens to `--out`, one a line.
//! - `serve`: an axum server with `/bare` (`jsonwebtoken::decode` against the JWKS key) and `/kit`
//!   (behind `AuthdLayer`), both answering 200 with the token's `sub`; runs until SIGTERM.
//! - `hold`: keeps `--n` requests `GET /auth/revocations?cursor=..&wait=30` held on authd (each
//!   re-issued as soon as it returns), spread over `--keys`; runs until SIGTERM, then reports.
//! - `insert-revoked`: inserts `--count` rows straight into `revoked_sessions` of
//!   `--database-url` (what `memory` runs as a child, so that no database code touches the
//!   measured process).
//! - `memory`: VmRSS of this process before and after a `Verifier` loads a snapshot of what the
//!   database holds (after `--prefill` rows), then after each of `--steps` more rows arrived
//!   through the feed; with `--authd-pid`, authd's VmRSS at the same points.
// A measuring tool: a run whose set-up fails has nothing to measure, so it stops there.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use authd_verify::{AuthdLayer, Claims, Verifier, VerifyError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(about = "Revocation feed and verifier kit measurements for authd")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Logout-to-refusal time at a verifier.
    Propagation {
        /// The instance that logs in and logs out.
        #[arg(long)]
        logout_url: String,
        /// The instance the verifier polls (the same one, or another on the same database).
        #[arg(long)]
        verify_url: String,
        /// The `iss` of the tokens (AUTHD_ISSUER of the instances).
        #[arg(long)]
        issuer: String,
        /// A service key with `revocations:read`.
        #[arg(long, env = "FEEDBENCH_KEY")]
        key: String,
        #[arg(long, default_value_t = 1000)]
        logouts: usize,
        /// Logouts per second (open loop).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Sessions per user (authd keeps at most 100 live sessions per user).
        #[arg(long, default_value_t = 40)]
        per_user: usize,
        /// How often the poller looks at the verifier, in microseconds.
        #[arg(long, default_value_t = 100)]
        poll_us: u64,
        /// authd's process ids (comma-separated): their CPU use in the logout window.
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
        #[arg(long)]
        label: Option<String>,
    },
    /// Log in N sessions and write their access tokens to a file.
    Tokens {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 40)]
        per_user: usize,
        #[arg(long)]
        out: String,
    },
    /// axum server with /bare and /kit.
    Serve {
        /// authd (JWKS and feed).
        #[arg(long)]
        url: String,
        #[arg(long)]
        issuer: String,
        #[arg(long, env = "FEEDBENCH_KEY")]
        key: String,
        #[arg(long, default_value = "127.0.0.1:18090")]
        listen: String,
    },
    /// The CPU cost of one verify, in one thread: the kit's `verify` against a bare
    /// `jsonwebtoken::decode` (of `sub` only, and of every claim), in interleaved blocks.
    VerifyCost {
        #[arg(long)]
        url: String,
        #[arg(long)]
        issuer: String,
        #[arg(long, env = "FEEDBENCH_KEY")]
        key: String,
        /// Access tokens, one a line.
        #[arg(long)]
        tokens: String,
        /// Seconds per variant.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        #[arg(long)]
        label: Option<String>,
    },
    /// Hold N long-polls on the feed.
    Hold {
        #[arg(long)]
        url: String,
        /// Comma-separated service keys; request i uses key i % len.
        #[arg(long, env = "FEEDBENCH_KEYS")]
        keys: String,
        #[arg(long, default_value_t = 500)]
        n: usize,
        #[arg(long, default_value_t = 30)]
        wait: u64,
        #[arg(long)]
        label: Option<String>,
    },
    /// Insert rows straight into revoked_sessions.
    InsertRevoked {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long)]
        count: u64,
        /// expires_at = now + this.
        #[arg(long, default_value_t = 600)]
        horizon_secs: i64,
    },
    /// RSS of the kit's revoked map.
    Memory {
        #[arg(long)]
        url: String,
        #[arg(long)]
        issuer: String,
        #[arg(long, env = "FEEDBENCH_KEY")]
        key: String,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Rows inserted before the verifier is built (its snapshot).
        #[arg(long, default_value_t = 0)]
        prefill: u64,
        /// Rows inserted after, step by step, each followed through the feed.
        #[arg(long, value_delimiter = ',')]
        steps: Vec<u64>,
        #[arg(long)]
        authd_pid: Option<u32>,
        #[arg(long)]
        label: Option<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let res = match args.cmd {
        Cmd::Propagation {
            logout_url,
            verify_url,
            issuer,
            key,
            logouts,
            rate,
            per_user,
            poll_us,
            pids,
            label,
        } => {
            propagation(Propagation {
                logout_url,
                verify_url,
                issuer,
                key,
                logouts,
                rate,
                per_user,
                poll: Duration::from_micros(poll_us),
                pids,
                label,
            })
            .await
        }
        Cmd::Tokens {
            url,
            n,
            per_user,
            out,
        } => tokens(&url, n, per_user, &out).await,
        Cmd::Serve {
            url,
            issuer,
            key,
            listen,
        } => serve(&url, &issuer, &key, &listen).await,
        Cmd::VerifyCost {
            url,
            issuer,
            key,
            tokens,
            secs,
            label,
        } => verify_cost_cmd(&url, &issuer, &key, &tokens, secs, label).await,
        Cmd::Hold {
            url,
            keys,
            n,
            wait,
            label,
        } => hold(&url, &keys, n, wait, label).await,
        Cmd::InsertRevoked {
            database_url,
            count,
            horizon_secs,
        } => insert_revoked(&database_url, count, horizon_secs).await,
        Cmd::Memory {
            url,
            issuer,
            key,
            database_url,
            prefill,
            steps,
            authd_pid,
            label,
        } => {
            memory(Memory {
                url,
                issuer,
                key,
                database_url,
                prefill,
                steps,
                authd_pid,
                label,
            })
            .await
        }
    };
    match res {
        Ok(Some(line)) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Ok(None) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("feedbench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn check_local(url: &str) -> Result<(), BoxError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("URLs must be http://127.0.0.1:PORT")?;
    let host = rest.split(['/', ':']).next().unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost") {
        return Err("this tool only targets 127.0.0.1 / localhost".into());
    }
    Ok(())
}

fn rss_kb(pid: Option<u32>) -> Option<u64> {
    status_kb(pid, "VmRSS")
}

/// A `kB` field of `/proc/<pid>/status` (this process with `None`).
fn status_kb(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The machine's (busy, total) clock ticks over every CPU, from `/proc/stat`.
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

/// User + system CPU clock ticks of every process named `comm` (e.g. Postgres' backends, which
/// come and go with the pools).
fn comm_ticks(comm: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let want = format!("({comm})");
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.split_whitespace().nth(1) == Some(want.as_str()))
        .filter_map(|stat| {
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// User + system CPU clock ticks (1/100 s) of a process (this one with `None`).
fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn round(x: f64, d: i32) -> f64 {
    (x * 10f64.powi(d)).round() / 10f64.powi(d)
}

/// p50/p90/p99/max/min of values in milliseconds (sorted here).
fn summary(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let idx = ((p / 100.0) * v.len() as f64).ceil() as usize;
        round(v[idx.clamp(1, v.len()) - 1], 3)
    };
    json!({
        "n": v.len(),
        "min_ms": round(v[0], 3),
        "p50_ms": pct(50.0),
        "p90_ms": pct(90.0),
        "p99_ms": pct(99.0),
        "max_ms": round(v[v.len() - 1], 3),
        "mean_ms": round(v.iter().sum::<f64>() / v.len() as f64, 3),
    })
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, BoxError> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()?)
}

const PASSWORD: &str = "feedbench password 0123";

/// Registers `ceil(n / per_user)` users and logs in `n` sessions among them (body delivery,
/// 8 at a time); returns the access tokens.
async fn login_sessions(url: &str, n: usize, per_user: usize) -> Result<Vec<String>, BoxError> {
    check_local(url)?;
    let client = http_client(Duration::from_secs(30))?;
    let per_user = per_user.clamp(1, 100);
    let users = n.div_ceil(per_user);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let emails: Vec<String> = (0..users)
        .map(|i| format!("fb-{}-{i}@feedbench.example.com", &run[..8]))
        .collect();
    let registered: Vec<Result<(), BoxError>> = futures::stream::iter(emails.clone())
        .map(|email| {
            let client = client.clone();
            let url = format!("{url}/auth/register");
            async move {
                let resp = client
                    .post(url)
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await?;
                match resp.status().as_u16() {
                    201 | 409 => Ok(()),
                    s => Err(format!("register {email}: HTTP {s}").into()),
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in registered {
        r?;
    }
    let logins: Vec<Result<String, BoxError>> = futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let url = format!("{url}/auth/login");
            let email = emails[i % users].clone();
            async move {
                let resp = client
                    .post(url)
                    .json(&json!({"email": email, "password": PASSWORD, "delivery": "body"}))
                    .send()
                    .await?;
                if resp.status() != reqwest::StatusCode::OK {
                    return Err(format!("login: HTTP {}", resp.status()).into());
                }
                let v: Value = resp.json().await?;
                v.get("access_token")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| "login answer without access_token".into())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    logins.into_iter().collect()
}

async fn verifier(url: &str, issuer: &str, key: &str) -> Result<Verifier, BoxError> {
    check_local(url)?;
    Ok(Verifier::builder(url)
        .service_key(key)
        .issuer(issuer)
        .build()
        .await?)
}

/// Mean time of one `verify` of a live token, in microseconds.
fn verify_cost(v: &Verifier, token: &str) -> f64 {
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        let _ = std::hint::black_box(v.verify(token));
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

// ---------------------------------------------------------------------------------------------
// Propagation

struct Propagation {
    logout_url: String,
    verify_url: String,
    issuer: String,
    key: String,
    logouts: usize,
    rate: f64,
    per_user: usize,
    poll: Duration,
    pids: Vec<u32>,
    label: Option<String>,
}

/// What a logout task tells the poller.
enum Msg {
    /// The logout of this token is about to be sent: watch it.
    Watch { id: usize, token: String },
}

/// What the poller found for one logout.
struct Refusal {
    id: usize,
    at: Instant,
    /// Found on a change of the verifier's entry count (`true`) or by the periodic sweep.
    by_trigger: bool,
}

/// The poller: watches every token whose logout was sent until `verify` returns `Revoked`.
/// Calling `verify` on every pending token every 100 us would cost one EdDSA verify (~70-80 us
/// here) per token per round, more than a core once tens are pending (a cross-instance logout
/// on SQLite stays pending up to 500 ms). So each round reads `status().revoked_entries` (a
/// read lock and a length) and verifies the pending tokens when it has changed (the kit
/// applies a whole feed page under one write lock, so a changed count means the entries are
/// visible), and every 20 ms anyway. A token that is still accepted 10 s after its logout
/// counts as not refused.
fn poller(
    v: Verifier,
    rx: mpsc::Receiver<Msg>,
    poll: Duration,
) -> (Vec<Refusal>, Vec<usize>, BTreeMap<String, u64>) {
    let mut pending: HashMap<usize, (String, Instant)> = HashMap::new();
    let mut found = Vec::new();
    let mut unrefused = Vec::new();
    let mut other: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_n = v.status().revoked_entries;
    let mut last_sweep = Instant::now();
    let mut open = true;
    loop {
        // New watches: one check each at once (a refusal may precede the 204).
        loop {
            match rx.try_recv() {
                Ok(Msg::Watch { id, token }) => {
                    pending.insert(id, (token, Instant::now()));
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !open && pending.is_empty() {
            break;
        }
        let n = v.status().revoked_entries;
        let changed = n != last_n;
        let sweep = last_sweep.elapsed() >= Duration::from_millis(20);
        if changed || sweep {
            last_n = n;
            if sweep {
                last_sweep = Instant::now();
            }
            pending.retain(|&id, (token, since)| match v.verify(token) {
                Ok(_) => {
                    if since.elapsed() > Duration::from_secs(10) {
                        unrefused.push(id);
                        false
                    } else {
                        true
                    }
                }
                Err(VerifyError::Revoked) => {
                    found.push(Refusal {
                        id,
                        at: Instant::now(),
                        by_trigger: changed,
                    });
                    false
                }
                Err(e) => {
                    *other.entry(format!("{e:?}")).or_default() += 1;
                    false
                }
            });
        }
        std::thread::sleep(poll);
    }
    (found, unrefused, other)
}

/// When one logout was sent and answered.
struct Sent {
    id: usize,
    sent: Instant,
    answered: Instant,
    status: u16,
}

async fn propagation(p: Propagation) -> Result<Option<String>, BoxError> {
    check_local(&p.logout_url)?;
    let setup = Instant::now();
    // A few spare sessions, so that a failed login or two still leaves enough.
    let tokens = login_sessions(&p.logout_url, p.logouts + 10, p.per_user).await?;
    let v = verifier(&p.verify_url, &p.issuer, &p.key).await?;
    let verify_us = verify_cost(&v, &tokens[0]);
    let setup_s = setup.elapsed().as_secs_f64();

    let (tx, rx) = mpsc::channel();
    let pv = v.clone();
    let poll = p.poll;
    let poller = std::thread::spawn(move || poller(pv, rx, poll));

    let client = http_client(Duration::from_secs(10))?;
    let logout_url = format!("{}/auth/logout", p.logout_url);
    let interval = Duration::from_secs_f64(1.0 / p.rate);
    let precheck_failed = Arc::new(AtomicUsize::new(0));
    let cpu0 = (
        machine_ticks(),
        cpu_ticks(None),
        p.pids
            .iter()
            .map(|&p| cpu_ticks(Some(p)))
            .collect::<Vec<_>>(),
        comm_ticks("postgres"),
    );
    let t0 = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(p.logouts);
    for (id, token) in tokens.into_iter().take(p.logouts).enumerate() {
        tokio::time::sleep_until(t0 + interval.mul_f64(id as f64)).await;
        let v = v.clone();
        let tx = tx.clone();
        let client = client.clone();
        let url = logout_url.clone();
        let precheck_failed = precheck_failed.clone();
        tasks.push(tokio::spawn(async move {
            // The verifier accepts the token before its logout.
            if v.verify(&token).is_err() {
                precheck_failed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let sent = Instant::now();
            let _ = tx.send(Msg::Watch {
                id,
                token: token.clone(),
            });
            let status = match client.post(&url).bearer_auth(&token).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            Some(Sent {
                id,
                sent,
                answered: Instant::now(),
                status,
            })
        }));
    }
    drop(tx);
    let mut sent: HashMap<usize, Sent> = HashMap::new();
    for t in tasks {
        if let Some(s) = t.await? {
            sent.insert(s.id, s);
        }
    }
    let schedule_s = t0.elapsed().as_secs_f64();
    let (found, unrefused, other) = tokio::task::spawn_blocking(move || poller.join())
        .await?
        .map_err(|_| "the poller thread failed")?;
    let cpu_s = t0.elapsed().as_secs_f64();
    let cores = |a: Option<u64>, b: Option<u64>| {
        a.zip(b)
            .map(|(a, b)| round(b.saturating_sub(a) as f64 / 100.0 / cpu_s, 2))
    };
    let machine_busy_pct = cpu0
        .0
        .zip(machine_ticks())
        .and_then(|((b0, t0), (b1, t1))| {
            (t1 > t0).then(|| round(100.0 * (b1 - b0) as f64 / (t1 - t0) as f64, 1))
        });
    let feedbench_cores = cores(cpu0.1, cpu_ticks(None));
    let postgres_cores = cores(Some(cpu0.3), Some(comm_ticks("postgres")));
    let authd_cores: Vec<Option<f64>> = p
        .pids
        .iter()
        .zip(&cpu0.2)
        .map(|(&pid, &c0)| cores(c0, cpu_ticks(Some(pid))))
        .collect();

    let mut from_204 = Vec::new();
    let mut from_send = Vec::new();
    let mut logout_ms = Vec::new();
    let mut logout_errors = 0;
    let mut before_204 = 0;
    let mut by_trigger = 0;
    for s in sent.values() {
        if s.status == 204 {
            logout_ms.push(s.answered.duration_since(s.sent).as_secs_f64() * 1e3);
        } else {
            logout_errors += 1;
        }
    }
    for r in &found {
        let Some(s) = sent.get(&r.id) else { continue };
        if s.status != 204 {
            continue;
        }
        let ms = |from: Instant| {
            if r.at >= from {
                r.at.duration_since(from).as_secs_f64() * 1e3
            } else {
                -(from.duration_since(r.at).as_secs_f64() * 1e3)
            }
        };
        let d204 = ms(s.answered);
        if d204 < 0.0 {
            before_204 += 1;
        }
        by_trigger += usize::from(r.by_trigger);
        from_204.push(d204);
        from_send.push(ms(s.sent));
    }
    let refused = from_204.len();
    Ok(Some(
        json!({
            "mode": "propagation",
            "label": p.label,
            "logouts": sent.len(),
            "rate_target": p.rate,
            "rate_achieved": round(sent.len() as f64 / schedule_s, 1),
            "refused": refused,
            "unrefused_after_10s": unrefused.len(),
            "other_verify_errors": other,
            "precheck_failed": precheck_failed.load(Ordering::Relaxed),
            "logout_errors": logout_errors,
            "refused_before_204": before_204,
            "found_by_count_change": by_trigger,
            "found_by_sweep": refused - by_trigger.min(refused),
            "from_204": summary(from_204),
            "from_send": summary(from_send),
            "logout_latency": summary(logout_ms),
            "verify_us": round(verify_us, 1),
            "machine_busy_pct": machine_busy_pct,
            "feedbench_cpu_cores": feedbench_cores,
            "authd_cpu_cores": authd_cores,
            "postgres_cpu_cores": postgres_cores,
            "poll_us": p.poll.as_micros() as u64,
            "setup_s": round(setup_s, 1),
            "verifier_requests": v.status().requests,
        })
        .to_string(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Tokens

async fn tokens(
    url: &str,
    n: usize,
    per_user: usize,
    out: &str,
) -> Result<Option<String>, BoxError> {
    let t = Instant::now();
    let tokens = login_sessions(url, n, per_user).await?;
    std::fs::write(out, tokens.join("\n") + "\n")?;
    eprintln!(
        "feedbench: {} tokens in {:.1} s -> {out}",
        tokens.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Serve: /bare and /kit

struct Bare {
    key: DecodingKey,
    validation: Validation,
}

#[derive(serde::Deserialize)]
struct BareClaims {
    sub: String,
}

async fn bare(State(b): State<Arc<Bare>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match jsonwebtoken::decode::<BareClaims>(token, &b.key, &b.validation) {
        Ok(data) => data.claims.sub.into_response(),
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn kit(Extension(claims): Extension<Claims>) -> String {
    claims.sub
}

/// The first key of authd's JWKS, and a validation like the kit's (EdDSA, iss, aud).
async fn bare_key(url: &str, issuer: &str) -> Result<Bare, BoxError> {
    let jwks: Value = http_client(Duration::from_secs(10))?
        .get(format!("{url}/.well-known/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    let x = jwks
        .pointer("/keys/0/x")
        .and_then(Value::as_str)
        .ok_or("JWKS without keys[0].x")?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&["authd"]);
    Ok(Bare {
        key: DecodingKey::from_ed_components(x)?,
        validation,
    })
}

/// One way of verifying a token, for `verify-cost`: true if it verified.
type Check<'a> = Box<dyn Fn(&str) -> bool + 'a>;

async fn verify_cost_cmd(
    url: &str,
    issuer: &str,
    key: &str,
    tokens: &str,
    secs: f64,
    label: Option<String>,
) -> Result<Option<String>, BoxError> {
    let v = verifier(url, issuer, key).await?;
    let b = bare_key(url, issuer).await?;
    let tokens: Vec<String> = std::fs::read_to_string(tokens)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        return Err("no tokens".into());
    }
    let v2 = v.clone();
    let out = tokio::task::spawn_blocking(move || {
        let variants: [(&str, Check<'_>); 4] = [
            (
                "bare_sub",
                Box::new(|t: &str| {
                    jsonwebtoken::decode::<BareClaims>(t, &b.key, &b.validation).is_ok()
                }),
            ),
            (
                "bare_all_claims",
                Box::new(|t: &str| jsonwebtoken::decode::<Value>(t, &b.key, &b.validation).is_ok()),
            ),
            ("kit_verify", Box::new(|t: &str| v2.verify(t).is_ok())),
            (
                "decode_header_only",
                Box::new(|t: &str| jsonwebtoken::decode_header(t).is_ok()),
            ),
        ];
        // Blocks of 500 verifies, the variants in turn, until each verifying one has had `secs`:
        // a drift of the machine's speed touches every variant alike.
        let mut spent = [Duration::ZERO; 4];
        let mut count = [0u64; 4];
        let mut failed = [0u64; 4];
        let mut i = 0usize;
        // (decode_header alone is ~50 times cheaper: it gets as many blocks, not as much time.)
        while spent[..3].iter().any(|s| s.as_secs_f64() < secs) {
            for (k, (_, f)) in variants.iter().enumerate() {
                let t = Instant::now();
                for j in 0..500 {
                    let token = &tokens[(i + j) % tokens.len()];
                    if !std::hint::black_box(f(token)) {
                        failed[k] += 1;
                    }
                }
                spent[k] += t.elapsed();
                count[k] += 500;
            }
            i += 500;
        }
        let us: Vec<f64> = (0..4)
            .map(|k| spent[k].as_secs_f64() * 1e6 / count[k] as f64)
            .collect();
        let mut o = serde_json::Map::new();
        for (k, (name, _)) in variants.iter().enumerate() {
            o.insert(format!("{name}_us"), json!(round(us[k], 2)));
            o.insert(format!("{name}_failed"), json!(failed[k]));
        }
        o.insert("kit_over_bare_sub".into(), json!(round(us[2] / us[0], 3)));
        o.insert(
            "kit_over_bare_all_claims".into(),
            json!(round(us[2] / us[1], 3)),
        );
        o.insert("distinct_tokens".into(), json!(tokens.len()));
        o
    })
    .await?;
    let mut line = json!({"mode": "verify_cost", "label": label});
    if let Some(m) = line.as_object_mut() {
        m.extend(out);
    }
    Ok(Some(line.to_string()))
}

async fn serve(
    url: &str,
    issuer: &str,
    key: &str,
    listen: &str,
) -> Result<Option<String>, BoxError> {
    let v = verifier(url, issuer, key).await?;
    let b = Arc::new(bare_key(url, issuer).await?);
    let app = Router::new()
        .route("/kit", get(kit))
        .route_layer(AuthdLayer::new(v))
        .merge(Router::new().route("/bare", get(bare)).with_state(b));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("feedbench: serving /bare and /kit on {listen}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            term.recv().await;
        })
        .await?;
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Hold

async fn feed_cursor(client: &reqwest::Client, url: &str, key: &str) -> Result<String, BoxError> {
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{url}/auth/revocations"))
            .bearer_auth(key);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            return Err(format!("feed snapshot: HTTP {}", resp.status()).into());
        }
        let v: Value = resp.json().await?;
        let c = v
            .get("cursor")
            .and_then(Value::as_str)
            .ok_or("feed answer without cursor")?
            .to_owned();
        if v.get("more").and_then(Value::as_bool) != Some(true) {
            return Ok(c);
        }
        cursor = Some(c);
    }
}

#[derive(Default)]
struct HoldStats {
    answered: AtomicU64,
    answered_early: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    errors: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl HoldStats {
    fn error(&self, kind: String) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }
}

async fn hold(
    url: &str,
    keys: &str,
    n: usize,
    wait: u64,
    label: Option<String>,
) -> Result<Option<String>, BoxError> {
    check_local(url)?;
    let keys: Vec<String> = keys
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err("--keys names no key".into());
    }
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(n + 8)
        .timeout(Duration::from_secs(wait + 15))
        .build()?;
    let cursor = feed_cursor(&client, url, &keys[0]).await?;
    let stats = Arc::new(HoldStats::default());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let client = client.clone();
        let key = keys[i % keys.len()].clone();
        let mut cursor = cursor.clone();
        let stats = stats.clone();
        let feed = format!("{url}/auth/revocations");
        tasks.push(tokio::spawn(async move {
            loop {
                let t = Instant::now();
                let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                stats.max_in_flight.fetch_max(now, Ordering::Relaxed);
                let r = client
                    .get(&feed)
                    .bearer_auth(&key)
                    .query(&[("cursor", cursor.as_str()), ("wait", &wait.to_string())])
                    .send()
                    .await;
                stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        let v: Result<Value, _> = resp.json().await;
                        match v.ok().and_then(|v| {
                            v.get("cursor").and_then(Value::as_str).map(str::to_owned)
                        }) {
                            Some(c) => {
                                cursor = c;
                                stats.answered.fetch_add(1, Ordering::Relaxed);
                                if t.elapsed() < Duration::from_secs(wait.saturating_sub(1)) {
                                    stats.answered_early.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            None => {
                                stats.error("body".into());
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    Ok(resp) => {
                        stats.error(format!("http {}", resp.status().as_u16()));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        stats.error(if e.is_timeout() {
                            "timeout".into()
                        } else {
                            "transport".into()
                        });
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    eprintln!(
        "feedbench: holding {n} feed requests over {} keys",
        keys.len()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    term.recv().await;
    let in_flight_at_stop = stats.in_flight.load(Ordering::Relaxed);
    for t in &tasks {
        t.abort();
    }
    let errors = stats
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Some(
        json!({
            "mode": "hold",
            "label": label,
            "n": n,
            "keys": keys.len(),
            "wait_s": wait,
            "seconds": round(started.elapsed().as_secs_f64(), 1),
            "answered": stats.answered.load(Ordering::Relaxed),
            "answered_before_wait": stats.answered_early.load(Ordering::Relaxed),
            "in_flight_at_stop": in_flight_at_stop,
            "max_in_flight": stats.max_in_flight.load(Ordering::Relaxed),
            "errors": errors,
        })
        .to_string(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Insert revocations, and the memory they take

async fn insert_revoked(url: &str, count: u64, horizon: i64) -> Result<Option<String>, BoxError> {
    let t = Instant::now();
    let db = sea_orm::Database::connect(url).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expires = now + horizon;
    let batch = 1000u64;
    let mut done = 0u64;
    while done < count {
        let txn = db.begin().await?;
        for _ in 0..20 {
            if done >= count {
                break;
            }
            let n = batch.min(count - done);
            let mut s = String::with_capacity(n as usize * 140);
            s.push_str(
                "INSERT INTO revoked_sessions (session_id, user_id, revoked_at, expires_at, reason) VALUES ",
            );
            for k in 0..n {
                if k > 0 {
                    s.push(',');
                }
                s.push_str(&format!(
                    "('{}','{}',{now},{expires},'logout')",
                    uuid::Uuid::new_v4(),
                    uuid::Uuid::new_v4()
                ));
            }
            txn.execute_unprepared(&s).await?;
            done += n;
        }
        txn.commit().await?;
    }
    db.close().await?;
    Ok(Some(
        json!({
            "mode": "insert_revoked",
            "rows": count,
            "seconds": round(t.elapsed().as_secs_f64(), 2),
        })
        .to_string(),
    ))
}

struct Memory {
    url: String,
    issuer: String,
    key: String,
    database_url: String,
    prefill: u64,
    steps: Vec<u64>,
    authd_pid: Option<u32>,
    label: Option<String>,
}

/// Inserts `count` rows from a child process (so that no database code runs in this one).
fn insert_child(database_url: &str, count: u64) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["insert-revoked", "--count", &count.to_string()])
        .env("DATABASE_URL", database_url)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "insert-revoked failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// A gauge of authd's `/metrics` (e.g. `authd_revoked_sessions`).
async fn authd_gauge(client: &reqwest::Client, url: &str, name: &str) -> Option<u64> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

async fn memory(m: Memory) -> Result<Option<String>, BoxError> {
    check_local(&m.url)?;
    let client = http_client(Duration::from_secs(10))?;
    let authd_entries = || {
        let client = client.clone();
        let url = m.url.clone();
        async move {
            authd_gauge(&client, &url, "authd_revoked_sessions")
                .await
                .unwrap_or(0)
        }
    };
    let wait_authd = |want: u64| async move {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if authd_entries().await >= want {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err::<(), BoxError>(format!("authd did not reach {want} revoked entries").into())
    };
    let mut points = Vec::new();
    let point = |what: &str, kit: usize, authd: u64| {
        json!({
            "at": what,
            "kit_entries": kit,
            "authd_entries": authd,
            "rss_kb": rss_kb(None),
            "rss_anon_kb": status_kb(None, "RssAnon"),
            "authd_rss_kb": m.authd_pid.and_then(|p| rss_kb(Some(p))),
            "authd_rss_anon_kb": m.authd_pid.and_then(|p| status_kb(Some(p), "RssAnon")),
            "authd_rss_file_kb": m.authd_pid.and_then(|p| status_kb(Some(p), "RssFile")),
        })
    };
    // Warms this process's own HTTP machinery before the first reading.
    points.push(point("start", 0, authd_entries().await));
    if m.prefill > 0 {
        insert_child(&m.database_url, m.prefill)?;
        wait_authd(m.prefill).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        points.push(point("authd synced the prefill", 0, authd_entries().await));
    }
    let t = Instant::now();
    let v = verifier(&m.url, &m.issuer, &m.key).await?;
    let build_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    points.push(point(
        "kit loaded the snapshot",
        v.status().revoked_entries,
        authd_entries().await,
    ));
    let mut want = m.prefill;
    for step in &m.steps {
        insert_child(&m.database_url, *step)?;
        want += step;
        let t = Instant::now();
        while (v.status().revoked_entries as u64) < want && t.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let entries = v.status().revoked_entries;
        if (entries as u64) < want {
            return Err(format!("the verifier holds {entries} entries, not {want}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        points.push(point(
            "kit followed the feed",
            entries,
            authd_entries().await,
        ));
    }
    // Bytes per entry between consecutive points, for the kit (this process) and for authd.
    let num = |v: &Value, k: &str| v[k].as_u64().map(|x| x as f64);
    let per = |dr: Option<f64>, de: Option<f64>| match (dr, de) {
        (Some(dr), Some(de)) if de > 0.0 => Some(round(dr * 1024.0 / de, 1)),
        _ => None,
    };
    let mut deltas = Vec::new();
    for w in points.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let d = |k: &str| Some(num(b, k)? - num(a, k)?);
        deltas.push(json!({
            "from": a["at"], "to": b["at"],
            "kit_entries_added": d("kit_entries"),
            "kit_rss_delta_kb": d("rss_kb"),
            "kit_bytes_per_entry": per(d("rss_kb"), d("kit_entries")),
            "authd_entries_added": d("authd_entries"),
            "authd_rss_delta_kb": d("authd_rss_kb"),
            "authd_bytes_per_entry": per(d("authd_rss_kb"), d("authd_entries")),
            "authd_anon_bytes_per_entry": per(d("authd_rss_anon_kb"), d("authd_entries")),
            "authd_rss_file_delta_kb": d("authd_rss_file_kb"),
        }));
    }
    Ok(Some(
        json!({
            "mode": "memory",
            "label": m.label,
            "prefill": m.prefill,
            "steps": m.steps,
            "build_s": round(build_s, 2),
            "points": points,
            "deltas": deltas,
            "verifier_requests": v.status().requests,
        })
        .to_string(),
    ))
}
