//! Refresh-token rotation, settled in batches (group commit).
//!
//! A rotation is a small write transaction, and on SQLite every write waits for the one writer:
//! what bounds the rate is not work but the round trips made while the write lock is held (each
//! statement is a hop to the driver's thread and back). So rotations go to one task per process,
//! which takes every request waiting (up to [`MAX_BATCH`]) and settles them together in one
//! transaction whose statement count does not grow with the batch: lock the sessions (Postgres),
//! read the presented tokens with their sessions and users, consume the current ones with one
//! conditional `UPDATE`, insert every successor with one `INSERT`, move every idle deadline with
//! one `UPDATE`. An idle server sends batches of one, so nothing waits for a timer. On Postgres
//! the current tokens go first, in one statement outside the transaction ([`postgres`]).
//!
//! Each request stays all-or-nothing: the transaction commits or none of it does (and on
//! Postgres the statement before it, which commits on its own, likewise). A batch holds at
//! most one request per token and per session; a second one waits for the next batch, where it
//! sees what the first did (which is what makes two tabs presenting one token a grace replay
//! rather than a race). Tokens that were already rotated (replays and reuse) are settled one by
//! one inside the same transaction: they are rare.
use std::collections::{HashMap, HashSet};

use entity::{refresh_tokens, sessions, users};
use sea_orm::sea_query::{
    CaseStatement, CommonTableExpression, Expr, ExprTrait, InsertStatement, Query,
    SubQueryStatement, UpdateStatement, WithClause,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction,
    EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement,
    Value,
};

use super::ending::{EndReason, EndedSession, SessionScope, end_sessions_in};
use super::sessions::SessionInfo;
use super::types::ClientMeta;
use super::users::Profile;
use super::{Store, StoreError};
use crate::ids::{SessionId, UserId};
use crate::policy::{self, Decision, MAX_REPLAY_HOPS, Rotated};

mod batch;
mod postgres;
#[cfg(test)]
mod tests;

pub(super) use batch::{Rotations, start};

/// The most rotations settled in one transaction.
pub const MAX_BATCH: usize = 64;

/// A refresh token presented for rotation.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    /// SHA-256 of the presented token.
    pub presented: Vec<u8>,
    /// The token that replaces it if it is current.
    pub successor: Successor,
    pub now: i64,
    /// The session's idle limit, from now.
    pub idle_secs: i64,
    pub grace_secs: i64,
    pub meta: ClientMeta,
}

