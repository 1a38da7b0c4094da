//! Faults real deployments meet, on a real `authd serve` child process: the database going away
//! (Postgres behind a TCP proxy the test cuts), `kill -9` during a refresh storm, `SIGTERM` with
//! requests in flight, and many concurrent writers.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use entity::refresh_tokens;
use futures::future::join_all;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::*;
use crate::process::Authd;

const PASSWORD: &str = "correct horse battery";

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forward both ways.
    Pass,
    /// Close every open connection and every new one at once (a stopped or restarting server).
    Refuse,
    /// Accept, then never forward a byte, and stall the open connections (a network partition).
    Blackhole,
}

/// A TCP proxy between authd and Postgres. Leaving `Pass` cuts or stalls every open connection;
/// connections stalled by `Blackhole` are closed when the mode changes again.
struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Resolves when the mode leaves `Pass` (or the proxy is gone), with the new mode.
async fn left_pass(rx: &mut watch::Receiver<Mode>) -> Mode {
    loop {
        if rx.changed().await.is_err() {
            return Mode::Refuse;
        }
        let mode = *rx.borrow_and_update();
        if mode != Mode::Pass {
            return mode;
        }
    }
}

async fn forward(mut inbound: TcpStream, upstream: SocketAddr, mut rx: watch::Receiver<Mode>) {
    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
        mode = left_pass(&mut rx) => {
            if mode == Mode::Blackhole {
                let _ = rx.changed().await;
            }
        }
    }
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (mode, rx) = watch::channel(Mode::Pass);
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut rx = rx.clone();
                let current = *rx.borrow_and_update();
                match current {
                    Mode::Pass => {
                        tokio::spawn(forward(inbound, upstream, rx));
                    }
                    Mode::Refuse => drop(inbound),
                    Mode::Blackhole => {
                        tokio::spawn(async move {
                            let _ = rx.changed().await;
                            drop(inbound);
                        });
                    }
                }
            }
        });
        Proxy { addr, mode, task }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// `postgres://user@host:port/db` with `host:port` replaced by `addr`.
fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("url scheme");
    let (authority, path) = rest.split_once('/').expect("url path");
    let userinfo = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}/{path}")
}

/// The `host:port` a Postgres URL points at.
async fn upstream_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("scheme").1;
    let authority = rest.split('/').next().expect("authority");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    tokio::net::lookup_host(hostport)
        .await
        .expect("resolve")
        .next()
        .expect("an address")
}

pub fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// The Postgres-only tests run (with the `postgres-tests` feature) only against Postgres: on
/// SQLite they are reported as ignored, with the reason, never as passed.
pub fn needs_postgres() {
    assert!(
        on_postgres(),
        "this test needs TEST_DATABASE_URL=postgres://... (it ran because of --features postgres-tests)"
    );
}

async fn timed(req: reqwest::RequestBuilder) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let r = req.send().await.expect("the server answers");
    let status = r.status();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

