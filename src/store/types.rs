//! Small types the store's modules share (kept apart so that none of them imports another).

/// An entry of the revoked-session list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The list's change cursor.
    pub id: i64,
    pub session_id: String,
    /// After this time no access token of the session can verify.
    pub expires_at: i64,
    pub revoked_at: i64,
}

impl From<entity::revoked_sessions::Model> for Revocation {
    fn from(r: entity::revoked_sessions::Model) -> Self {
        Self {
            id: r.id,
            session_id: r.session_id,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// Where a request came from, for sessions and security events.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The kinds of security event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Login,
    LoginFailed,
    Logout,
    SessionRevoked,
    RefreshTokenReused,
    PasswordChanged,
}

impl EventKind {
    /// The name clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::LoginFailed => "login_failed",
            Self::Logout => "logout",
            Self::SessionRevoked => "session_revoked",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::PasswordChanged => "password_changed",
        }
    }
}
