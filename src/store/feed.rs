//! Reading the revoked-session list in order, without ever skipping an entry.
//!
//! Entries carry increasing ids, but on Postgres ids are handed out when a transaction inserts
//! and become visible when it commits, so a reader can see id 12 before id 11 exists for it. A
//! [`FeedPosition`] is therefore "everything up to `high`, except these gaps": every id at or
//! below `high` that was not visible when `high` was read is remembered, with the snapshot's
//! `xmax` at that moment, and asked for again on every read until no transaction that was
//! running then can still commit (the current snapshot's `xmin` has passed that `xmax`). Then
//! the gap is a hole for good (a rollback, a pruned row) and is forgotten. Entries are handed
//! out at once; only the bookkeeping waits, so a long transaction elsewhere delays nothing.
//!
//! SQLite has one writer at a time and never reuses an id (`AUTOINCREMENT`): what a reader sees
//! is always a prefix of the list, and it never needs gaps.
use entity::revoked_sessions;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Statement,
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

#[derive(Debug, FromQueryResult)]
struct Xid {
    xid: i64,
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
        let mut gaps = pos.gaps.clone();
        if postgres && !gaps.is_empty() {
            let xmin = self.snapshot_xid("pg_snapshot_xmin").await?;
            gaps.retain(|g| g.xmax > xmin);
        }
        let mut wanted = Condition::any().add(revoked_sessions::Column::Id.gt(pos.high));
        for g in &gaps {
            wanted = wanted.add(revoked_sessions::Column::Id.between(g.from, g.to));
        }
        // The snapshot's xmax is read by the same statement as the rows, so it describes
        // exactly the snapshot they came from.
        let mut query = revoked_sessions::Entity::find()
            .filter(wanted)
            .order_by_asc(revoked_sessions::Column::Id)
            .limit(limit);
        if postgres {
            query = query.expr_as(
                Expr::cust("pg_snapshot_xmax(pg_current_snapshot())::text::bigint"),
                "snapshot_xmax",
            );
        }
        let rows: Vec<(FeedEntry, Option<i64>)> = query
            .into_model::<FeedRow>()
            .all(&self.db)
            .await?
            .into_iter()
            .map(FeedRow::split)
            .collect();
        let full = rows.len() as u64 == limit;
        let mut next = FeedPosition {
            high: pos.high,
            gaps,
        };
        let mut entries = Vec::with_capacity(rows.len());
        let mut truncated = false;
        for (entry, xmax) in rows {
            if entry.id <= next.high {
                fill(&mut next.gaps, entry.id);
            } else {
                if postgres && entry.id > next.high + 1 {
                    if next.gaps.len() >= MAX_GAPS {
                        truncated = true;
                        break;
                    }
                    next.gaps.push(Gap {
                        from: next.high + 1,
                        to: entry.id - 1,
                        xmax: xmax.unwrap_or(i64::MAX),
                    });
                }
                next.high = entry.id;
            }
            if entry.expires_at > now {
                entries.push(entry);
            }
        }
        Ok(FeedPage {
            entries,
            next,
            more: full || truncated,
        })
    }

    /// The highest id of the list (0 when empty): where a reader that wants only what comes
    /// next starts.
    pub async fn feed_end(&self) -> Result<i64, StoreError> {
        let max: Option<Option<i64>> = revoked_sessions::Entity::find()
            .select_only()
            .column_as(revoked_sessions::Column::Id.max(), "max")
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(max.flatten().unwrap_or(0))
    }

    async fn snapshot_xid(&self, function: &str) -> Result<i64, StoreError> {
        let sql = format!("SELECT {function}(pg_current_snapshot())::text::bigint AS xid");
        let row = Xid::find_by_statement(Statement::from_string(DatabaseBackend::Postgres, sql))
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::Internal("no snapshot".into()))?;
        Ok(row.xid)
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

#[derive(Debug, FromQueryResult)]
struct FeedRow {
    id: i64,
    session_id: String,
    user_id: String,
    revoked_at: i64,
    expires_at: i64,
    reason: String,
    snapshot_xmax: Option<i64>,
}

impl FeedRow {
    fn split(self) -> (FeedEntry, Option<i64>) {
        let entry = FeedEntry {
            id: self.id,
            session_id: self.session_id,
            user_id: self.user_id,
            revoked_at: self.revoked_at,
            expires_at: self.expires_at,
            reason: self.reason,
        };
        (entry, self.snapshot_xmax)
    }
}

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
