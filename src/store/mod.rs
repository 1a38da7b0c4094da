//! The only code that issues queries. It returns domain results and [`StoreError`], never a
//! `DbErr`, and knows nothing of HTTP.
//!
//! Every state change is one transaction (a single statement, or a transaction that starts
//! behind this process's write gate); on SQLite write transactions start with
//! `BEGIN IMMEDIATE`, because a deferred transaction that reads then writes fails at once with
//! "database is locked" when another writer got there first.
use std::sync::Arc;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, RuntimeErr,
};

use crate::config::{DbConfig, PoolMode};
use db::Db;

pub mod admin;
mod db;
pub mod email_tokens;
mod ending;
mod events;
pub mod feed;
mod keys;
pub mod listen;
pub mod open;
pub mod outbox;
mod policy;
mod prune;
mod rotation;
mod secrets;
mod service_keys;
mod sessions;
mod types;
mod users;

pub use crate::ids::{SessionId, UserId};
pub use ending::{EndReason, EndedSession, SessionScope};
pub use events::SecurityEvent;
pub use keys::StoredKey;
pub use policy::IssuingPolicy;
pub use prune::Pruned;
pub use rotation::{MAX_BATCH, RotateRequest, Rotation, Successor};
pub use service_keys::ServiceKeyInfo;
pub use sessions::{NewSession, Opened, SessionInfo};
pub use types::{ClientMeta, EventKind};
pub use users::{NewUser, Profile, User};

/// The Postgres advisory-lock key that serialises migrations ("authd-mi" as an integer).
const MIGRATION_LOCK: i64 = 0x6175_7468_642d_6d69;

/// How long a SQLite connection waits for another process's lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A storage failure, already sorted into what the client should hear.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connection refused, pool timed out, shutting down).
    #[error("database unavailable: {0}")]
    Unavailable(DbErr),
    /// Any other database failure: a bug or corruption.
    #[error("database error: {0}")]
    Db(DbErr),
    /// Stored data that cannot be used.
    #[error("{0}")]
    Internal(String),
    /// The database could not be opened; the message says why and what would work, and never
    /// holds a password.
    #[error("{0}")]
    Connect(String),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if is_unavailable(&err) {
            Self::Unavailable(err)
        } else {
            Self::Db(err)
        }
    }
}

impl StoreError {
    /// The same error again, for each request of a batch that failed as a whole.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Unavailable(e) => Self::Unavailable(DbErr::Custom(e.to_string())),
            Self::Db(e) => Self::Db(DbErr::Custom(e.to_string())),
            Self::Internal(m) => Self::Internal(m.clone()),
            Self::Connect(m) => Self::Connect(m.clone()),
        }
    }
}

/// SQLite's "database is locked" (`SQLITE_BUSY`).
fn is_busy(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as S;
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e)) => {
            matches!(e.as_ref(), S::Database(db) if db.code().as_deref() == Some("5"))
        }
        _ => false,
    }
}

fn is_sqlite_url(url: &str) -> bool {
    url.starts_with("sqlite:")
}

fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as S;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                S::Io(_) | S::PoolTimedOut | S::PoolClosed | S::WorkerCrashed | S::Protocol(_) => {
                    true
                }
                S::Database(db) => {
                    // Postgres: admin shutdown, crash shutdown, cannot connect now, statement
                    // timeout. SQLite: busy / locked past the busy timeout.
                    matches!(
                        db.code().as_deref(),
                        Some("57P01" | "57P02" | "57P03" | "57014" | "5" | "6" | "517")
                    )
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// The database handle.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Postgres behind a transaction-mode pooler: where to listen for announcements instead.
    direct_url: Option<Arc<str>>,
    /// SQLite has one writer at a time. Queueing this process's write transactions here,
    /// instead of letting several connections race for the lock and back off in SQLite's busy
    /// handler (sleeps of 1, 2, 5, 10... ms), is what lets one file take thousands of rotations
    /// a second. Other processes on the same file still meet the busy timeout.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite: the one connection every write transaction of this process runs on, never
    /// shared with reads. Its page cache stays valid from one write to the next (a connection
    /// that another one wrote behind must drop its cache and read the pages again), which is a
    /// good part of a rotation batch's cost otherwise.
    writer: Option<Db>,
    /// The rotation task's queue (see [`rotation`]); `None` only in that task's own handle.
    rotations: Option<rotation::Rotations>,
}

/// Held for the life of a write transaction (SQLite only).
pub(crate) type WriteGuard = Option<tokio::sync::OwnedMutexGuard<()>>;

