//! The security log.
use entity::security_events;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::types::{ClientMeta, EventKind};
use super::{Store, StoreError};

/// One recorded event.
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    pub kind: String,
    pub at: i64,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub(super) fn row(
    user_id: &str,
    kind: EventKind,
    at: i64,
    session_id: Option<&str>,
    meta: &ClientMeta,
) -> security_events::ActiveModel {
    security_events::ActiveModel {
        id: NotSet,
        user_id: Set(user_id.to_owned()),
        kind: Set(kind.as_str().to_owned()),
        at: Set(at),
        session_id: Set(session_id.map(str::to_owned)),
        ip: Set(meta.ip.clone()),
        user_agent: Set(meta.user_agent.clone()),
        actor: Set(meta.actor.clone()),
    }
}

pub(super) async fn record<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    kind: EventKind,
    at: i64,
    session_id: Option<&str>,
    meta: &ClientMeta,
) -> Result<(), StoreError> {
    security_events::Entity::insert(row(user_id, kind, at, session_id, meta))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

impl Store {
    /// Records one event outside any other change (for example a failed login): one statement,
    /// so one transaction of its own. Deliberately not through the write gate: written that way,
    /// the failed logins just before an admin command made that command's transaction meet
    /// SQLITE_BUSY (1 full-suite run in 2 measured; 0 in 6 without).
    pub async fn record_event(
        &self,
        user_id: &str,
        kind: EventKind,
        at: i64,
        session_id: Option<&str>,
        meta: &ClientMeta,
    ) -> Result<(), StoreError> {
        record(&self.db, user_id, kind, at, session_id, meta).await
    }

    /// The user's most recent events, newest first: at most `limit`, of which at most
    /// `max_failures` are `login_failed`. Anyone who knows an email can add failed logins, so
    /// they must never push the events that matter (a login from a new address, a reuse) out.
    pub async fn recent_events(
        &self,
        user_id: &str,
        limit: u64,
        max_failures: u64,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        use security_events::Column as E;
        let failed = EventKind::LoginFailed.as_str();
        let newest = |q: sea_orm::Select<security_events::Entity>, n: u64| {
            q.filter(E::UserId.eq(user_id))
                .order_by_desc(E::At)
                .order_by_desc(E::Id)
                .limit(n)
                .all(&self.db)
        };
        let find = security_events::Entity::find;
        let mut rows = newest(find().filter(E::Kind.ne(failed)), limit).await?;
        rows.extend(newest(find().filter(E::Kind.eq(failed)), max_failures.min(limit)).await?);
        rows.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        rows.truncate(limit as usize);
        Ok(rows
            .into_iter()
            .map(|e| SecurityEvent {
                kind: e.kind,
                at: e.at,
                session_id: e.session_id,
                ip: e.ip,
                user_agent: e.user_agent,
            })
            .collect())
    }
}
