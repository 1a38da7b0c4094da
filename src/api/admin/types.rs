//! The request and response types of `/admin/*`, with their examples.
use std::collections::BTreeMap;

use poem_openapi::Object;
use serde_json::Value;
use time::OffsetDateTime;

use crate::api::strict::{NewEmail, NewPassword, Optional, Patch};
use crate::api::timestamp;
use crate::store::User;
use crate::store::admin::AuditEvent;

/// Largest `app_metadata`, as compact JSON: it rides in every access token.
pub const MAX_APP_METADATA: usize = 2048;

/// A user as admins see it.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AdminUser {
    /// User id (`sub` of the user's access tokens).
    pub id: String,
    /// The normalised email.
    pub email: String,
    /// Whether the address is known to be the user's.
    pub email_verified: bool,
    /// A disabled user cannot log in and has no sessions.
    pub disabled: bool,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// When an admin, or a password change, last changed it.
    pub updated_at: OffsetDateTime,
    /// What access tokens carry as the claim `app_metadata` (from the next refresh on).
    #[oai(nullable)]
    pub app_metadata: Option<BTreeMap<String, Value>>,
    /// The user's own cap on live sessions; `null`: the server's (`AUTHD_MAX_SESSIONS_PER_USER`).
    #[oai(nullable)]
    pub max_sessions: Option<u64>,
}

impl From<User> for AdminUser {
    fn from(u: User) -> Self {
        Self {
            app_metadata: u
                .app_metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok()),
            id: u.id,
            email: u.email,
            email_verified: u.email_verified,
            disabled: u.disabled,
            created_at: timestamp(u.created_at),
            updated_at: timestamp(u.updated_at),
            max_sessions: u.max_sessions,
        }
    }
}

impl poem_openapi::types::Example for AdminUser {
    fn example() -> Self {
        Self {
            id: "5f0c6d1e-8a4b-4c39-9e51-2d7a3b9c0f11".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            disabled: false,
            created_at: timestamp(1_790_000_000),
            updated_at: timestamp(1_790_003_600),
            app_metadata: Some(BTreeMap::from([(
                "roles".to_owned(),
                serde_json::json!(["support"]),
            )])),
            max_sessions: None,
        }
    }
}

/// A page of users.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UserPage {
    /// In email order.
    pub users: Vec<AdminUser>,
    /// Send it back as `cursor` for the next page; `null` when there is none.
    #[oai(nullable)]
    pub cursor: Option<String>,
}

/// A user an admin creates.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Normalised like at registration; unique.
    pub email: NewEmail,
    /// 8 to 1024 characters. Left out: the account gets a random password nobody knows, and
    /// logs in only after a password reset.
    pub password: Optional<NewPassword>,
    /// Default `false`.
    pub email_verified: Optional<bool>,
}

impl poem_openapi::types::Example for CreateUserRequest {
    fn example() -> Self {
        Self {
            email: "grace@example.com".into(),
            password: Optional(None),
            email_verified: Optional(Some(true)),
        }
    }
}

/// Changes to a user; a field left out stays as it is.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// `true` ends every session of the user at once (on every instance and every verifier
    /// within a second; feed reason `user_disabled`) and refuses logins; `false` allows them
    /// again.
    pub disabled: Optional<bool>,
    /// A new address (normalised, unique). It is unverified unless `email_verified` comes
    /// with it. Sessions stay; access tokens carry the new address from their next refresh.
    pub email: Optional<NewEmail>,
    pub email_verified: Optional<bool>,
    /// A JSON object of at most 2 KiB (compact), or `null` to remove it. Access tokens carry it
    /// as the claim `app_metadata` from the next refresh on.
    pub app_metadata: Patch<BTreeMap<String, Value>>,
    /// 1 to 10,000, or `null` for the server's cap. Applies from the user's next login, which
    /// ends the oldest sessions beyond it.
    #[oai(validator(minimum(value = "1"), maximum(value = "10000")))]
    pub max_sessions: Patch<u64>,
}

impl poem_openapi::types::Example for UpdateUserRequest {
    fn example() -> Self {
        Self {
            disabled: Optional(None),
            email: Optional(None),
            email_verified: Optional(None),
            app_metadata: Patch::Value(BTreeMap::from([(
                "roles".to_owned(),
                serde_json::json!(["admin", "billing"]),
            )])),
            max_sessions: Patch::Absent,
        }
    }
}

