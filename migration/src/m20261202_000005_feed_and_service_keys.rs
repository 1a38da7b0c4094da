//! The revocation feed and service keys.
//!
//! `revoked_sessions.reason` says why each session ended, for the feed's entries (rows written
//! before this migration read as `session_revoked`). `service_keys` holds the keys resource
//! servers and back offices present: only each key's SHA-256 hash, never the key. A revoked key
//! keeps its row (the audit trail names it); its name is free again, so names are unique among
//! the keys in force only.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RevokedSessions {
    Table,
    Reason,
}

#[derive(DeriveIden)]
enum ServiceKeys {
    Table,
    Id,
    Name,
    KeyHash,
    Scopes,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(RevokedSessions::Table)
                .add_column(string(RevokedSessions::Reason).default("session_revoked"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ServiceKeys::Table)
                .col(string(ServiceKeys::Id).primary_key())
                .col(string(ServiceKeys::Name))
                .col(binary(ServiceKeys::KeyHash).unique_key())
                .col(string(ServiceKeys::Scopes))
                .col(big_integer(ServiceKeys::CreatedAt))
                .col(big_integer_null(ServiceKeys::LastUsedAt))
                .col(big_integer_null(ServiceKeys::RevokedAt))
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(
                r#"CREATE UNIQUE INDEX "idx_service_keys_live_name" ON "service_keys" ("name") WHERE "revoked_at" IS NULL"#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ServiceKeys::Table).to_owned())
            .await?;
        m.alter_table(
            Table::alter()
                .table(RevokedSessions::Table)
                .drop_column(RevokedSessions::Reason)
                .to_owned(),
        )
        .await
    }
}
