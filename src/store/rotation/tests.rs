//! The batch settles each request on its own terms.
use super::*;
use crate::config::DbConfig;
use crate::store::{NewSession, NewUser};
use crate::tokens::RefreshToken;

const NOW: i64 = 1_800_000_000;

struct Scratch {
    store: Store,
    place: Place,
    user_id: String,
}

/// Where the scratch database is: an SQLite file, or (with `TEST_DATABASE_URL`, as `.ci/run`
/// sets it for the Postgres suite) a Postgres database of its own.
enum Place {
    Sqlite(std::path::PathBuf),
    Postgres { admin: String, name: String },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match &self.place {
            Place::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Place::Postgres { admin, name } => {
                // A thread of its own: drop runs on the test's runtime, which cannot block.
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let admin = admin.clone();
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let conn = sea_orm::Database::connect(admin).await.ok()?;
                        conn.execute_unprepared(&sql).await.ok()
                    })
                })
                .join();
            }
        }
    }
}

/// A scratch database on the backend the suite runs on.
async fn scratch() -> Scratch {
    let postgres = std::env::var("TEST_DATABASE_URL").ok();
    scratch_on(postgres.filter(|url| url.starts_with("postgres"))).await
}

/// A scratch database: on Postgres (a new database beside `postgres_admin`'s), else SQLite.
async fn scratch_on(postgres_admin: Option<String>) -> Scratch {
    let name = format!("authd_t_{}", uuid::Uuid::new_v4().simple());
    let (database_url, place) = match postgres_admin {
        Some(admin) => {
            let conn = sea_orm::Database::connect(admin.clone())
                .await
                .expect("connect TEST_DATABASE_URL");
            conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the scratch database");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            (format!("{base}/{name}"), Place::Postgres { admin, name })
        }
        None => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            (
                format!("sqlite://{}?mode=rwc", path.display()),
                Place::Sqlite(path),
            )
        }
    };
    let store = Store::connect(&DbConfig {
        database_url,
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
            email_verified: false,
            created_by: None,
        })
        .await
        .expect("user");
    Scratch {
        store,
        place,
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
            persistent: true,
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
    let outcomes = settled(s.store.settle(&[ra, ra_again, rb, rc, rx, rd]).await);

    assert!(matches!(
        &outcomes[0],
        Some(Rotation::Rotated { session, profile })
            if session.last_refreshed_at == NOW + 1
                && session.idle_expires_at == NOW + 1 + 3600
                && profile.email == "batch@example.com"
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
    let (current, t2) = present(&t1, NOW + 1);
    let (replay, _) = present(&t0, NOW + 1);
    let outcomes = settled(s.store.settle(&[current, replay]).await);
    assert!(matches!(outcomes[0], Some(Rotation::Rotated { .. })));
    if s.store.backend() == DatabaseBackend::Postgres {
        // The current token went in its own statement, committed before the replay was
        // settled: the replay sees the rotation and leads to its successor.
        let Some(Rotation::Replayed { chain, .. }) = &outcomes[1] else {
            panic!("expected a replay, got {:?}", outcomes[1]);
        };
        let reached = chain
            .iter()
            .try_fold(t0.clone(), |t, sealed| t.open(sealed));
        assert_eq!(reached, Some(t2));
    } else {
        assert!(outcomes[1].is_none(), "the replay waits for the next batch");
    }
}

/// The outcomes of a batch that did not fail.
fn settled(outcomes: Settled) -> Vec<Option<Rotation>> {
    outcomes
        .into_iter()
        .map(|o| o.map(|r| r.expect("settle")))
        .collect()
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
    let s = scratch_on(None).await; // SQLite's planner, whichever backend the suite runs on
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
