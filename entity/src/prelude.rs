pub use super::issuing_policy::Entity as IssuingPolicy;
pub use super::refresh_tokens::Entity as RefreshTokens;
pub use super::revoked_sessions::Entity as RevokedSessions;
pub use super::secrets::Entity as Secrets;
pub use super::security_events::Entity as SecurityEvents;
pub use super::sessions::Entity as Sessions;
pub use super::signing_keys::Entity as SigningKeys;
pub use super::users::Entity as Users;