/// One live session of a user.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AdminSession {
    /// Session id (`sid` of its access tokens).
    pub id: String,
    /// When it was opened (login).
    pub created_at: OffsetDateTime,
    /// When its refresh token was last rotated.
    pub last_refreshed_at: OffsetDateTime,
    /// When it ends unless refreshed.
    pub expires_at: OffsetDateTime,
    /// User agent at login.
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// Client IP at login.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// `false` for a login with `"remember": false`.
    pub remember: bool,
}

/// One event of the audit trail.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AdminEvent {
    /// The user it concerns (it stays after the user is deleted).
    pub user_id: String,
    /// `login`, `login_failed`, `logout`, `session_revoked`, `refresh_token_reused`,
    /// `password_changed`, `user_created`, `user_disabled`, `user_enabled`, `user_deleted`,
    /// `email_changed`, `email_verification_changed`, `app_metadata_changed` or
    /// `session_limit_changed`.
    pub kind: String,
    /// When it happened.
    pub at: OffsetDateTime,
    /// The session concerned, if any.
    #[oai(nullable)]
    pub session_id: Option<String>,
    /// Client IP of the request that caused it (removed when the user is deleted).
    #[oai(nullable)]
    pub ip: Option<String>,
    /// User agent of the request that caused it (removed when the user is deleted).
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// Who acted when it was not the user: `service_key:NAME`.
    #[oai(nullable)]
    pub actor: Option<String>,
}

impl From<AuditEvent> for AdminEvent {
    fn from(e: AuditEvent) -> Self {
        Self {
            user_id: e.user_id,
            kind: e.kind,
            at: timestamp(e.at),
            session_id: e.session_id,
            ip: e.ip,
            user_agent: e.user_agent,
            actor: e.actor,
        }
    }
}

impl poem_openapi::types::Example for AdminEvent {
    fn example() -> Self {
        Self {
            user_id: "5f0c6d1e-8a4b-4c39-9e51-2d7a3b9c0f11".into(),
            kind: "user_disabled".into(),
            at: timestamp(1_790_003_600),
            session_id: None,
            ip: Some("10.0.0.12".into()),
            user_agent: Some("backoffice/2.3".into()),
            actor: Some("service_key:backoffice".into()),
        }
    }
}

/// A page of the audit trail.
#[derive(Debug, Object)]
#[oai(example)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<AdminEvent>,
    /// Send it back as `cursor` for older events; `null` when there are none.
    #[oai(nullable)]
    pub cursor: Option<String>,
}

impl poem_openapi::types::Example for UserPage {
    fn example() -> Self {
        Self {
            users: vec![AdminUser::example()],
            cursor: Some("dWFkYUBleGFtcGxlLmNvbQ".into()),
        }
    }
}

impl poem_openapi::types::Example for AdminSession {
    fn example() -> Self {
        Self {
            id: "0b9e3c8e-5d0a-4f8e-a1c2-7e4d9b6f2a35".into(),
            created_at: timestamp(1_790_000_000),
            last_refreshed_at: timestamp(1_790_003_600),
            expires_at: timestamp(1_791_213_200),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
            ip: Some("203.0.113.7".into()),
            remember: true,
        }
    }
}

impl poem_openapi::types::Example for EventPage {
    fn example() -> Self {
        Self {
            events: vec![AdminEvent::example()],
            cursor: None,
        }
    }
}

/// What to do with a password-reset link.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct PasswordResetRequest {
    /// `true` (the default): mail it to the user's address. `false`: mail nothing and return
    /// it, for a support agent to pass on by another channel.
    pub send: Optional<bool>,
}

impl poem_openapi::types::Example for PasswordResetRequest {
    fn example() -> Self {
        Self {
            send: Optional(Some(false)),
        }
    }
}

/// A password-reset link that was not mailed.
#[derive(Debug, Object)]
#[oai(example)]
pub struct PasswordResetLink {
    /// The link (its token is in the fragment); it works once.
    pub link: String,
    /// When it stops working (30 minutes).
    pub expires_at: OffsetDateTime,
}

impl poem_openapi::types::Example for PasswordResetLink {
    fn example() -> Self {
        Self {
            link: "https://app.example.com/#action=reset-password&token=Zk3q9V2xJ0bC7tWm1pR4sY8uE6oA5nH2dL0gK9fT3jQ".into(),
            expires_at: timestamp(1_790_001_800),
        }
    }
}
