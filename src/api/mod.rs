//! The HTTP API: one file per resource; handlers stay short and call `tokens` and `store`.
use std::sync::Arc;

use poem::Request;
use poem_openapi::auth::{ApiKey, Bearer};
use poem_openapi::{OpenApiService, SecurityScheme, Tags};

use crate::api::error::ApiError;
use crate::clock::SharedClock;
use crate::passwords::Hasher;
use crate::sessions::Sessions;
use crate::store::{ClientMeta, Store};
use crate::tokens::{AccessClaims, AccessTokens};

pub mod admin;
pub mod auth;
pub mod cookies;
pub mod diagnose;
pub mod error;
pub mod health;
pub mod http;
pub mod introspect;
pub mod keys;
pub mod me;
pub mod recovery;
pub mod revocations;
pub mod service;
pub mod sessions;
pub mod spec;
pub mod strict;

pub use cookies::{CookiePolicy, OriginPolicy};

/// Longest user agent kept with a session or an event.
const MAX_USER_AGENT: usize = 256;

/// The HTTP boundary's policy, resolved once at start: cookies, origins, proxies.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub cookies: CookiePolicy,
    pub origins: OriginPolicy,
    /// Trusted proxies in front of authd (`AUTHD_TRUST_PROXY`); 0: never read
    /// `X-Forwarded-For`.
    pub trust_proxy: usize,
}

/// Everything a request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// The parts of [`AppState`]: one handle per job, none held twice.
pub struct Inner {
    /// Every start, rotation and end of a session goes through it.
    pub sessions: Sessions,
    /// Password hashing, on its own threads.
    pub hasher: Hasher,
    /// Verifies access tokens; it holds the key set and the revoked set it checks.
    pub access: AccessTokens,
    /// Device tokens (login throttling).
    pub devices: crate::tokens::DeviceTokens,
    pub clock: SharedClock,
    pub http: HttpPolicy,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub limits: crate::ratelimit::RateLimits,
    /// The service keys in force.
    pub service_keys: Arc<crate::tokens::ServiceKeys>,
    /// The revocation feed's cursors, bell and caps.
    pub feed: Arc<crate::feed::Feed>,
    /// Longest hold of a feed request (under the HTTP request timeout).
    pub feed_max_wait: std::time::Duration,
    /// Composes mail for the outbox and rings its sender.
    pub mailer: Arc<crate::mail::Mailer>,
    /// `AUTHD_REQUIRE_VERIFIED_EMAIL`.
    pub require_verified_email: bool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The database, for reads and writes that start or end no session.
    pub fn store(&self) -> &Store {
        self.sessions.store()
    }

    /// Counts a request refused by a throttle of `operation`.
    fn note_rate_limited(&self, operation: &str) {
        self.metrics
            .rate_limited
            .with_label_values(&[operation])
            .inc();
        tracing::warn!(operation, key_kind = "client", "rate limited");
    }

    /// Refuses `operation` with 429 while a bucket that is only spent on failures says to wait
    /// `wait_secs` (0: go ahead; nothing is taken either way).
    pub fn refuse_for(&self, wait_secs: u64, operation: &str) -> Result<(), ApiError> {
        if wait_secs == 0 {
            return Ok(());
        }
        self.note_rate_limited(operation);
        Err(ApiError::RateLimited {
            retry_after_secs: wait_secs,
        })
    }

    /// Takes a token from `limiter` for `key`, or answers 429 (counted per operation).
    pub fn throttle(
        &self,
        limiter: &crate::ratelimit::Limiter,
        key: &str,
        operation: &str,
    ) -> Result<(), ApiError> {
        limiter.take(key).map_err(|retry_after_secs| {
            self.note_rate_limited(operation);
            ApiError::RateLimited { retry_after_secs }
        })
    }

    /// Where the request came from. `X-Forwarded-For` is read only with `AUTHD_TRUST_PROXY`.
    pub fn client_meta(&self, req: &Request) -> ClientMeta {
        let forwarded = forwarded_for(req, self.http.trust_proxy);
        let ip = forwarded.or_else(|| {
            req.remote_addr()
                .as_socket_addr()
                .map(|a| a.ip().to_string())
        });
        let user_agent = req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(MAX_USER_AGENT).collect());
        ClientMeta {
            ip,
            user_agent,
            actor: None,
        }
    }
}