/// The token that replaces the presented one if it is current.
#[derive(Debug, Clone)]
pub struct Successor {
    pub hash: Vec<u8>,
    /// The successor sealed under the presented token (for grace replays).
    pub sealed: Vec<u8>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Rotation {
    /// The token was current: it is consumed and the successor is now current.
    Rotated {
        session: SessionInfo,
        profile: Profile,
    },
    /// The token was rotated moments ago (within the grace window): the session's current
    /// token, as the sealed links that lead to it from the presented token. The first link
    /// opens with the presented token, each next one with the token the previous one gave.
    Replayed {
        session: SessionInfo,
        profile: Profile,
        chain: Vec<Vec<u8>>,
    },
    /// A rotated token came back outside the grace window: its session is now ended.
    Reused(EndedSession),
    /// Unknown token, or its session has expired, or its user is disabled.
    Invalid,
}

/// A presented token with its session and user: what a rotation decides on.
#[derive(Debug, FromQueryResult)]
struct Presented {
    token_hash: Vec<u8>,
    session_id: String,
    generation: i64,
    used_at: Option<i64>,
    user_id: String,
    session_created_at: i64,
    last_refreshed_at: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
    user_agent: Option<String>,
    ip: Option<String>,
    persistent: bool,
    email: String,
    email_verified: bool,
    app_metadata: Option<String>,
    disabled: bool,
}

/// A presented token as a rotation uses it: read once, its session already assembled.
#[derive(Debug)]
struct Found {
    generation: i64,
    used_at: Option<i64>,
    session: SessionInfo,
    profile: Profile,
    disabled: bool,
}

impl From<Presented> for Found {
    fn from(p: Presented) -> Self {
        Self {
            generation: p.generation,
            used_at: p.used_at,
            session: SessionInfo {
                id: p.session_id,
                user_id: p.user_id,
                created_at: p.session_created_at,
                last_refreshed_at: p.last_refreshed_at,
                idle_expires_at: p.idle_expires_at,
                absolute_expires_at: p.absolute_expires_at,
                user_agent: p.user_agent,
                ip: p.ip,
                persistent: p.persistent,
            },
            profile: Profile {
                email: p.email,
                email_verified: p.email_verified,
                app_metadata: p.app_metadata,
            },
            disabled: p.disabled,
        }
    }
}

/// What became of each request of a batch: `None` for one that must wait for the next batch
/// (its token or session is already in this one).
type Settled = Vec<Option<Result<Rotation, StoreError>>>;

impl Store {
    /// Settles a batch. On Postgres the current tokens go first, in one statement
    /// ([`postgres`]); only what that leaves (replays, reuse, unknown or ended) needs the
    /// transaction, and its failure is not theirs.
    async fn settle(&self, requests: &[RotateRequest]) -> Settled {
        if self.backend() != DatabaseBackend::Postgres {
            return match self.settle_in_transaction(requests).await {
                Ok(outcomes) => outcomes.into_iter().map(|o| o.map(Ok)).collect(),
                Err(err) => failed(requests.len(), &err),
            };
        }
        let mut seen = HashSet::new();
        let unique: Vec<usize> = (0..requests.len())
            .filter(|&i| seen.insert(&requests[i].presented))
            .collect();
        let firsts: Vec<&RotateRequest> = unique.iter().map(|&i| &requests[i]).collect();
        let mut rotated = match self.rotate_current(&firsts).await {
            Ok(rotated) => rotated,
            Err(err) => return failed(requests.len(), &err),
        };
        // A token presented twice: the second waits for the next batch.
        let mut outcomes: Settled = (0..requests.len()).map(|_| None).collect();
        let mut rest = Vec::new();
        for i in unique {
            match rotated.remove(&requests[i].presented) {
                Some(rotation) => outcomes[i] = Some(Ok(rotation)),
                None => rest.push(i),
            }
        }
        if !rest.is_empty() {
            let others: Vec<RotateRequest> = rest.iter().map(|&i| requests[i].clone()).collect();
            match self.settle_in_transaction(&others).await {
                Ok(settled) => {
                    for (i, o) in rest.into_iter().zip(settled) {
                        outcomes[i] = o.map(Ok);
                    }
                }
                Err(err) => {
                    for i in rest {
                        outcomes[i] = Some(Err(err.duplicate()));
                    }
                }
            }
        }
        outcomes
    }

    /// Settles `requests` in one transaction. `None` for a request that must wait for the next
    /// batch (its token or session is already in this one).
    async fn settle_in_transaction(
        &self,
        requests: &[RotateRequest],
    ) -> Result<Vec<Option<Rotation>>, StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        let hashes: Vec<Vec<u8>> = requests.iter().map(|r| r.presented.clone()).collect();
        if self.backend() == DatabaseBackend::Postgres {
            // Every change to a family happens under its session row's lock, taken before any
            // token row is touched and in id order, so concurrent rotations and revocations (on
            // this instance or another) queue instead of deadlocking. SQLite's BEGIN IMMEDIATE
            // already serialises writers.
            let _: Vec<String> = sessions::Entity::find()
                .select_only()
                .column(sessions::Column::Id)
                .filter(
                    sessions::Column::Id.in_subquery(
                        Query::select()
                            .column(refresh_tokens::Column::SessionId)
                            .from(refresh_tokens::Entity)
                            .and_where(refresh_tokens::Column::TokenHash.is_in(hashes.clone()))
                            .to_owned(),
                    ),
                )
                .order_by_asc(sessions::Column::Id)
                .lock_exclusive()
                .into_tuple()
                .all(&txn)
                .await?;
        }
        let found: HashMap<Vec<u8>, Found> = read_presented(&txn, hashes)
            .await?
            .into_iter()
            .map(|p| (p.token_hash.clone(), Found::from(p)))
            .collect();

