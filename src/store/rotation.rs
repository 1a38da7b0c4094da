//! Refresh-token rotation, settled in batches (group commit).
//!
//! A rotation is a small write transaction, and on SQLite every write waits for the one writer:
//! what bounds the rate is not work but the round trips made while the write lock is held (each
//! statement is a hop to the driver's thread and back). So rotations go to one task per process,
//! which takes every request waiting (up to [`MAX_BATCH`]) and settles them together in one
//! transaction whose statement count does not grow with the batch: lock the sessions (Postgres),
//! read the presented tokens with their sessions and users, consume the current ones with one
//! conditional `UPDATE`, insert every successor with one `INSERT`, move every idle deadline with
//! one `UPDATE`. An idle server sends batches of one, so nothing waits for a timer.
//!
//! Each request stays all-or-nothing: the batch commits or none of it does. A batch holds at
//! most one request per token and per session; a second one waits for the next batch, where it
//! sees what the first did (which is what makes two tabs presenting one token a grace replay
//! rather than a race). Tokens that were already rotated (replays and reuse) are settled one by
//! one inside the same transaction: they are rare.
use std::collections::{HashMap, HashSet, VecDeque};

use entity::{refresh_tokens, sessions, users};
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction,
    EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{mpsc, oneshot};

use super::sessions::{EndReason, EndedSession, SessionInfo, SessionScope};
use super::types::ClientMeta;
use super::{Store, StoreError};
use crate::policy::{self, Decision, MAX_REPLAY_HOPS, Rotated};

/// The most rotations settled in one transaction.
pub const MAX_BATCH: usize = 64;

/// Requests waiting for the rotation task; senders wait when it is full.
const QUEUE: usize = 1024;

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
    Rotated { session: SessionInfo, email: String },
    /// The token was rotated moments ago (within the grace window): the session's current
    /// token, as the sealed links that lead to it from the presented token. The first link
    /// opens with the presented token, each next one with the token the previous one gave.
    Replayed {
        session: SessionInfo,
        email: String,
        chain: Vec<Vec<u8>>,
    },
    /// A rotated token came back outside the grace window: its session is now ended.
    Reused(EndedSession),
    /// Unknown token, or its session has expired, or its user is disabled.
    Invalid,
}

type Job = (RotateRequest, oneshot::Sender<Result<Rotation, StoreError>>);

/// The handle requests reach the rotation task through.
pub(super) type Rotations = mpsc::Sender<Job>;

/// Starts the rotation task for `store` (whose own `rotations` is `None`, so the task ends when
/// the last handle that can send to it is dropped).
pub(super) fn start(store: Store) -> Rotations {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(store, rx));
    tx
}

impl Store {
    /// Presents a refresh token. See [`Rotation`] for the outcomes.
    pub async fn rotate(&self, request: RotateRequest) -> Result<Rotation, StoreError> {
        let stopped = || StoreError::Internal("the rotation task has stopped".into());
        let queue = self.rotations.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        queue.send((request, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        let take = waiting.len().min(MAX_BATCH);
        let (requests, replies): (Vec<_>, Vec<_>) = waiting.drain(..take).unzip();
        // A task per batch: a panic fails this batch's requests, not every later one.
        let s = store.clone();
        let settled = tokio::spawn(async move {
            let outcomes = s.settle(&requests).await;
            (requests, outcomes)
        })
        .await;
        match settled {
            Ok((requests, Ok(outcomes))) => {
                let mut deferred = Vec::new();
                for ((request, reply), outcome) in requests.into_iter().zip(replies).zip(outcomes) {
                    match outcome {
                        Some(rotation) => {
                            // The requester may have gone (client disconnected): nothing to do.
                            let _ = reply.send(Ok(rotation));
                        }
                        None => deferred.push((request, reply)),
                    }
                }
                // First in the next batch, in their order.
                for job in deferred.into_iter().rev() {
                    waiting.push_front(job);
                }
            }
            Ok((_, Err(err))) => {
                tracing::error!(error = %err, requests = replies.len(), "rotation batch failed");
                for reply in replies {
                    let _ = reply.send(Err(err.duplicate()));
                }
            }
            Err(panic) => {
                tracing::error!(error = %panic, "rotation batch panicked");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Internal("rotation failed".into())));
                }
            }
        }
    }
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
    email: String,
    disabled: bool,
}

/// A presented token as a rotation uses it: read once, its session already assembled.
#[derive(Debug)]
struct Found {
    generation: i64,
    used_at: Option<i64>,
    session: SessionInfo,
    email: String,
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
            },
            email: p.email,
            disabled: p.disabled,
        }
    }
}

