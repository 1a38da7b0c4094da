//! Reading the revoked-session list in order, without ever skipping an entry.
//!
//! Entries carry increasing ids, but on Postgres ids are handed out when a transaction inserts
//! and become visible when it commits, so a reader can see id 12 before id 11 exists for it. A
//! [`FeedPosition`] is therefore "everything up to `high`, except these gaps": every id at or
//! below `high` that was not visible when `high` was read is remembered, with the snapshot's
//! `xmax` at that moment, and asked for again on every read until a read finds it still empty
//! in a snapshot where no transaction that was running then can still commit (that snapshot's
//! `xmin` has passed the gap's `xmax`). Then the gap is a hole for good (a rollback, a pruned
//! row) and is forgotten. The bounds come from the same statement as the rows. Entries are handed
//! out at once; only the bookkeeping waits, so a long transaction elsewhere delays nothing.
//!
//! SQLite has one writer at a time and never reuses an id (`AUTOINCREMENT`): what a reader sees
//! is always a prefix of the list, and it never needs gaps.
use entity::revoked_sessions;
use sea_orm::sea_query::Condition;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement,
};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// Most gaps a position carries. A read that would need more stops before the rows that would
/// open them (they come on a later read, once older gaps settle): late, never skipped.
pub const MAX_GAPS: usize = 64;

/// Ids at or below `high` that were not visible yet, from `from` to `to` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from: i64,
    pub to: i64,
    /// The reading snapshot's `xmax`: once every transaction below it has ended, no row can
    /// appear in the gap any more.
    pub xmax: i64,
}

/// A reader's place in the revoked-session list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPosition {
    pub high: i64,
    pub gaps: Vec<Gap>,
}

/// An entry of the revoked-session list, as the feed hands it out.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct FeedEntry {
    pub id: i64,
    pub session_id: String,
    pub user_id: String,
    pub revoked_at: i64,
    pub expires_at: i64,
    pub reason: String,
}

/// One read: the entries after a position (oldest first), the position after them, and
/// whether more were left for the next read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    pub entries: Vec<FeedEntry>,
    pub next: FeedPosition,
    pub more: bool,
}

impl Store {
    /// Up to `limit` entries after `pos`, oldest first. Entries whose horizon has passed by
    /// `now` are left out of the answer (nobody needs them) but still move the position.
    pub async fn read_feed(
        &self,
        pos: &FeedPosition,
        limit: u64,
        now: i64,
    ) -> Result<FeedPage, StoreError> {
        let postgres = self.backend() == DatabaseBackend::Postgres;
        let mut wanted = Condition::any().add(revoked_sessions::Column::Id.gt(pos.high));
        for g in &pos.gaps {
            wanted = wanted.add(revoked_sessions::Column::Id.between(g.from, g.to));
        }
        let query = revoked_sessions::Entity::find()
            .filter(wanted)
            .order_by_asc(revoked_sessions::Column::Id)
            .limit(limit);
        let (rows, snapshot) = if postgres {
            self.read_with_snapshot(query).await?
        } else {
            (query.into_model::<FeedEntry>().all(&self.db).await?, None)
        };
        let full = rows.len() as u64 == limit;
        let read_through = match (full, rows.last()) {
            (true, Some(last)) => last.id,
            _ => i64::MAX,
        };
        let mut next = FeedPosition {
            high: pos.high,
            gaps: pos.gaps.clone(),
        };
        let mut entries = Vec::with_capacity(rows.len());
        let mut truncated = false;
        for entry in rows {
            if entry.id <= next.high {
                fill(&mut next.gaps, entry.id);
            } else {
                if let Some(snap) = snapshot
                    && entry.id > next.high + 1
                {
                    if next.gaps.len() >= MAX_GAPS {
                        truncated = true;
                        break;
                    }
                    next.gaps.push(Gap {
                        from: next.high + 1,
                        to: entry.id - 1,
                        xmax: snap.xmax,
                    });
                }
                next.high = entry.id;
            }
            if entry.expires_at > now {
                entries.push(entry);
            }
        }
        // A gap is a hole for good once every transaction that was running when it was seen
        // had ended before this read's snapshot, which read the gap and found it still empty.
        if let Some(snap) = snapshot {
            next.gaps
                .retain(|g| g.xmax > snap.xmin || g.to > read_through);
        }
        Ok(FeedPage {
            entries,
            next,
            more: full || truncated,
        })
    }