        let mut outcomes = Vec::with_capacity(requests.len());
        let mut tokens = HashSet::new();
        let mut families = HashSet::new();
        let mut current = Vec::new(); // (index in requests, what was read)
        for (i, request) in requests.iter().enumerate() {
            let Some(f) = found.get(&request.presented) else {
                outcomes.push(Some(Rotation::Invalid));
                continue;
            };
            // The same token, or another token of the same session, is already in this batch.
            if !tokens.insert(&request.presented) || !families.insert(&f.session.id) {
                outcomes.push(None);
                continue;
            }
            if !f.session.is_live(request.now) || f.disabled {
                outcomes.push(Some(Rotation::Invalid));
            } else if let Some(used_at) = f.used_at {
                outcomes.push(Some(settle_rotated(&txn, request, f, used_at).await?));
            } else {
                outcomes.push(None); // filled in below
                current.push((i, f));
            }
        }

        if !current.is_empty() {
            consume(&txn, requests, &current).await?;
        }
        txn.commit().await?;
        for (i, f) in current {
            let r = &requests[i];
            let session = SessionInfo {
                last_refreshed_at: r.now,
                idle_expires_at: idle_deadline(r, &f.session),
                ..f.session.clone()
            };
            outcomes[i] = Some(Rotation::Rotated {
                session,
                profile: f.profile.clone(),
            });
        }
        Ok(outcomes)
    }
}

/// Every request of a batch failed with `err`.
fn failed(n: usize, err: &StoreError) -> Settled {
    tracing::error!(error = %err, requests = n, "rotation batch failed");
    (0..n).map(|_| Some(Err(err.duplicate()))).collect()
}

fn idle_deadline(r: &RotateRequest, session: &SessionInfo) -> i64 {
    policy::idle_deadline(r.now, r.idle_secs, session.absolute_expires_at)
}

/// The presented tokens that exist, joined with their sessions and users: one statement.
async fn read_presented(
    txn: &DatabaseTransaction,
    hashes: Vec<Vec<u8>>,
) -> Result<Vec<Presented>, StoreError> {
    use refresh_tokens::Column as T;
    use sessions::Column as S;
    use users::Column as U;
    let (rt, s, u) = (refresh_tokens::Entity, sessions::Entity, users::Entity);
    let query = Query::select()
        .column((rt, T::TokenHash))
        .column((rt, T::SessionId))
        .column((rt, T::Generation))
        .column((rt, T::UsedAt))
        .column((s, S::UserId))
        .expr_as(Expr::col((s, S::CreatedAt)), "session_created_at")
        .column((s, S::LastRefreshedAt))
        .column((s, S::IdleExpiresAt))
        .column((s, S::AbsoluteExpiresAt))
        .column((s, S::UserAgent))
        .column((s, S::Ip))
        .column((s, S::Persistent))
        .column((u, U::Email))
        .column((u, U::EmailVerified))
        .column((u, U::AppMetadata))
        .column((u, U::Disabled))
        .from(rt)
        .inner_join(s, Expr::col((s, S::Id)).equals((rt, T::SessionId)))
        .inner_join(u, Expr::col((u, U::Id)).equals((s, S::UserId)))
        .and_where(Expr::col((rt, T::TokenHash)).is_in(hashes))
        .to_owned();
    Ok(
        Presented::find_by_statement(txn.get_database_backend().build(&query))
            .all(txn)
            .await?,
    )
}

