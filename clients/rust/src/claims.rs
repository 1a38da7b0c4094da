//! The claims of an authd access token, as handed to the handler.
use serde::{Deserialize, Serialize};

/// The claims of a verified access token. The middlewares put it in the request's extensions
/// (axum: `Extension<Claims>`; poem: `Data<&Claims>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer: authd's URL.
    pub iss: String,
    /// The audience.
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id: the session's end refuses the token.
    pub sid: String,
    /// The token id.
    pub jti: String,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, in seconds since the Unix epoch.
    pub exp: i64,
    /// The user's email, when the token carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Every other claim (`email_verified`, `amr`, `app_metadata`, ...), as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}
