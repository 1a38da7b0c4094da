//! `issuing_policy`: one row holding the largest access-token lifetime, leeway and reuse grace
//! window that any server of this database has run with.
//!
//! How long a revoked session's entry must last, how long a retired key must keep verifying and
//! how long a sealed successor must be kept all follow from those three values. A command run
//! with other settings (`authd users disable` from a shell with only `DATABASE_URL`, say) must
//! not shorten them, so they live here, not in each process's environment. The row exists from
//! the start with empty values: until a server has recorded its own, every reader assumes the
//! largest values a server accepts.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IssuingPolicy {
    Table,
    Id,
    AccessTtlSecs,
    LeewaySecs,
    ReuseGraceSecs,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(IssuingPolicy::Table)
                .col(integer(IssuingPolicy::Id).primary_key())
                .col(big_integer_null(IssuingPolicy::AccessTtlSecs))
                .col(big_integer_null(IssuingPolicy::LeewaySecs))
                .col(big_integer_null(IssuingPolicy::ReuseGraceSecs))
                .col(big_integer_null(IssuingPolicy::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table(IssuingPolicy::Table)
                .columns([IssuingPolicy::Id])
                .values_panic([1.into()])
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(IssuingPolicy::Table).to_owned())
            .await
    }
}
