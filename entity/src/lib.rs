//! SeaORM entities of authd: one file per table.

pub mod email_tokens;
pub mod issuing_policy;
pub mod outbox;
pub mod prelude;
pub mod refresh_tokens;
pub mod revoked_sessions;
pub mod secrets;
pub mod security_events;
pub mod service_keys;
pub mod sessions;
pub mod signing_keys;
pub mod users;
