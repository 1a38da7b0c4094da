//! The outbox: mail written in the same transaction as the change it tells of, sent later by
//! the background sender (`crate::mail`). Each sender leases the mail it takes (`locked_until`),
//! so several instances on one database send each mail once; a sent mail is deleted, and with
//! it the link it carried.
use entity::outbox;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, FromQueryResult, QueryFilter,
    Statement,
};

use super::{Store, StoreError};

/// A mail to send. `Debug` shows only the address: the bodies hold one-time links.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A mail a sender has leased.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Leased {
    pub id: i64,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: i64,
    /// Tries so far, this one included.
    pub attempts: i32,
}

/// Queues `mail` as part of the caller's transaction: it goes out only if that commits.
pub(crate) async fn enqueue_in<C: ConnectionTrait>(
    db: &C,
    mail: &Mail,
    now: i64,
) -> Result<(), StoreError> {
    outbox::Entity::insert(outbox::ActiveModel {
        id: NotSet,
        to_address: Set(mail.to.clone()),
        subject: Set(mail.subject.clone()),
        text_body: Set(mail.text.clone()),
        html_body: Set(mail.html.clone()),
        created_at: Set(now),
        next_attempt_at: Set(now),
        attempts: Set(0),
        locked_until: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

impl Store {
    /// Leases up to `limit` mails that are due and not leased by another sender, until
    /// `lease_until`. One statement: on Postgres the rows are taken `FOR UPDATE SKIP LOCKED`,
    /// so two instances never lease the same mail; SQLite has one writer anyway.
    pub async fn lease_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: u64,
    ) -> Result<Vec<Leased>, StoreError> {
        let backend = self.backend();
        let sql = match backend {
            DatabaseBackend::Postgres => {
                "UPDATE outbox SET locked_until = $2, attempts = attempts + 1 WHERE id IN \
                 (SELECT id FROM outbox WHERE next_attempt_at <= $1 \
                 AND (locked_until IS NULL OR locked_until <= $1) \
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, to_address, subject, text_body, html_body, created_at, attempts"
            }
            _ => {
                "UPDATE outbox SET locked_until = ?2, attempts = attempts + 1 WHERE id IN \
                 (SELECT id FROM outbox WHERE next_attempt_at <= ?1 \
                 AND (locked_until IS NULL OR locked_until <= ?1) \
                 ORDER BY id LIMIT ?3) \
                 RETURNING id, to_address, subject, text_body, html_body, created_at, attempts"
            }
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let values = [now.into(), lease_until.into(), limit.into()];
        let statement = Statement::from_sql_and_values(backend, sql, values);
        let (txn, _gate) = self.begin_write().await?;
        let leased = Leased::find_by_statement(statement).all(&txn).await?;
        txn.commit().await?;
        Ok(leased)
    }

    /// Mail `id` is done with (the mail server took it, or it was given up): it is deleted.
    pub async fn remove_mail(&self, id: i64) -> Result<(), StoreError> {
        let (txn, _gate) = self.begin_write().await?;
        outbox::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Sending mail `id` failed: it is tried again from `next_attempt_at` (by any sender).
    pub async fn mail_failed(&self, id: i64, next_attempt_at: i64) -> Result<(), StoreError> {
        use sea_orm::sea_query::Expr;
        let (txn, _gate) = self.begin_write().await?;
        outbox::Entity::update_many()
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(next_attempt_at))
            .col_expr(outbox::Column::LockedUntil, Expr::value(None::<i64>))
            .filter(outbox::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// How many mails wait to be sent (for the metrics and the tests).
    pub async fn mail_waiting(&self) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(outbox::Entity::find().count(&self.db).await?)
    }
}
