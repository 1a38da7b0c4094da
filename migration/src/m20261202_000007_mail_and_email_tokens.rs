//! Account recovery and verified email: the outbox and one-time email tokens.
//!
//! `outbox` holds mail until a background sender has handed it to the mail server (then the row
//! is deleted, and with it the link it carried). `locked_until` is a sender's lease, so that
//! several instances on one database send each mail once. `email_tokens` holds the SHA-256 of
//! each one-time token (never the token), its purpose, its user and the address it was mailed
//! to (for an email change, the new address).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    ToAddress,
    Subject,
    TextBody,
    HtmlBody,
    CreatedAt,
    NextAttemptAt,
    Attempts,
    LockedUntil,
}

#[derive(DeriveIden)]
enum EmailTokens {
    Table,
    TokenHash,
    UserId,
    Purpose,
    Email,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Outbox::Table)
                .col(big_pk_auto(Outbox::Id))
                .col(string(Outbox::ToAddress))
                .col(string(Outbox::Subject))
                .col(text(Outbox::TextBody))
                .col(text(Outbox::HtmlBody))
                .col(big_integer(Outbox::CreatedAt))
                .col(big_integer(Outbox::NextAttemptAt))
                .col(integer(Outbox::Attempts).default(0))
                .col(big_integer_null(Outbox::LockedUntil))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_outbox_next_attempt_at")
                .table(Outbox::Table)
                .col(Outbox::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(EmailTokens::Table)
                .col(binary(EmailTokens::TokenHash).primary_key())
                .col(string(EmailTokens::UserId))
                .col(string(EmailTokens::Purpose))
                .col(string(EmailTokens::Email))
                .col(big_integer(EmailTokens::CreatedAt))
                .col(big_integer(EmailTokens::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_email_tokens_user_purpose")
                .table(EmailTokens::Table)
                .col(EmailTokens::UserId)
                .col(EmailTokens::Purpose)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(EmailTokens::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}