/// The client address that the farthest of `hops` trusted proxies saw. Each proxy appends the
/// address it received the request from, so counted from the right the `hops`-th entry of
/// `X-Forwarded-For` (all such headers, in order) is the one the client could not write: the
/// entries left of it are the client's own words. Fewer entries than trusted proxies, or an
/// entry that is not an IP address: `None` (the peer address is used).
fn forwarded_for(req: &Request, hops: usize) -> Option<String> {
    if hops == 0 {
        return None;
    }
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let entry = entries.get(entries.len().checked_sub(hops)?)?;
    let ip = entry
        .parse::<std::net::IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .ok()?;
    Some(ip.to_string())
}

/// A stored time (unix seconds) as the API writes it (RFC 3339).
pub(crate) fn timestamp(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// An empty success.
#[derive(poem_openapi::ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// The groups of operations in the docs.
#[derive(Tags)]
pub enum Tag {
    /// Register, log in, refresh, log out, change the password.
    Auth,
    /// The caller's sessions and security events.
    Sessions,
    /// A sample protected resource.
    Me,
    /// Public keys that verify access tokens.
    Keys,
    /// Liveness and readiness probes.
    Health,
    /// For resource servers, with a service key: the revocation feed and introspection.
    ResourceServers,
    /// For back offices, with a service key of scope `admin`: users, their sessions, the audit
    /// trail.
    Admin,
}

/// The access token from login or refresh, as `Authorization: Bearer <access_token>`: an EdDSA
/// JWT that expires after `expires_in` seconds and stops working at once when its session ends.
#[derive(SecurityScheme)]
#[oai(
    rename = "bearerAuth",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "verify_bearer"
)]
pub struct BearerAuth(pub AccessClaims);

async fn verify_bearer(req: &Request, bearer: Bearer) -> poem::Result<AccessClaims> {
    let state = req.data::<AppState>().ok_or(ApiError::Internal)?;
    state.access.verify(&bearer.token).map_err(|err| {
        tracing::debug!(reason = %err, "access token refused");
        ApiError::InvalidToken.into()
    })
}

/// The access token from login or refresh, as `Authorization: Bearer <access_token>`: an EdDSA
/// JWT that expires after `expires_in` seconds and stops working at once when its session ends.
// Unverified here: for operations that accept one of several credentials. Same scheme name and
// text as `BearerAuth`, so the spec declares one scheme.
#[derive(SecurityScheme)]
#[oai(rename = "bearerAuth", ty = "bearer", bearer_format = "JWT")]
pub struct BearerToken(pub Bearer);

/// The refresh token in the `__Host-refresh_token` cookie (`HttpOnly; Secure; SameSite=Strict;
/// Path=/`) set by a cookie-delivery login; the browser sends it, scripts cannot read it.
/// Requests that rely on it need the `X-Requested-With` header and an allowed `Origin`.
#[derive(SecurityScheme)]
#[oai(
    rename = "refreshCookie",
    ty = "api_key",
    key_name = "__Host-refresh_token",
    key_in = "cookie"
)]
pub struct RefreshCookie(pub ApiKey);

/// The operations of the API.
pub type Api = (
    auth::AuthApi,
    recovery::RecoveryApi,
    sessions::SessionsApi,
    me::MeApi,
    keys::KeysApi,
    revocations::RevocationsApi,
    introspect::IntrospectApi,
    admin::AdminUsersApi,
    admin::AdminEventsApi,
    health::HealthApi,
);

/// The spec, with the relative server that lets the docs UI call whichever host serves it.
pub fn service() -> OpenApiService<Api, ()> {
    OpenApiService::new(Api::default(), "authd", env!("CARGO_PKG_VERSION"))
        .description(
            "An auth server whose logout really logs JWTs out: short-lived EdDSA access tokens, \
             opaque rotating refresh tokens with reuse detection, and instant revocation of the \
             access tokens of ended sessions.",
        )
        .license(
            poem_openapi::LicenseObject::new("Apache-2.0")
                .url("https://www.apache.org/licenses/LICENSE-2.0"),
        )
        .server("/")
}