impl Store {
    /// Settles `requests` in one transaction. `None` for a request that must wait for the next
    /// batch (its token or session is already in this one).
    async fn settle(
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
                email: f.email.clone(),
            });
        }
        Ok(outcomes)
    }
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
        .column((u, U::Email))
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

/// Consumes every current token in `current` and makes its successor current: three
/// statements whatever the batch size.
async fn consume(
    txn: &DatabaseTransaction,
    requests: &[RotateRequest],
    current: &[(usize, &Found)],
) -> Result<(), StoreError> {
    use refresh_tokens::Column as T;
    use sessions::Column as S;
    // One CASE per column, with an arm per token (or session) of the batch.
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
    // The read above was made under the write lock (SQLite) or the sessions' row locks
    // (Postgres), so every one of these tokens is still current; `used_at IS NULL` keeps the
    // statement honest all the same.
    let consumed = refresh_tokens::Entity::update_many()
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
        .exec(txn)
        .await?
        .rows_affected;
    if consumed != current.len() as u64 {
        return Err(StoreError::Internal(format!(
            "rotation consumed {consumed} of {} current tokens",
            current.len()
        )));
    }
    refresh_tokens::Entity::insert_many(current.iter().map(|(i, p)| {
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
    .exec_without_returning(txn)
    .await?;
    sessions::Entity::update_many()
        .col_expr(
            S::LastRefreshedAt,
            refreshed_at.finally(Expr::col(S::LastRefreshedAt)).into(),
        )
        .col_expr(
            S::IdleExpiresAt,
            idle_expires_at.finally(Expr::col(S::IdleExpiresAt)).into(),
        )
        .filter(S::Id.is_in(current.iter().map(|(_, p)| p.session.id.clone())))
        .exec(txn)
        .await?;
    Ok(())
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
            email: f.email.clone(),
            chain,
        }),
        _ => {
            let session = &f.session;
            let mut ended = super::sessions::end_sessions_in(
                txn,
                &session.user_id,
                &SessionScope::One(session.id.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DbConfig;
    use crate::store::{NewSession, NewUser};
    use crate::tokens::RefreshToken;

    const NOW: i64 = 1_800_000_000;

    struct Scratch {
        store: Store,
        path: std::path::PathBuf,
        user_id: String,
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }

    async fn scratch() -> Scratch {
        let path = std::env::temp_dir().join(format!("authd-rotation-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&DbConfig {
            database_url: format!("sqlite://{}?mode=rwc", path.display()),
            ..DbConfig::default()
        })
        .await
        .expect("connect");
        store.migrate().await.expect("migrate");
        let user_id = uuid::Uuid::new_v4().to_string();
        store
            .create_user(NewUser {
                id: user_id.clone(),
                email: "batch@example.com".into(),
                password_hash: "unused".into(),
                now: NOW,
            })
            .await
            .expect("user");
        Scratch {
            store,
            path,
            user_id,
        }
    }

    fn token() -> RefreshToken {
        RefreshToken::mint().expect("os random")
    }

    async fn session(s: &Scratch) -> RefreshToken {
        let t = token();
        s.store
            .create_session(NewSession {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: s.user_id.clone(),
                now: NOW,
                idle_secs: 3600,
                max_secs: 7200,
                meta: ClientMeta::default(),
                token_hash: t.hash(),
                verified_password_hash: "unused".into(),
                max_sessions: 0,
            })
            .await
            .expect("session")
            .expect("credentials hold");
        t
    }

    /// A request presenting `t` at `now`, and the successor it would get.
    fn present(t: &RefreshToken, now: i64) -> (RotateRequest, RefreshToken) {
        let next = token();
        let request = RotateRequest {
            presented: t.hash(),
            successor: Successor {
                hash: next.hash(),
                sealed: t.seal(&next).expect("seal"),
            },
            now,
            idle_secs: 3600,
            grace_secs: 10,
            meta: ClientMeta::default(),
        };
        (request, next)
    }

    async fn rotate(s: &Scratch, t: &RefreshToken, now: i64) -> RefreshToken {
        let (request, next) = present(t, now);
        match s.store.rotate(request).await.expect("rotate") {
            Rotation::Rotated { .. } => next,
            other => panic!("expected a rotation, got {other:?}"),
        }
    }

    /// Every kind of request in one transaction, each settled by its own token.
    #[tokio::test]
    async fn one_batch_settles_each_request_on_its_own_terms() {
        let s = scratch().await;
        let a0 = session(&s).await;
        let b0 = session(&s).await;
        let b1 = rotate(&s, &b0, NOW).await;
        let c0 = session(&s).await;
        let c1 = rotate(&s, &c0, NOW).await;
        let d0 = session(&s).await;

        let (ra, a1) = present(&a0, NOW + 1);
        let (ra_again, _) = present(&a0, NOW + 1);
        let (rb, _) = present(&b0, NOW + 1);
        let (rc, _) = present(&c0, NOW + 20); // past c0's window: reuse
        let (rx, _) = present(&token(), NOW + 1);
        let (rd, d1) = present(&d0, NOW + 1);
        let outcomes = s
            .store
            .settle(&[ra, ra_again, rb, rc, rx, rd])
            .await
            .expect("settle");

        assert!(matches!(
            &outcomes[0],
            Some(Rotation::Rotated { session, email })
                if session.last_refreshed_at == NOW + 1
                    && session.idle_expires_at == NOW + 1 + 3600
                    && email == "batch@example.com"
        ));
        assert!(
            outcomes[1].is_none(),
            "the same token waits for the next batch"
        );
        match &outcomes[2] {
            Some(Rotation::Replayed { chain, .. }) => {
                assert_eq!(chain.len(), 1);
                assert_eq!(b0.open(&chain[0]), Some(b1.clone()));
            }
            other => panic!("expected a replay, got {other:?}"),
        }
        assert!(matches!(outcomes[3], Some(Rotation::Reused(_))));
        assert!(matches!(outcomes[4], Some(Rotation::Invalid)));
        assert!(matches!(outcomes[5], Some(Rotation::Rotated { .. })));

        // Each token got its own successor: both chains go on, and the consumed tokens are
        // now rotated ones (replays, within the window).
        rotate(&s, &a1, NOW + 2).await;
        rotate(&s, &d1, NOW + 2).await;
        let (again, _) = present(&a0, NOW + 2);
        assert!(matches!(
            s.store.rotate(again).await.expect("rotate"),
            Rotation::Replayed { .. }
        ));
        // The replay left b1 current; the reused family is gone.
        let (rb1, _) = present(&b1, NOW + 2);
        assert!(matches!(
            s.store.rotate(rb1).await.expect("rotate"),
            Rotation::Rotated { .. }
        ));
        let (rc1, _) = present(&c1, NOW + 2);
        assert!(matches!(
            s.store.rotate(rc1).await.expect("rotate"),
            Rotation::Invalid
        ));
    }

    #[tokio::test]
    async fn two_tokens_of_one_session_are_never_settled_in_one_batch() {
        let s = scratch().await;
        let t0 = session(&s).await;
        let t1 = rotate(&s, &t0, NOW).await;
        let (current, _) = present(&t1, NOW + 1);
        let (replay, _) = present(&t0, NOW + 1);
        let outcomes = s.store.settle(&[current, replay]).await.expect("settle");
        assert!(matches!(outcomes[0], Some(Rotation::Rotated { .. })));
        assert!(outcomes[1].is_none());
    }

    #[tokio::test]
    async fn a_replay_follows_the_sealed_links_to_the_current_token() {
        let s = scratch().await;
        let t0 = session(&s).await;
        let t1 = rotate(&s, &t0, NOW).await;
        let t2 = rotate(&s, &t1, NOW).await;
        let t3 = rotate(&s, &t2, NOW).await;
        let (late, _) = present(&t0, NOW + 5);
        let Rotation::Replayed { chain, .. } = s.store.rotate(late).await.expect("rotate") else {
            panic!("expected a replay");
        };
        let current = chain
            .iter()
            .try_fold(t0, |t, sealed| t.open(sealed))
            .expect("every link opens with the token before it");
        assert_eq!(current, t3);
    }

    /// A batch's consume must be planned on the primary key however many hashes it lists: on
    /// the full `used_at` index SQLite scanned every current token once the list held ten.
    #[tokio::test]
    async fn the_consume_of_a_full_batch_is_planned_on_the_primary_key() {
        use sea_orm::{ConnectionTrait, Statement};
        let s = scratch().await;
        let list = vec!["?"; MAX_BATCH].join(", ");
        let values: Vec<sea_orm::Value> = (0..MAX_BATCH).map(|i| vec![i as u8].into()).collect();
        let plan = s
            .store
            .connection()
            .query_all_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                format!(
                    "EXPLAIN QUERY PLAN UPDATE refresh_tokens SET used_at = 1 \
                     WHERE token_hash IN ({list}) AND used_at IS NULL"
                ),
                values,
            ))
            .await
            .expect("explain");
        let steps: Vec<String> = plan
            .iter()
            .map(|row| row.try_get_by_index::<String>(3).expect("detail"))
            .collect();
        assert!(
            steps
                .iter()
                .all(|d| d.contains("sqlite_autoindex_refresh_tokens_1")),
            "{steps:?}"
        );
    }
}