    /// Runs `query` on Postgres together with its own snapshot's bounds: one statement, so the
    /// bounds describe exactly the snapshot the rows were read in (also when there are none).
    async fn read_with_snapshot(
        &self,
        query: sea_orm::Select<revoked_sessions::Entity>,
    ) -> Result<(Vec<FeedEntry>, Option<Snapshot>), StoreError> {
        let inner = query.build(DatabaseBackend::Postgres);
        let sql = format!(
            "SELECT r.id, r.session_id, r.user_id, r.revoked_at, r.expires_at, r.reason, \
             pg_snapshot_xmin(s.snap)::text::bigint AS snapshot_xmin, \
             pg_snapshot_xmax(s.snap)::text::bigint AS snapshot_xmax \
             FROM (SELECT pg_current_snapshot() AS snap) s \
             LEFT JOIN LATERAL ({}) r ON true",
            inner.sql
        );
        let statement = Statement { sql, ..inner };
        let rows = PgFeedRow::find_by_statement(statement)
            .all(&self.db)
            .await?;
        let snapshot = rows.first().map(|r| Snapshot {
            xmin: r.snapshot_xmin,
            xmax: r.snapshot_xmax,
        });
        let entries = rows.into_iter().filter_map(PgFeedRow::entry).collect();
        Ok((entries, snapshot))
    }
}

/// The bounds of a Postgres snapshot: every transaction below `xmin` had ended; none from
/// `xmax` on had started.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    xmin: i64,
    xmax: i64,
}

/// A row of [`Store::read_with_snapshot`]: the snapshot's bounds, and an entry unless there
/// was none.
#[derive(Debug, FromQueryResult)]
struct PgFeedRow {
    id: Option<i64>,
    session_id: Option<String>,
    user_id: Option<String>,
    revoked_at: Option<i64>,
    expires_at: Option<i64>,
    reason: Option<String>,
    snapshot_xmin: i64,
    snapshot_xmax: i64,
}

impl PgFeedRow {
    fn entry(self) -> Option<FeedEntry> {
        Some(FeedEntry {
            id: self.id?,
            session_id: self.session_id?,
            user_id: self.user_id?,
            revoked_at: self.revoked_at?,
            expires_at: self.expires_at?,
            reason: self.reason?,
        })
    }
}

/// Tells the other instances (on Postgres) that entries were recorded; sent with the commit of
/// `db`'s transaction.
pub(crate) async fn announce<C: ConnectionTrait>(db: &C) -> Result<(), StoreError> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        db.execute_unprepared(&format!("NOTIFY {CHANNEL}")).await?;
    }
    Ok(())
}

/// The Postgres channel on which new entries are announced.
pub const CHANNEL: &str = "authd_revocations";

/// Removes `id` from the gap that holds it (splitting it when `id` is inside, while the
/// position stays small; past that the gap stays whole and `id` may be read twice, which the
/// feed allows).
fn fill(gaps: &mut Vec<Gap>, id: i64) {
    let Some(i) = gaps.iter().position(|g| g.from <= id && id <= g.to) else {
        return;
    };
    let g = gaps[i];
    let inside = g.from < id && id < g.to;
    if inside && gaps.len() >= 2 * MAX_GAPS {
        return;
    }
    gaps.remove(i);
    if g.from < id {
        gaps.push(Gap { to: id - 1, ..g });
    }
    if id < g.to {
        gaps.push(Gap { from: id + 1, ..g });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filling_a_gap_keeps_the_ids_on_either_side() {
        let mut gaps = vec![Gap {
            from: 3,
            to: 7,
            xmax: 9,
        }];
        fill(&mut gaps, 5);
        gaps.sort_by_key(|g| g.from);
        assert_eq!(
            gaps,
            [
                Gap {
                    from: 3,
                    to: 4,
                    xmax: 9
                },
                Gap {
                    from: 6,
                    to: 7,
                    xmax: 9
                }
            ]
        );
        fill(&mut gaps, 3);
        fill(&mut gaps, 4);
        fill(&mut gaps, 7);
        assert_eq!(
            gaps,
            [Gap {
                from: 6,
                to: 6,
                xmax: 9
            }]
        );
        fill(&mut gaps, 6);
        assert!(gaps.is_empty());
    }
}
