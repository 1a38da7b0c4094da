//! Micro-benchmarks of authd's hot paths, with plain `Instant` loops (no criterion).
//!
//! ```sh
//! cargo bench --bench hot_paths            # every benchmark, about a minute
//! cargo bench --bench hot_paths -- rotate  # only those whose name contains "rotate"
//! ```
//!
//! Each benchmark runs 3 times for about `BENCH_SECS` seconds (default 1.5) and prints the
//! median ops/s (and the three runs). One thread unless the name says otherwise; the SQLite
//! databases are scratch files in the temp directory with authd's own settings (WAL,
//! `synchronous=NORMAL`, `BEGIN IMMEDIATE` write transactions).
// A benchmark whose set-up fails has nothing to measure: it stops there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authd::clock::{Clock, SharedClock, SystemClock};
use authd::config::DbConfig;
use authd::passwords::Hasher;
use authd::store::{ClientMeta, NewSession, NewUser, RotateRequest, Rotation, Store, Successor};
use authd::tokens::access::Subject;
use authd::tokens::{AccessTokens, KeyRecord, KeySet, RefreshToken, RevokedSet};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

/// The stored hash of the bench user (never verified here).
const BENCH_PASSWORD_HASH: &str = "not-a-phc-string";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn secs() -> f64 {
    std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.5)
}

/// Prints one result line; `runs` are ops/s.
fn report(name: &str, mut runs: Vec<f64>) {
    runs.sort_by(f64::total_cmp);
    let median = runs[runs.len() / 2];
    let all: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "{name:<48} {median:>12.0} ops/s   {:>10.2} us/op   (runs: {})",
        1e6 / median,
        all.join(", ")
    );
}

/// Runs `op` in a loop for about `secs()` seconds, three times; ops/s of each run.
fn bench_sync(mut op: impl FnMut()) -> Vec<f64> {
    let budget = Duration::from_secs_f64(secs());
    // Warm-up.
    let t = Instant::now();
    while t.elapsed() < budget / 10 {
        op();
    }
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let mut n = 0u64;
            while t.elapsed() < budget {
                for _ in 0..16 {
                    op();
                }
                n += 16;
            }
            n as f64 / t.elapsed().as_secs_f64()
        })
        .collect()
}

fn selected(filter: &Option<String>, name: &str) -> bool {
    filter.as_deref().is_none_or(|f| name.contains(f))
}

fn scratch_db(tag: &str) -> (String, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "authd-bench-{tag}-{}-{}.db",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    (format!("sqlite://{}?mode=rwc", path.display()), path)
}

fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; the first other argument filters by name.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "authd hot paths: median of 3 runs of ~{:.1} s each, {} CPUs",
        secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // ---- Access tokens -----------------------------------------------------------------
    let keys = Arc::new(KeySet::default());
    keys.load(&[KeyRecord::generate(SystemClock.now())?])?;
    let revoked = Arc::new(RevokedSet::default());
    // A realistic revoked set: a few thousand ended sessions.
    let now = SystemClock.now();
    for i in 0..5_000 {
        revoked.insert(&format!("ended-{i}"), now + 600);
    }
    let clock: SharedClock = Arc::new(SystemClock);
    let tokens = AccessTokens::new(
        keys,
        revoked,
        clock,
        "http://127.0.0.1:8080".into(),
        "authd".into(),
        300,
        30,
    );
    let user_id = uuid::Uuid::new_v4().to_string();
    let session_id = uuid::Uuid::new_v4().to_string();
    let subject = Subject {
        user_id: &user_id,
        email: "ada@example.com",
        email_verified: false,
        app_metadata: None,
        session_id: &session_id,
        session_expires_at: now + 86_400,
    };
    if selected(&filter, "access token sign") {
        report(
            "access token sign (EdDSA)",
            bench_sync(|| {
                black_box(tokens.sign(black_box(&subject)).expect("sign"));
            }),
        );
    }
    if selected(&filter, "access token verify") {
        // Distinct tokens: every verify does the signature check. The pool is more than twice
        // as large as any verified-token cache authd keeps (16,384 entries), so a token is
        // never seen again before the cache has been emptied.
        let pool: Vec<String> = (0..40_000)
            .map(|_| tokens.sign(&subject).expect("sign").0)
            .collect();
        let mut i = 0usize;
        report(
            "access token verify, distinct tokens",
            bench_sync(|| {
                i = (i + 1) % pool.len();
                black_box(tokens.verify(black_box(&pool[i])).expect("verify"));
            }),
        );
        // The same token again and again: what a verified-token cache (if any) serves.
        let one = pool[0].clone();
        report(
            "access token verify, same token repeated",
            bench_sync(|| {
                black_box(tokens.verify(black_box(&one)).expect("verify"));
            }),
        );
    }

    // ---- Refresh rotation in the store (SQLite) ----------------------------------------
    if selected(&filter, "store rotate") {
        let (url, path) = scratch_db("rotate");
        let res = rt.block_on(bench_store_rotate(&url));
        remove_db(&path);
        let (one, many) = res?;
        report("store rotate, 1 chain (SQLite)", one);
        report("store rotate, 32 chains concurrently (SQLite)", many);
    }

    if selected(&filter, "raw sqlite") {
        let (url, path) = scratch_db("raw");
        let res = rt.block_on(bench_raw_sqlite(&url));
        remove_db(&path);
        let (one, many) = res?;
        report("raw sqlite update+insert tx, 1 writer", one);
        report("raw sqlite update+insert tx, 32 tasks", many);
    }

    // ---- Passwords ---------------------------------------------------------------------
    if selected(&filter, "argon2 verify") {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        for threads in [1, cpus] {
            let runs = rt.block_on(argon2_runs(threads))?;
            report(
                &format!("argon2id verify (19 MiB, t=2, p=1), {threads} thread(s)"),
                runs,
            );
        }
    }
    Ok(())
}

