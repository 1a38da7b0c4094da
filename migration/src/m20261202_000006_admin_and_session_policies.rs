//! The admin API, custom claims and session policies.
//!
//! `users` gains `email_verified` (set by admins now, by verification links later),
//! `app_metadata` (a JSON object as text, at most 2 KiB, written only through the admin API and
//! carried in access tokens) and `max_sessions` (the user's own session cap; `NULL`: the
//! server's). `sessions.persistent` is false for a login with `"remember": false` (a cookie
//! without `Max-Age`, a short absolute limit). `security_events.actor` names who acted when it
//! was not the user (`service_key:NAME`).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    EmailVerified,
    AppMetadata,
    MaxSessions,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Persistent,
}

#[derive(DeriveIden)]
enum SecurityEvents {
    Table,
    Actor,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        let columns = [
            (
                Users::Table.into_iden(),
                boolean(Users::EmailVerified).default(false).to_owned(),
            ),
            (Users::Table.into_iden(), text_null(Users::AppMetadata)),
            (
                Users::Table.into_iden(),
                big_integer_null(Users::MaxSessions),
            ),
            (
                Sessions::Table.into_iden(),
                boolean(Sessions::Persistent).default(true).to_owned(),
            ),
            (
                SecurityEvents::Table.into_iden(),
                string_null(SecurityEvents::Actor),
            ),
        ];
        for (table, mut column) in columns {
            m.alter_table(
                Table::alter()
                    .table(table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let columns: [(DynIden, DynIden); 5] = [
            (Users::Table.into_iden(), Users::EmailVerified.into_iden()),
            (Users::Table.into_iden(), Users::AppMetadata.into_iden()),
            (Users::Table.into_iden(), Users::MaxSessions.into_iden()),
            (
                Sessions::Table.into_iden(),
                Sessions::Persistent.into_iden(),
            ),
            (
                SecurityEvents::Table.into_iden(),
                SecurityEvents::Actor.into_iden(),
            ),
        ];
        for (table, column) in columns {
            m.alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
