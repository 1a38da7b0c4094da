//! Postgres: a batch's current tokens rotated in one statement, outside any transaction.
//!
//! On Postgres the cost of a batch is its round trips, each the wake-up of a backend process
//! and then of a tokio worker; on two busy cores each one waits for a core. The transaction of
//! the parent module makes five (`BEGIN`, the session lock, the read, the change, `COMMIT`);
//! this statement is one, and a single statement commits whole or not at all.
//!
//! What keeps it as safe as the transaction, in `READ COMMITTED`:
//! - `locked` takes the sessions' row locks in id order, as every other writer of a family
//!   does (the transaction here, session endings), so they queue instead of deadlocking. A
//!   locked row is read in its newest version, and a session ended meanwhile (deleted) is
//!   not returned at all.
//! - A token is changed only joined to its locked session, so no token lock is taken before
//!   its session's. The change's own `used_at IS NULL` is checked again on the token's newest
//!   version (Postgres re-evaluates an `UPDATE`'s conditions on a row changed since the
//!   statement began), so a token another instance rotated while this one waited is left alone.
//! - Liveness is decided on the locked session and the user as read: disabling a user ends its
//!   sessions under the same session locks.
//! - The successors are inserted from the rows the change returned and the sessions moved from
//!   the same rows, so the three changes cannot disagree.
//!
//! Every presented token this does not rotate (unknown, already rotated, ended, expired) is
//! left as it was and settled by the transaction, which decides on it exactly as before.
use std::collections::HashMap;

use sea_orm::{DatabaseBackend, FromQueryResult, Statement, Value};

use super::{Found, Presented, RotateRequest, Rotation};
use crate::store::{Store, StoreError};

/// The statement; `{requests}` becomes one `VALUES` row per request. The liveness test and the
/// new idle deadline are [`crate::policy::is_live`] and [`crate::policy::idle_deadline`].
const ROTATE_CURRENT: &str = "\
WITH req (token_hash, successor_hash, successor_sealed, now, idle_secs) AS (VALUES {requests}),
locked AS MATERIALIZED (
    SELECT s.id, s.user_id, s.created_at, s.idle_expires_at, s.absolute_expires_at,
           s.user_agent, s.ip, s.persistent
    FROM sessions s
    WHERE s.id IN (SELECT t.session_id FROM refresh_tokens t JOIN req r ON r.token_hash = t.token_hash)
    ORDER BY s.id
    FOR UPDATE
),
consumed AS (
    UPDATE refresh_tokens t
    SET used_at = r.now, successor_hash = r.successor_hash, successor_sealed = r.successor_sealed
    FROM req r, locked l, users u
    WHERE t.token_hash = r.token_hash AND t.used_at IS NULL
      AND l.id = t.session_id AND r.now < LEAST(l.idle_expires_at, l.absolute_expires_at)
      AND u.id = l.user_id AND NOT u.disabled
    RETURNING t.token_hash, t.session_id, t.generation, r.successor_hash, r.now,
              LEAST(r.now + r.idle_secs, l.absolute_expires_at) AS idle_expires_at
),
inserted AS (
    INSERT INTO refresh_tokens (token_hash, session_id, generation, created_at)
    SELECT successor_hash, session_id, generation + 1, now FROM consumed
),
refreshed AS (
    UPDATE sessions s SET last_refreshed_at = c.now, idle_expires_at = c.idle_expires_at
    FROM consumed c WHERE s.id = c.session_id
)
SELECT c.token_hash, c.session_id, c.generation, c.now AS used_at, l.user_id,
       l.created_at AS session_created_at, c.now AS last_refreshed_at, c.idle_expires_at,
       l.absolute_expires_at, l.user_agent, l.ip, l.persistent,
       u.email, u.email_verified, u.app_metadata, u.disabled
FROM consumed c JOIN locked l ON l.id = c.session_id JOIN users u ON u.id = l.user_id";

impl Store {
    /// Rotates every request whose token is current, its session live and its user enabled,
    /// in one statement; the answer holds those, by presented token. `requests` holds each
    /// token once.
    pub(super) async fn rotate_current(
        &self,
        requests: &[&RotateRequest],
    ) -> Result<HashMap<Vec<u8>, Rotation>, StoreError> {
        // Each row as the transaction's read would see the token now: consumed, its session
        // moved on.
        let rows = Presented::find_by_statement(rotate_current_statement(requests))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|p| {
                let hash = p.token_hash.clone();
                let Found {
                    session, profile, ..
                } = Found::from(p);
                (hash, Rotation::Rotated { session, profile })
            })
            .collect())
    }
}

fn rotate_current_statement(requests: &[&RotateRequest]) -> Statement {
    let mut values: Vec<Value> = Vec::with_capacity(requests.len() * 5);
    let mut rows = Vec::with_capacity(requests.len());
    for r in requests {
        let n = values.len();
        rows.push(format!(
            "(${}::bytea, ${}::bytea, ${}::bytea, ${}::bigint, ${}::bigint)",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5
        ));
        values.extend([
            r.presented.clone().into(),
            r.successor.hash.clone().into(),
            r.successor.sealed.clone().into(),
            r.now.into(),
            r.idle_secs.into(),
        ]);
    }
    let sql = ROTATE_CURRENT.replace("{requests}", &rows.join(", "));
    Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values)
}