/// Password checks through authd's own bounded hashing pool, `threads` at a time, each run
/// about `secs()` seconds (at least 2); the total ops/s of each run.
async fn argon2_runs(threads: usize) -> Result<Vec<f64>, BoxError> {
    let hasher = Hasher::new(threads, 1024).await?;
    let phc = hasher.hash("correct horse battery".to_owned()).await?;
    let budget = Duration::from_secs_f64(secs().max(2.0));
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let tasks: Vec<_> = (0..threads)
            .map(|_| {
                let hasher = hasher.clone();
                let phc = phc.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while t.elapsed() < budget {
                        let ok = hasher
                            .verify("correct horse battery".to_owned(), Some(phc.clone()))
                            .await?;
                        assert!(ok);
                        n += 1;
                    }
                    Ok::<_, BoxError>(n)
                })
            })
            .collect();
        let mut n = 0;
        for task in tasks {
            n += task.await??;
        }
        runs.push(n as f64 / t.elapsed().as_secs_f64());
    }
    Ok(runs)
}

/// One chain, rotated sequentially; then 32 chains rotated by 32 tasks at once.
async fn bench_store_rotate(url: &str) -> Result<(Vec<f64>, Vec<f64>), BoxError> {
    let store = Store::connect(&DbConfig {
        database_url: url.to_owned(),
        ..Default::default()
    })
    .await?;
    store.migrate().await?;
    let now = SystemClock.now();
    let user_id = uuid::Uuid::new_v4().to_string();
    store
        .create_user(NewUser {
            id: user_id.clone(),
            email: "bench@example.com".into(),
            password_hash: BENCH_PASSWORD_HASH.into(),
            now,
            email_verified: false,
            created_by: None,
        })
        .await?;

    let budget = Duration::from_secs_f64(secs());
    let mut one = Vec::new();
    let mut chain = new_chain(&store, &user_id, now).await?;
    // Warm-up.
    let t = Instant::now();
    while t.elapsed() < budget / 10 {
        chain = rotate_once(&store, chain, now).await?;
    }
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < budget {
            chain = rotate_once(&store, chain, now).await?;
            n += 1;
        }
        one.push(n as f64 / t.elapsed().as_secs_f64());
    }

    let mut many = Vec::new();
    let mut chains = Vec::new();
    for _ in 0..32 {
        chains.push(new_chain(&store, &user_id, now).await?);
    }
    for _ in 0..3 {
        let t = Instant::now();
        let deadline = t + budget;
        let tasks: Vec<_> = chains
            .drain(..)
            .map(|mut chain| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        chain = rotate_once(&store, chain, now).await?;
                        n += 1;
                    }
                    Ok::<_, BoxError>((n, chain))
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            let (n, chain) = task.await??;
            total += n;
            chains.push(chain);
        }
        many.push(total as f64 / t.elapsed().as_secs_f64());
    }
    Ok((one, many))
}

