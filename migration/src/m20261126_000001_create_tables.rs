//! The first schema: users, sessions (refresh families), refresh tokens (hashes only), revoked
//! sessions, security events and signing keys. All times are unix seconds in BIGINT columns,
//! which both SQLite and Postgres compare and index the same way.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    LastRefreshedAt,
    IdleExpiresAt,
    AbsoluteExpiresAt,
    UserAgent,
    Ip,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    SessionId,
    Generation,
    CreatedAt,
    UsedAt,
    SuccessorHash,
    SuccessorSealed,
}

#[derive(DeriveIden)]
enum RevokedSessions {
    Table,
    Id,
    SessionId,
    UserId,
    RevokedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum SecurityEvents {
    Table,
    Id,
    UserId,
    Kind,
    At,
    SessionId,
    Ip,
    UserAgent,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Algorithm,
    PrivatePkcs8,
    PublicKey,
    CreatedAt,
    RetiredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(string(Users::Id).primary_key())
                .col(string_uniq(Users::Email))
                .col(string(Users::PasswordHash))
                .col(boolean(Users::Disabled).default(false))
                .col(big_integer(Users::CreatedAt))
                .col(big_integer(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .if_not_exists()
                .col(string(Sessions::Id).primary_key())
                .col(string(Sessions::UserId))
                .col(big_integer(Sessions::CreatedAt))
                .col(big_integer(Sessions::LastRefreshedAt))
                .col(big_integer(Sessions::IdleExpiresAt))
                .col(big_integer(Sessions::AbsoluteExpiresAt))
                .col(string_null(Sessions::UserAgent))
                .col(string_null(Sessions::Ip))
                .foreign_key(
                    ForeignKey::create()
                        .from(Sessions::Table, Sessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(m, "idx_sessions_user", Sessions::Table, Sessions::UserId).await?;
        index(
            m,
            "idx_sessions_idle",
            Sessions::Table,
            Sessions::IdleExpiresAt,
        )
        .await?;
        index(
            m,
            "idx_sessions_absolute",
            Sessions::Table,
            Sessions::AbsoluteExpiresAt,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .if_not_exists()
                .col(binary(RefreshTokens::TokenHash).primary_key())
                .col(string(RefreshTokens::SessionId))
                .col(big_integer(RefreshTokens::Generation))
                .col(big_integer(RefreshTokens::CreatedAt))
                .col(big_integer_null(RefreshTokens::UsedAt))
                .col(binary_null(RefreshTokens::SuccessorHash))
                .col(binary_null(RefreshTokens::SuccessorSealed))
                .foreign_key(
                    ForeignKey::create()
                        .from(RefreshTokens::Table, RefreshTokens::SessionId)
                        .to(Sessions::Table, Sessions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_refresh_tokens_session",
            RefreshTokens::Table,
            RefreshTokens::SessionId,
        )
        .await?;
        index(
            m,
            "idx_refresh_tokens_used",
            RefreshTokens::Table,
            RefreshTokens::UsedAt,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RevokedSessions::Table)
                .if_not_exists()
                .col(big_pk_auto(RevokedSessions::Id))
                .col(string(RevokedSessions::SessionId))
                .col(string(RevokedSessions::UserId))
                .col(big_integer(RevokedSessions::RevokedAt))
                .col(big_integer(RevokedSessions::ExpiresAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_revoked_expires",
            RevokedSessions::Table,
            RevokedSessions::ExpiresAt,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SecurityEvents::Table)
                .if_not_exists()
                .col(big_pk_auto(SecurityEvents::Id))
                .col(string(SecurityEvents::UserId))
                .col(string(SecurityEvents::Kind))
                .col(big_integer(SecurityEvents::At))
                .col(string_null(SecurityEvents::SessionId))
                .col(string_null(SecurityEvents::Ip))
                .col(string_null(SecurityEvents::UserAgent))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_events_user",
            SecurityEvents::Table,
            SecurityEvents::UserId,
        )
        .await?;
        index(
            m,
            "idx_events_at",
            SecurityEvents::Table,
            SecurityEvents::At,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SigningKeys::Table)
                .if_not_exists()
                .col(string(SigningKeys::Kid).primary_key())
                .col(string(SigningKeys::Algorithm))
                .col(binary(SigningKeys::PrivatePkcs8))
                .col(binary(SigningKeys::PublicKey))
                .col(big_integer(SigningKeys::CreatedAt))
                .col(big_integer_null(SigningKeys::RetiredAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SigningKeys::Table.into_iden(),
            SecurityEvents::Table.into_iden(),
            RevokedSessions::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn index<T: IntoIden + 'static, C: IntoIden + 'static>(
    m: &SchemaManager<'_>,
    name: &str,
    table: T,
    col: C,
) -> Result<(), DbErr> {
    m.create_index(
        Index::create()
            .if_not_exists()
            .name(name)
            .table(table)
            .col(col)
            .to_owned(),
    )
    .await
}
