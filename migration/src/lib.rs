//! authd's schema, one file per change. Migrations never import the `entity` crate: they describe
//! the schema as it was when they were written.
pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_tables;
mod m20261126_000002_partial_used_index;
mod m20261202_000003_issuing_policy;
mod m20261202_000004_secrets;
mod m20261202_000005_feed_and_service_keys;
mod m20261202_000006_admin_and_session_policies;
mod m20261202_000007_mail_and_email_tokens;

/// Runs every migration in order; `authd migrate` and `authd serve` call it.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_tables::Migration),
            Box::new(m20261126_000002_partial_used_index::Migration),
            Box::new(m20261202_000003_issuing_policy::Migration),
            Box::new(m20261202_000004_secrets::Migration),
            Box::new(m20261202_000005_feed_and_service_keys::Migration),
            Box::new(m20261202_000006_admin_and_session_policies::Migration),
            Box::new(m20261202_000007_mail_and_email_tokens::Migration),
        ]
    }
}