async fn new_chain(store: &Store, user_id: &str, now: i64) -> Result<RefreshToken, BoxError> {
    let rt = RefreshToken::mint().map_err(|e| e.to_string())?;
    store
        .create_session(NewSession {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            now,
            idle_secs: 1_209_600,
            max_secs: 2_592_000,
            meta: ClientMeta::default(),
            token_hash: rt.hash(),
            verified_password_hash: BENCH_PASSWORD_HASH.into(),
            max_sessions: 0,
            persistent: true,
        })
        .await?
        .ok_or("the bench user's credentials changed")?;
    Ok(rt)
}

/// Presents `current`, as the refresh handler does (hash, mint and seal the successor); returns
/// the successor.
async fn rotate_once(
    store: &Store,
    current: RefreshToken,
    now: i64,
) -> Result<RefreshToken, BoxError> {
    let next = RefreshToken::mint().map_err(|e| e.to_string())?;
    let successor = Successor {
        hash: next.hash(),
        sealed: current.seal(&next).map_err(|e| e.to_string())?,
    };
    match store
        .rotate(RotateRequest {
            presented: current.hash(),
            successor,
            now,
            idle_secs: 1_209_600,
            grace_secs: 10,
            meta: ClientMeta::default(),
        })
        .await?
    {
        Rotation::Rotated { .. } => Ok(next),
        other => Err(format!("rotation did not win: {other:?}").into()),
    }
}

/// The physics floor of a rotation: one `BEGIN IMMEDIATE` transaction that consumes a row with a
/// conditional UPDATE and inserts its successor, on a scratch table, through sea-orm raw SQL.
async fn bench_raw_sqlite(url: &str) -> Result<(Vec<f64>, Vec<f64>), BoxError> {
    let store = Store::connect(&DbConfig {
        database_url: url.to_owned(),
        ..Default::default()
    })
    .await?;
    let db = store.connection().clone();
    db.execute_unprepared(
        "CREATE TABLE scratch (hash BLOB PRIMARY KEY, chain INTEGER NOT NULL, \
         used_at INTEGER, successor BLOB)",
    )
    .await?;
    db.execute_unprepared("CREATE INDEX scratch_chain ON scratch (chain)")
        .await?;
    let budget = Duration::from_secs_f64(secs());

    let mut one = Vec::new();
    let mut head = raw_first(&db, 0).await?;
    let t = Instant::now();
    while t.elapsed() < budget / 10 {
        head = raw_rotate(&db, 0, head).await?;
    }
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < budget {
            head = raw_rotate(&db, 0, head).await?;
            n += 1;
        }
        one.push(n as f64 / t.elapsed().as_secs_f64());
    }

    let mut many = Vec::new();
    let mut heads = Vec::new();
    for c in 1..=32 {
        heads.push((c, raw_first(&db, c).await?));
    }
    for _ in 0..3 {
        let t = Instant::now();
        let deadline = t + budget;
        let tasks: Vec<_> = heads
            .drain(..)
            .map(|(c, mut head)| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        head = raw_rotate(&db, c, head).await?;
                        n += 1;
                    }
                    Ok::<_, BoxError>((n, c, head))
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            let (n, c, head) = task.await??;
            total += n;
            heads.push((c, head));
        }
        many.push(total as f64 / t.elapsed().as_secs_f64());
    }
    Ok((one, many))
}

fn random_hash() -> Result<[u8; 32], BoxError> {
    let mut h = [0u8; 32];
    getrandom::fill(&mut h).map_err(|e| e.to_string())?;
    Ok(h)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn raw_first(db: &DatabaseConnection, chain: i64) -> Result<[u8; 32], BoxError> {
    let h = random_hash()?;
    db.execute_unprepared(&format!(
        "INSERT INTO scratch (hash, chain) VALUES (X'{}', {chain})",
        hex(&h)
    ))
    .await?;
    Ok(h)
}

async fn raw_rotate(
    db: &DatabaseConnection,
    chain: i64,
    head: [u8; 32],
) -> Result<[u8; 32], BoxError> {
    use sea_orm::{DatabaseBackend, Statement};
    let next = random_hash()?;
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?;
    let res = txn
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            "UPDATE scratch SET used_at = ?, successor = ? WHERE hash = ? AND used_at IS NULL",
            [1i64.into(), next.to_vec().into(), head.to_vec().into()],
        ))
        .await?;
    if res.rows_affected() != 1 {
        return Err("raw rotation lost".into());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Sqlite,
        "INSERT INTO scratch (hash, chain) VALUES (?, ?)",
        [next.to_vec().into(), chain.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(next)
}