impl Store {
    /// Connects to `DATABASE_URL`. SQLite gets WAL, `synchronous=NORMAL`, a busy timeout and
    /// foreign keys; Postgres gets the statement timeout, also as its idle-in-transaction timeout
    /// so that a transaction whose client vanished does not keep its row locks. The pool size and
    /// acquire timeout come from the config; every connection is pinged before it is handed out,
    /// so connections the database dropped are replaced instead of failing a request.
    pub async fn connect(cfg: &DbConfig) -> Result<Self, StoreError> {
        open::precheck(&cfg.database_url)?;
        let pooled = cfg.db_pool_mode == PoolMode::Transaction;
        let sqlite = is_sqlite_url(&cfg.database_url);
        if pooled && sqlite {
            return Err(StoreError::Connect(
                "AUTHD_DB_POOL_MODE=transaction is for Postgres behind a pooler; SQLite has no pooler"
                    .into(),
            ));
        }
        if let Some(direct) = &cfg.database_direct_url
            && (sqlite
                || direct
                    .parse::<sea_orm::sqlx::postgres::PgConnectOptions>()
                    .is_err())
        {
            // The parse error is not repeated: it may quote the URL, password and all.
            return Err(StoreError::Connect(
                "AUTHD_DATABASE_DIRECT_URL is for Postgres: both it and DATABASE_URL must be postgres:// URLs"
                    .into(),
            ));
        }
        let statement_timeout = format!("{}ms", cfg.db_statement_timeout_ms);
        let preamble_timeout = statement_timeout.clone();
        let mut opts = ConnectOptions::new(cfg.database_url.clone());
        opts.max_connections(cfg.db_max_connections)
            .min_connections(1)
            .acquire_timeout(cfg.acquire_timeout())
            .connect_timeout(cfg.acquire_timeout())
            // A Postgres connection can die while idle; a SQLite one cannot, and a ping would
            // be one more hop to its thread on every transaction.
            .test_before_acquire(!is_sqlite_url(&cfg.database_url))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
            })
            .map_sqlx_postgres_opts(move |o| {
                if pooled {
                    // No startup parameters a pooler may refuse, and no statement kept past
                    // its transaction (see `db`).
                    return o.extra_float_digits(None).statement_cache_capacity(0);
                }
                o.options([
                    ("statement_timeout", statement_timeout.as_str()),
                    (
                        "idle_in_transaction_session_timeout",
                        statement_timeout.as_str(),
                    ),
                ])
            });
        // Two processes opening one new SQLite file at once: switching it to WAL needs a lock
        // that SQLite reports busy without waiting in its busy handler. Try again for as long as
        // the busy timeout would have waited.
        let started = std::time::Instant::now();
        let db = loop {
            match Database::connect(opts.clone()).await {
                Err(e) if is_busy(&e) && started.elapsed() < SQLITE_BUSY_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(open::explain(&cfg.database_url, &e, cfg.acquire_timeout()).await);
                }
                Ok(db) => break db,
            }
        };
        let write_gate = (db.get_database_backend() == DatabaseBackend::Sqlite)
            .then(|| Arc::new(tokio::sync::Mutex::new(())));
        let writer = if write_gate.is_some() {
            let mut one = opts.clone();
            one.max_connections(1).min_connections(1);
            let conn = match Database::connect(one).await {
                Ok(conn) => conn,
                Err(e) => {
                    return Err(open::explain(&cfg.database_url, &e, cfg.acquire_timeout()).await);
                }
            };
            Some(Db::direct(conn))
        } else {
            None
        };
        let db = if pooled {
            Db::transaction_pooled(db, &preamble_timeout)
        } else {
            Db::direct(db)
        };
        let store = Self {
            db,
            direct_url: cfg.database_direct_url.as_deref().map(Arc::from),
            write_gate,
            writer,
            rotations: None,
        };
        Ok(Self {
            rotations: Some(rotation::start(store.clone())),
            ..store
        })
    }

    /// Applies every pending migration. Instances that start together on one database take
    /// turns: the migrations run in one transaction that first takes a lock (a Postgres advisory
    /// lock, with no statement timeout since a migration may be long; SQLite's write lock), so
    /// the next instance finds them applied instead of failing on the migration table.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        if self.backend() == DatabaseBackend::Postgres {
            txn.execute_unprepared("SET LOCAL statement_timeout = 0")
                .await?;
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .await?;
        }
        Migrator::up(&txn, None).await?;
        txn.commit().await?;
        Ok(())
    }

    /// How many migrations this binary knows that the database has not applied (read-only).
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        // Inside a write transaction that changes nothing, as a migration would: it waits its
        // turn behind a running server's writes (SQLite's busy handler, Postgres's locks).
        let (txn, _gate) = self.begin_write().await?;
        let pending = Migrator::get_pending_migrations_read_only(&txn)
            .await?
            .len();
        txn.rollback().await?;
        Ok(pending)
    }

    /// A cheap round trip, for the health probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.conn.ping().await?;
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.db.conn.get_database_backend()
    }

    /// The raw connection, for tests and tools.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db.conn
    }

    /// Postgres behind a transaction-mode pooler?
    pub fn is_transaction_pooled(&self) -> bool {
        self.db.is_transaction_pooled()
    }

    /// The URL given for session work behind a transaction-mode pooler, if any.
    pub(crate) fn direct_url(&self) -> Option<&str> {
        self.direct_url.as_deref()
    }

    /// Pool connections: `(open, idle)`.
    pub fn pool_stats(&self) -> (u32, usize) {
        match self.backend() {
            DatabaseBackend::Sqlite => {
                let p = self.db.conn.get_sqlite_connection_pool();
                (p.size(), p.num_idle())
            }
            DatabaseBackend::Postgres => {
                let p = self.db.conn.get_postgres_connection_pool();
                (p.size(), p.num_idle())
            }
            _ => (0, 0),
        }
    }

    /// Starts a write transaction; keep the guard alive until after the commit.
    async fn begin_write(&self) -> Result<(DatabaseTransaction, WriteGuard), StoreError> {
        let guard = match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        let db = self.writer.as_ref().unwrap_or(&self.db);
        Ok((db.begin().await?, guard))
    }
}
