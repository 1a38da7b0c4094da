//! `secrets`: keys the instances of one database share that are not signing keys (today the
//! key that signs device tokens), each created once by whichever instance needs it first.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Secrets {
    Table,
    Name,
    Value,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Secrets::Table)
                .col(string(Secrets::Name).primary_key())
                .col(blob(Secrets::Value))
                .col(big_integer(Secrets::CreatedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Secrets::Table).to_owned())
            .await
    }
}