/// Consumes every current token in `current` and makes its successor current: three changes
/// whatever the batch size, sent to the database in one call (one round trip on Postgres, one
/// hop to the driver's thread on SQLite).
async fn consume(
    txn: &DatabaseTransaction,
    requests: &[RotateRequest],
    current: &[(usize, &Found)],
) -> Result<(), StoreError> {
    let (mut tokens, mut successors, mut sessions) = consume_statements(requests, current);
    let backend = txn.get_database_backend();
    let n = current.len() as i64;
    // The read before was made under the write lock (SQLite) or the sessions' row locks
    // (Postgres), so every one of these tokens is still current and every session there; the
    // counts keep the change honest all the same: anything short rolls the batch back.
    let changed = if backend == DatabaseBackend::Postgres {
        // Data-modifying CTEs: the three changes and their row counts in one statement.
        let count = |cte: &str| Expr::cust(format!("(SELECT COUNT(*) FROM {cte})"));
        let cte = |name: &str, query: SubQueryStatement| {
            CommonTableExpression::new()
                .query(query)
                .table_name(name.to_owned())
                .to_owned()
        };
        use refresh_tokens::Column as T;
        let query = WithClause::new()
            .cte(cte(
                "consumed",
                tokens.returning_col(T::TokenHash).to_owned().into(),
            ))
            .cte(cte(
                "inserted",
                successors.returning_col(T::TokenHash).to_owned().into(),
            ))
            .cte(cte(
                "refreshed",
                sessions
                    .returning_col(sessions::Column::Id)
                    .to_owned()
                    .into(),
            ))
            .to_owned()
            .query(
                Query::select()
                    .expr_as(count("consumed"), "consumed")
                    .expr_as(count("inserted"), "inserted")
                    .expr_as(count("refreshed"), "refreshed")
                    .to_owned(),
            );
        let counts: Option<(i64, i64, i64)> = txn
            .query_one_raw(backend.build(&query))
            .await?
            .map(|row| row.try_get_many_by_index())
            .transpose()?;
        counts.map_or(0, |(a, b, c)| Ord::min(Ord::min(a, b), c) * 3)
    } else {
        // SQLite takes several statements in one call, binding the values in order.
        let built = [
            backend.build(&tokens),
            backend.build(&successors),
            backend.build(&sessions),
        ];
        let sql = built
            .iter()
            .map(|s| s.sql.as_str())
            .collect::<Vec<_>>()
            .join(";\n");
        let values: Vec<Value> = built
            .into_iter()
            .flat_map(|s| s.values.map(|v| v.0).unwrap_or_default())
            .collect();
        let done = txn
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        // Each statement changes at most `n` rows, so `3n` in all means `n` each.
        i64::try_from(done.rows_affected()).unwrap_or(0)
    };
    if changed != 3 * n {
        return Err(StoreError::Internal(format!(
            "rotation changed {changed} rows for {n} current tokens (expected {})",
            3 * n
        )));
    }
    Ok(())
}