#[tokio::test]
#[cfg_attr(
    not(feature = "postgres-tests"),
    ignore = "Postgres only: TEST_DATABASE_URL=postgres://... cargo test --features postgres-tests"
)]
async fn when_the_database_is_unreachable_it_answers_503_fast_verifies_from_memory_and_recovers() {
    needs_postgres();
    let (db, _database) = fresh_database().await;
    let proxy = Proxy::start(upstream_of(&db.database_url).await).await;
    let acquire = Duration::from_millis(1000);
    let server = Authd::start(
        &through(&db.database_url, proxy.addr),
        &[
            ("AUTHD_DB_ACQUIRE_TIMEOUT_MS", "1000"),
            ("AUTHD_DB_STATEMENT_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    let mail = email();
    let mut t = server.user(&mail).await;
    let other = server.login_body(&mail, PASSWORD).await;
    // An answer within the acquire timeout plus this margin is "fast"; a hang is not.
    let bound = acquire + Duration::from_secs(3);

    for mode in [Mode::Refuse, Mode::Blackhole] {
        // The pool holds live connections when the database goes away.
        assert_eq!(
            server
                .client
                .get(server.url("/auth/sessions"))
                .bearer_auth(&t.access)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        proxy.set(mode);
        let c = &server.client;
        let requests = [
            ("refresh", c.post(server.url("/auth/refresh")).json(&json!({"refresh_token": t.refresh}))),
            ("login", c.post(server.url("/auth/login")).json(&json!({"email": mail, "password": PASSWORD, "delivery": "body"}))),
            ("register", c.post(server.url("/auth/register")).json(&json!({"email": email(), "password": PASSWORD}))),
            ("sessions", c.get(server.url("/auth/sessions")).bearer_auth(&t.access)),
            ("events", c.get(server.url("/auth/events")).bearer_auth(&t.access)),
            ("delete session", c.delete(server.url(&format!("/auth/sessions/{}", other.session_id))).bearer_auth(&t.access)),
            ("password", c.post(server.url("/auth/password")).bearer_auth(&t.access).json(&json!({"current_password": PASSWORD, "new_password": "another horse battery"}))),
            ("logout", c.post(server.url("/auth/logout?scope=local")).bearer_auth(&other.access)),
            ("readyz", c.get(server.url("/readyz"))),
        ];
        for (what, req) in requests {
            let started = Instant::now();
            let r = req.send().await.expect("the server answers");
            let retry_after = r.headers().get("retry-after").cloned();
            let (status, body, took) = (
                r.status(),
                r.json::<Value>().await.unwrap_or(Value::Null),
                started.elapsed(),
            );
            println!("{mode:?}: {what} -> {status} in {} ms", took.as_millis());
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{mode:?}: {what}: {body}"
            );
            assert_eq!(body["error"], "service_unavailable", "{mode:?}: {what}");
            assert!(
                retry_after.is_some(),
                "{mode:?}: {what}: a 503 says when to retry"
            );
            assert!(took < bound, "{mode:?}: {what} took {took:?}");
        }
        // Liveness is the process, not the database: an orchestrator must not restart every
        // instance during a database outage, since they keep verifying from memory.
        let (status, body, took) = timed(c.get(server.url("/healthz"))).await;
        assert_eq!(status, StatusCode::OK, "{mode:?}: healthz: {body}");
        assert_eq!(body["database"], "unreachable", "{mode:?}");
        assert!(took < bound, "{mode:?}: healthz took {took:?}");
        // Verification needs no database: access tokens keep working, and so does the JWKS.
        for access in [&t.access, &other.access] {
            assert_eq!(
                server.me_status(access).await,
                StatusCode::OK,
                "{mode:?}: /me from memory"
            );
        }
        let jwks = server
            .client
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(jwks.status(), StatusCode::OK);

        // The database comes back: everything recovers without a restart.
        proxy.set(Mode::Pass);
        let back = Instant::now();
        loop {
            let (status, _, _) = timed(server.client.get(server.url("/readyz"))).await;
            if status == StatusCode::OK {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(20),
                "{mode:?}: no recovery"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "{mode:?}: /readyz answered 200 {} ms after the database came back",
            back.elapsed().as_millis()
        );
        // Nothing of the failed requests happened: the refresh token is still current.
        t = server.rotate(&t.refresh).await;
        assert_eq!(server.me_status(&other.access).await, StatusCode::OK);
        server.login_body(&mail, PASSWORD).await;
        assert_eq!(
            server.register(&email(), PASSWORD).await.status(),
            StatusCode::CREATED
        );
        let (status, _, _) = timed(
            server
                .client
                .get(server.url("/auth/sessions"))
                .bearer_auth(&t.access),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        println!(
            "{mode:?}: fully recovered {} ms after the database came back",
            back.elapsed().as_millis()
        );
    }
}

/// A client of the refresh storm: its chain as far as it was told.
#[derive(Debug, Clone)]
struct Chain {
    /// The last refresh token received in a 200.
    last: String,
    /// How many refreshes answered 200 (the generation of `last`).
    rotations: i64,
    /// Whether the crash cut its storm short (its final request got no answer).
    lost: bool,
}

fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// One crash of the storm: every client rotates its own chain as fast as it can until the
/// server is killed with SIGKILL after `rotations` acknowledged rotations (or 10 s).
async fn storm_until_killed(server: &Authd, chains: &mut [Chain], rotations: u64) {
    let done = AtomicU64::new(0);
    let stop_at = Instant::now() + Duration::from_secs(20);
    let done = &done;
    let storm = chains.iter_mut().map(|chain| async move {
        chain.lost = false;
        while Instant::now() < stop_at {
            let sent = server
                .client
                .post(server.url("/auth/refresh"))
                .json(&json!({"refresh_token": chain.last}))
                .send()
                .await;
            let answer = match sent {
                Ok(r) => (r.status(), r.json::<Value>().await),
                Err(_) => break,
            };
            let (status, Ok(body)) = answer else { break };
            assert_eq!(status, StatusCode::OK, "before the crash: {body}");
            chain.last = body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned();
            chain.rotations += 1;
            done.fetch_add(1, Ordering::Relaxed);
        }
        chain.lost = true;
    });
    let killer = async {
        let give_up = Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::Relaxed) < rotations && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.signal("KILL");
    };
    futures::join!(join_all(storm), killer);
}

/// Checks the database after a crash: every session has exactly one current refresh token, and
/// every rotated token has its successor (no half-rotation). Returns the tokens by hash.
async fn no_half_rotation(
    database_url: &str,
    sessions: usize,
) -> HashMap<Vec<u8>, refresh_tokens::Model> {
    let conn = sea_orm::Database::connect(database_url.to_owned())
        .await
        .expect("connect");
    let tokens = refresh_tokens::Entity::find()
        .all(&conn)
        .await
        .expect("tokens");
    let rows = entity::sessions::Entity::find()
        .all(&conn)
        .await
        .expect("sessions");
    conn.close().await.ok();
    assert_eq!(rows.len(), sessions, "no session was lost or ended");
    for s in &rows {
        let current = tokens
            .iter()
            .filter(|t| t.session_id == s.id && t.used_at.is_none())
            .count();
        assert_eq!(
            current, 1,
            "session {}: exactly one current refresh token",
            s.id
        );
    }
    let by_hash: HashMap<_, _> = tokens
        .into_iter()
        .map(|t| (t.token_hash.clone(), t))
        .collect();
    for t in by_hash.values().filter(|t| t.used_at.is_some()) {
        let successor = t.successor_hash.as_ref().and_then(|h| by_hash.get(h));
        let successor = successor.expect("a rotated token's successor exists");
        assert_eq!(successor.session_id, t.session_id);
        assert_eq!(successor.generation, t.generation + 1);
    }
    by_hash
}

#[tokio::test]
async fn kill_9_during_a_refresh_storm_loses_nothing_a_client_was_told() {
    let (db, _database) = fresh_database().await;
    // A grace window long enough to cover the restart: a rotation that committed but whose
    // answer was lost is then recovered by presenting its parent again (docs/api.md).
    let env = [("AUTHD_REUSE_GRACE_SECS", "120")];
    let mut server = Authd::start(&db.database_url, &env).await;
    let mut chains = Vec::new();
    for _ in 0..8 {
        let t = server.user(&email()).await;
        chains.push(Chain {
            last: t.refresh,
            rotations: 0,
            lost: false,
        });
    }
    let (mut acknowledged, mut replays) = (0, 0);
    for crash in 0..3 {
        let before: i64 = chains.iter().map(|c| c.rotations).sum();
        storm_until_killed(&server, &mut chains, 150).await;
        assert!(
            server.wait_exit(Duration::from_secs(10)).await.is_some(),
            "the server died"
        );
        acknowledged += chains.iter().map(|c| c.rotations).sum::<i64>() - before;
        assert!(
            chains.iter().all(|c| c.lost),
            "every client was cut off by the crash"
        );
        server = Authd::start(&db.database_url, &env).await;
        let by_hash = no_half_rotation(&db.database_url, chains.len()).await;

        // Each client's last acknowledged token is stored at the generation it was told
        // (nothing acknowledged was lost). It is either still current, or it was rotated by the
        // request whose answer the crash swallowed; then its successor is unused and, within
        // the grace window, presenting it hands out that same successor. Either way it works.
        for chain in &mut chains {
            let row = by_hash
                .get(&sha256(&chain.last))
                .expect("the last acknowledged token is stored");
            assert_eq!(
                row.generation, chain.rotations,
                "crash {crash}: the chain is as long as the client was told"
            );
            let r = server.refresh(&chain.last).await;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(
                status,
                StatusCode::OK,
                "crash {crash}: the last token works after the restart: {body}"
            );
            let next = body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned();
            if row.used_at.is_some() {
                let successor = row.successor_hash.as_ref().and_then(|h| by_hash.get(h));
                assert!(
                    successor.is_some_and(|s| s.used_at.is_none()),
                    "the successor is unused"
                );
                assert_eq!(
                    row.successor_hash.as_deref(),
                    Some(sha256(&next).as_slice()),
                    "the same successor again"
                );
                replays += 1;
            }
            // And the chain goes on from there.
            chain.last = server.rotate(&next).await.refresh;
            chain.rotations += 2;
        }
    }
    assert!(acknowledged > 0, "the storms rotated something");
    println!(
        "kill -9 storm: 3 crashes, {acknowledged} rotations acknowledged to {} clients; {replays} committed rotation(s) lost their answer to a crash and were replayed through the grace window",
        chains.len()
    );
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_exits_cleanly() {
    let (db, _database) = fresh_database().await;
    let mut server = Authd::start(&db.database_url, &[]).await;
    let mail = email();
    assert_eq!(
        server.register(&mail, PASSWORD).await.status(),
        StatusCode::CREATED
    );

    // Logins are slow (argon2 on a pool as large as the machine has cores): a dozen sent at
    // once queue for the hasher. The signal goes out when the first answer arrives, so the
    // server has read the others and is working on them.
    let mail = &mail;
    let first_answer = tokio::sync::Notify::new();
    let first_answer = &first_answer;
    let logins = (0..12).map(|_| {
        let server = &server;
        async move {
            let r = server
                .client
                .post(server.url("/auth/login"))
                .json(&json!({"email": mail, "password": PASSWORD, "delivery": "body"}))
                .send()
                .await;
            let done = Instant::now();
            first_answer.notify_one();
            (r.map(|r| r.status()).map_err(|e| e.to_string()), done)
        }
    });
    let signal = async {
        let _ = tokio::time::timeout(Duration::from_secs(30), first_answer.notified()).await;
        server.signal("TERM");
        Instant::now()
    };
    let (results, signalled) = futures::join!(join_all(logins), signal);
    for (status, _) in &results {
        assert_eq!(status.as_ref().ok(), Some(&StatusCode::OK), "{results:?}");
    }
    let after_signal = results.iter().filter(|(_, done)| *done > signalled).count();
    assert!(
        after_signal > 0,
        "some logins were in flight when the signal arrived"
    );
    let status = server.wait_exit(Duration::from_secs(15)).await;
    let took = signalled.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}\n{}",
        server.log_text()
    );
    let drained = results
        .iter()
        .map(|(_, done)| *done)
        .max()
        .unwrap_or(signalled)
        - signalled;
    println!(
        "SIGTERM: {after_signal} of 12 logins finished after the signal, the last after {} ms; exited 0 after {} ms",
        drained.as_millis(),
        took.as_millis()
    );
    assert!(server.log_text().contains("authd stopped"));
    let refused = server.client.get(server.url("/healthz")).send().await;
    assert!(refused.is_err(), "nothing listens any more");
}

#[tokio::test]
async fn fifty_concurrent_writers_never_get_a_5xx() {
    let (db, _database) = fresh_database().await;
    let server = Authd::start(&db.database_url, &[]).await;
    let mut users = Vec::new();
    for _ in 0..25 {
        users.push(server.user(&email()).await);
    }
    let server = &server;
    let refreshers = users.into_iter().map(|u| async move {
        let mut token = u.refresh;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let r = server.refresh(&token).await;
            statuses.push(r.status());
            if r.status() != StatusCode::OK {
                break;
            }
            let v: Value = r.json().await.expect("json");
            token = v["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned();
        }
        statuses
    });
    let registrars = (0..25).map(|_| async move {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(server.register(&email(), PASSWORD).await.status());
        }
        statuses
    });
    let (refreshes, registrations) = futures::join!(join_all(refreshers), join_all(registrars));
    let refreshes: Vec<_> = refreshes.into_iter().flatten().collect();
    let registrations: Vec<_> = registrations.into_iter().flatten().collect();
    assert!(
        refreshes
            .iter()
            .chain(&registrations)
            .all(|s| !s.is_server_error()),
        "{refreshes:?} {registrations:?}\n{}",
        server.log_text()
    );
    assert!(refreshes.iter().all(|s| *s == StatusCode::OK) && refreshes.len() == 25 * 20);
    assert!(
        registrations.iter().all(|s| *s == StatusCode::CREATED) && registrations.len() == 25 * 4
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "postgres-tests"),
    ignore = "Postgres only: TEST_DATABASE_URL=postgres://... cargo test --features postgres-tests"
)]
async fn a_postgres_statement_past_the_statement_timeout_is_cancelled_as_unavailable() {
    needs_postgres();
    let (mut db, _database) = fresh_database().await;
    db.db_statement_timeout_ms = 200;
    let store = authd::store::Store::connect(&db).await.expect("connect");
    // Migrations are exempt: they may legitimately run longer than any request.
    store.migrate().await.expect("migrate");
    let started = Instant::now();
    let err = store
        .connection()
        .execute_unprepared("SELECT pg_sleep(5)")
        .await
        .expect_err("cancelled by statement_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cancelled, not waited out"
    );
    let err = authd::store::StoreError::from(err);
    assert!(
        matches!(err, authd::store::StoreError::Unavailable(_)),
        "{err}"
    );
    // The connection is still good afterwards.
    store.ping().await.expect("ping");
}
