//! `idx_refresh_tokens_used` covers rotated tokens only (`WHERE used_at IS NOT NULL`).
//!
//! The full index misled SQLite: the rotation's `UPDATE ... WHERE token_hash IN (...) AND
//! used_at IS NULL` was planned on it instead of on the primary key as soon as the list held ten
//! hashes or so (without statistics SQLite guesses ten rows per index key), which scans every
//! current token: 63 rotations/s with 1,000,000 sessions instead of 5,000. A partial index of
//! rotated tokens cannot serve `used_at IS NULL`, still serves the pruning's
//! `used_at <= ?`, and no longer indexes the current tokens at all. Same SQL on both backends.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared(r#"DROP INDEX IF EXISTS "idx_refresh_tokens_used""#)
            .await?;
        db.execute_unprepared(
            r#"CREATE INDEX "idx_refresh_tokens_used" ON "refresh_tokens" ("used_at") WHERE "used_at" IS NOT NULL"#,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared(r#"DROP INDEX IF EXISTS "idx_refresh_tokens_used""#)
            .await?;
        db.execute_unprepared(
            r#"CREATE INDEX "idx_refresh_tokens_used" ON "refresh_tokens" ("used_at")"#,
        )
        .await?;
        Ok(())
    }
}
