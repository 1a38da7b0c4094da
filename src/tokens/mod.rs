//! Tokens: access JWTs (sign, verify, keys, JWKS), the in-memory set of revoked sessions, and
//! refresh tokens (mint, hash, seal, and the rotation / reuse / grace policy).
//! Nothing here knows about the database or HTTP.

/// The `typ` header of authd's access tokens (RFC 9068).
pub const TYP: &str = "at+jwt";

pub mod access;
pub mod device;
pub mod email;
pub mod keys;
pub mod refresh;
pub mod revoked;
pub mod service;

pub use access::{AccessClaims, AccessTokens, TokenError};
pub use device::DeviceTokens;
pub use keys::{KeyRecord, KeySet};
pub use refresh::RefreshToken;
pub use revoked::RevokedSet;
pub use service::{Scope, ServiceKey, ServiceKeys};
