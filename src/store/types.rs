//! Small types the store's modules share (kept apart so that none of them imports another).

/// Where a request came from, for sessions and security events.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Who acted, when it is not the user (`service_key:NAME` for the admin API); recorded
    /// with every event the request causes.
    pub actor: Option<String>,
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
    /// An admin created the account.
    UserCreated,
    UserDisabled,
    UserEnabled,
    /// The account was deleted (by an admin or by the user): the last event it gets.
    UserDeleted,
    EmailChanged,
    EmailVerificationChanged,
    AppMetadataChanged,
    SessionLimitChanged,
    /// A reset link was mailed (asked for by anyone who knows the address).
    PasswordResetRequested,
    PasswordReset,
    EmailVerified,
    /// A confirmation link was mailed to a new address.
    EmailChangeRequested,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 18] = [
        Self::Login,
        Self::LoginFailed,
        Self::Logout,
        Self::SessionRevoked,
        Self::RefreshTokenReused,
        Self::PasswordChanged,
        Self::UserCreated,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::EmailChanged,
        Self::EmailVerificationChanged,
        Self::AppMetadataChanged,
        Self::SessionLimitChanged,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::EmailVerified,
        Self::EmailChangeRequested,
    ];

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The name clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::LoginFailed => "login_failed",
            Self::Logout => "logout",
            Self::SessionRevoked => "session_revoked",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::PasswordChanged => "password_changed",
            Self::UserCreated => "user_created",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::UserDeleted => "user_deleted",
            Self::EmailChanged => "email_changed",
            Self::EmailVerificationChanged => "email_verification_changed",
            Self::AppMetadataChanged => "app_metadata_changed",
            Self::SessionLimitChanged => "session_limit_changed",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::EmailVerified => "email_verified",
            Self::EmailChangeRequested => "email_change_requested",
        }
    }
}