/// The three changes of [`consume`]: consume the presented tokens, insert their successors,
/// move their sessions' last refresh and idle deadline. One CASE per column, with an arm per
/// token (or session) of the batch.
fn consume_statements(
    requests: &[RotateRequest],
    current: &[(usize, &Found)],
) -> (UpdateStatement, InsertStatement, UpdateStatement) {
    use refresh_tokens::Column as T;
    use sessions::Column as S;
    let mut used_at = CaseStatement::new();
    let mut successor_hash = CaseStatement::new();
    let mut successor_sealed = CaseStatement::new();
    let mut refreshed_at = CaseStatement::new();
    let mut idle_expires_at = CaseStatement::new();
    for (i, p) in current {
        let r = &requests[*i];
        let this_token = || Expr::col(T::TokenHash).eq(r.presented.clone());
        let this_session = || Expr::col(S::Id).eq(p.session.id.clone());
        used_at = used_at.case(this_token(), r.now);
        successor_hash = successor_hash.case(this_token(), r.successor.hash.clone());
        successor_sealed = successor_sealed.case(this_token(), r.successor.sealed.clone());
        refreshed_at = refreshed_at.case(this_session(), r.now);
        idle_expires_at = idle_expires_at.case(this_session(), idle_deadline(r, &p.session));
    }
    let tokens = refresh_tokens::Entity::update_many()
        .col_expr(T::UsedAt, used_at.finally(Expr::col(T::UsedAt)).into())
        .col_expr(
            T::SuccessorHash,
            successor_hash.finally(Expr::col(T::SuccessorHash)).into(),
        )
        .col_expr(
            T::SuccessorSealed,
            successor_sealed
                .finally(Expr::col(T::SuccessorSealed))
                .into(),
        )
        .filter(T::TokenHash.is_in(current.iter().map(|(i, _)| requests[*i].presented.clone())))
        .filter(T::UsedAt.is_null())
        .into_query();
    let successors = refresh_tokens::Entity::insert_many(current.iter().map(|(i, p)| {
        let r = &requests[*i];
        refresh_tokens::ActiveModel {
            token_hash: Set(r.successor.hash.clone()),
            session_id: Set(p.session.id.clone()),
            generation: Set(p.generation + 1),
            created_at: Set(r.now),
            used_at: Set(None),
            successor_hash: Set(None),
            successor_sealed: Set(None),
        }
    }))
    .into_query();
    let sessions = sessions::Entity::update_many()
        .col_expr(
            S::LastRefreshedAt,
            refreshed_at.finally(Expr::col(S::LastRefreshedAt)).into(),
        )
        .col_expr(
            S::IdleExpiresAt,
            idle_expires_at.finally(Expr::col(S::IdleExpiresAt)).into(),
        )
        .filter(S::Id.is_in(current.iter().map(|(_, p)| p.session.id.clone())))
        .into_query();
    (tokens, successors, sessions)
}

/// A token that was already rotated: a grace replay (the session's current token, reached
/// through the sealed links) or reuse (the session ends).
async fn settle_rotated(
    txn: &DatabaseTransaction,
    request: &RotateRequest,
    f: &Found,
    used_at: i64,
) -> Result<Rotation, StoreError> {
    let chain = if policy::in_grace_window(used_at, request.now, request.grace_secs) {
        sealed_links(txn, f).await?
    } else {
        None
    };
    let rotated = Rotated {
        used_at,
        hops_to_current: chain.as_ref().map(Vec::len),
    };
    match (
        policy::decide(rotated, request.now, request.grace_secs),
        chain,
    ) {
        (Decision::Replay, Some(chain)) => Ok(Rotation::Replayed {
            session: f.session.clone(),
            profile: f.profile.clone(),
            chain,
        }),
        _ => {
            let session = &f.session;
            let mut ended = end_sessions_in(
                txn,
                &UserId::from(session.user_id.as_str()),
                &SessionScope::One(SessionId::from(session.id.as_str())),
                EndReason::Reused,
                request.now,
                &request.meta,
            )
            .await?;
            Ok(ended.pop().map_or(Rotation::Invalid, Rotation::Reused))
        }
    }
}

/// The sealed links from the presented (rotated) token to its session's current token, or
/// `None` when the chain is broken (a link was pruned) or longer than [`MAX_REPLAY_HOPS`].
async fn sealed_links(
    txn: &DatabaseTransaction,
    f: &Found,
) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    use refresh_tokens::Column as T;
    let rows: Vec<(i64, Option<i64>, Option<Vec<u8>>)> = refresh_tokens::Entity::find()
        .select_only()
        .columns([T::Generation, T::UsedAt, T::SuccessorSealed])
        .filter(T::SessionId.eq(f.session.id.clone()))
        .filter(T::Generation.gte(f.generation))
        .order_by_asc(T::Generation)
        .limit(MAX_REPLAY_HOPS as u64 + 1)
        .into_tuple()
        .all(txn)
        .await?;
    let mut links = Vec::new();
    for (k, (generation, used_at, sealed)) in rows.into_iter().enumerate() {
        if generation != f.generation + k as i64 {
            return Ok(None);
        }
        if used_at.is_none() {
            return Ok(Some(links));
        }
        match sealed {
            Some(s) => links.push(s),
            None => return Ok(None),
        }
    }
    Ok(None)
}
