//! The connection every query goes through, and what changes when Postgres is reached through
//! a pooler in transaction mode (pgbouncer `pool_mode = transaction`).
//!
//! Such a pooler lends a server connection for one transaction and takes it back at the next
//! "idle" `ReadyForQuery`. sqlx runs a query with parameters in two round trips (`Parse` +
//! `Describe` + `Sync`, then `Bind` + `Execute` + `Sync`) on a *named* statement (`sqlx_s_N`),
//! so outside a transaction the second half can land on another server connection (where that
//! name is missing, or is another client's statement), and even inside one a name left behind on
//! a server connection collides with the next client's. In transaction mode authd therefore:
//! - runs every statement inside a transaction (a lone read or write gets its own `BEGIN` and
//!   `COMMIT`), so both halves meet the same server connection;
//! - starts every transaction with `DEALLOCATE ALL` and keeps no statement cache, so no name
//!   outlives the transaction that made it, whatever the pooler's reset settings;
//! - sets its timeouts with `SET LOCAL` in that same first round trip instead of as startup
//!   parameters (pgbouncer 1.18 refuses unknown startup parameters), and sends no
//!   `extra_float_digits`.
//!
//! That costs two to three round trips more per transaction, measured in docs/deploying.md;
//! pgbouncer 1.21+ can instead track prepared statements itself (`max_prepared_statements`), and
//! then, like a direct connection, needs none of this.
use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, ExecResult,
    QueryResult, Statement, TransactionOptions, TransactionTrait,
};

/// The pool, and for a transaction-mode pooler the statement that opens every transaction.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) conn: DatabaseConnection,
    /// `Some` when Postgres sits behind a transaction-mode pooler.
    preamble: Option<Arc<str>>,
}

impl Db {
    /// `conn`, reached directly (or through a session-mode pooler).
    pub(crate) fn direct(conn: DatabaseConnection) -> Self {
        Self {
            conn,
            preamble: None,
        }
    }

    /// `conn`, reached through a transaction-mode pooler; `statement_timeout` is what
    /// `statement_timeout` and `idle_in_transaction_session_timeout` get (e.g. `5000ms`,
    /// `0` for none).
    pub(crate) fn transaction_pooled(conn: DatabaseConnection, statement_timeout: &str) -> Self {
        Self {
            conn,
            preamble: Some(Arc::from(preamble(statement_timeout))),
        }
    }

    /// Behind a transaction-mode pooler?
    pub(crate) fn is_transaction_pooled(&self) -> bool {
        self.preamble.is_some()
    }

    /// Starts a transaction (on SQLite with `BEGIN IMMEDIATE`).
    pub(crate) async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = if self.conn.get_database_backend() == DatabaseBackend::Sqlite {
            let opts = TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            };
            self.conn.begin_with_options(opts).await?
        } else {
            self.conn.begin().await?
        };
        self.open(txn).await
    }

    /// Sends the preamble, if there is one, on a transaction just begun.
    async fn open(&self, txn: DatabaseTransaction) -> Result<DatabaseTransaction, DbErr> {
        if let Some(preamble) = &self.preamble
            && let Err(e) = txn.execute_unprepared(preamble).await
        {
            let _ = txn.rollback().await;
            return Err(e);
        }
        Ok(txn)
    }

    /// Behind a transaction-mode pooler, a transaction for one lone statement (a plain
    /// `BEGIN`: this is Postgres); `None` straight on the pool.
    async fn alone(&self) -> Result<Option<DatabaseTransaction>, DbErr> {
        if self.preamble.is_none() {
            return Ok(None);
        }
        let txn = self.conn.begin().await?;
        Ok(Some(self.open(txn).await?))
    }
}

/// Ends the transaction of a lone statement that returned `result`.
async fn finish<T>(txn: DatabaseTransaction, result: Result<T, DbErr>) -> Result<T, DbErr> {
    match result {
        Ok(v) => {
            txn.commit().await?;
            Ok(v)
        }
        Err(e) => {
            // Given back now, not when the pool next touches the connection: until then a
            // pooler keeps its server connection for this client.
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// The one round trip that opens a transaction behind a transaction-mode pooler.
fn preamble(statement_timeout: &str) -> String {
    format!(
        "DEALLOCATE ALL; SET LOCAL statement_timeout = '{statement_timeout}'; \
         SET LOCAL idle_in_transaction_session_timeout = '{statement_timeout}'"
    )
}

#[async_trait::async_trait]
impl ConnectionTrait for Db {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self.alone().await? {
            None => self.conn.execute_raw(stmt).await,
            Some(txn) => {
                let result = txn.execute_raw(stmt).await;
                finish(txn, result).await
            }
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self.alone().await? {
            None => self.conn.execute_unprepared(sql).await,
            Some(txn) => {
                let result = txn.execute_unprepared(sql).await;
                finish(txn, result).await
            }
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self.alone().await? {
            None => self.conn.query_one_raw(stmt).await,
            Some(txn) => {
                let result = txn.query_one_raw(stmt).await;
                finish(txn, result).await
            }
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self.alone().await? {
            None => self.conn.query_all_raw(stmt).await,
            Some(txn) => {
                let result = txn.query_all_raw(stmt).await;
                finish(txn, result).await
            }
        }
    }
}
