//! Configuration of a [`Verifier`], and the start-up that loads the keys and the snapshot.
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;

use crate::client::AuthdClient;
use crate::clock::{Clock, SystemClock};
use crate::error::BuildError;
use crate::state::{Config, Shared};
use crate::verifier::Verifier;

/// The most seconds authd holds a long-poll.
const MAX_POLL_WAIT_SECS: u64 = 30;
/// The least `max_staleness`: a long-poll must be able to come back well within it.
const MIN_MAX_STALENESS: Duration = Duration::from_secs(2);

/// Settings of a [`Verifier`]; made by [`Verifier::builder`]. Every setting but the service key
/// has a default.
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct VerifierBuilder {
    base_url: String,
    service_key: Option<String>,
    issuer: Option<String>,
    audience: String,
    leeway: Duration,
    max_staleness: Option<Duration>,
    poll_wait: Duration,
    jwks_refetch_interval: Duration,
    jwks_refresh_interval: Duration,
    request_timeout: Duration,
    http_client: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
}

impl VerifierBuilder {
    pub(crate) fn new(base_url: String) -> Self {
        Self {
            base_url,
            service_key: None,
            issuer: None,
            audience: "authd".to_owned(),
            leeway: Duration::from_secs(30),
            max_staleness: None,
            poll_wait: Duration::from_secs(25),
            jwks_refetch_interval: Duration::from_secs(10),
            jwks_refresh_interval: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            http_client: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The service key (`authd_sk_...`) that reads the revocation feed; it needs the scope
    /// `revocations:read`. Required.
    pub fn service_key(mut self, key: impl Into<String>) -> Self {
        self.service_key = Some(key.into());
        self
    }

    /// The `iss` tokens must carry. Default: the base URL without a trailing slash.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `aud` tokens must carry. Default: `authd`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The clock-skew allowance on `exp` and `iat`, also kept on each ended session's horizon.
    /// Whole seconds count. Default: 30 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// When set, `verify` answers [`VerifyError::Stale`](crate::VerifyError::Stale) (503) once
    /// the feed has not answered for longer than this; the long-poll then waits at most half of
    /// it, so that a quiet feed never looks stale. At least 2 s. Default: unset, so that an
    /// unreachable authd leaves the last known set enforced (see the README).
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = Some(max);
        self
    }

    /// How long authd may hold a long-poll that has nothing new, in whole seconds from 1 to 30
    /// (out-of-range values are clamped). Default: 25 s.
    pub fn poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = wait;
        self
    }

    /// The least time between two JWKS refetches asked for by tokens with an unknown `kid`.
    /// Default: 10 s.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// How often the JWKS is refetched anyway, so that retired keys leave. Default: 5 minutes.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_refresh_interval = interval;
        self
    }

    /// The time limit of a request to authd (a long-poll gets its wait on top). Default: 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The HTTP client to use (for a proxy, custom roots, or a shared pool). Its own timeout,
    /// if any, must exceed the long-poll's wait. Default: a new `reqwest::Client`.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// The clock tokens, staleness and horizons are judged by. Default: [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Fetches the JWKS and the whole revocation snapshot, then starts the background task
    /// (on the current tokio runtime). Returns only a ready verifier: an error if either cannot
    /// be loaded, with no retry (a service that starts without authd should fail loudly).
    pub async fn build(self) -> Result<Verifier, BuildError> {
        let key = self.service_key.ok_or(BuildError::MissingServiceKey)?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {key}"))
            .ok()
            .filter(|_| !key.trim().is_empty())
            .ok_or(BuildError::InvalidServiceKey)?;
        authorization.set_sensitive(true);
        let base = self.base_url.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| BuildError::InvalidBaseUrl(format!("{base}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BuildError::InvalidBaseUrl(base));
        }
        let max_staleness = self.max_staleness;
        if max_staleness.is_some_and(|max| max < MIN_MAX_STALENESS) {
            return Err(BuildError::InvalidSetting(
                "max_staleness must be at least 2 seconds",
            ));
        }
        let poll_wait = max_staleness.map_or(self.poll_wait, |max| self.poll_wait.min(max / 2));
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let http = match self.http_client {
            Some(http) => http,
            None => reqwest::Client::builder()
                .build()
                .map_err(|e| BuildError::HttpClient(e.to_string()))?,
        };
        let client = AuthdClient::new(http, &base, authorization, self.request_timeout)
            .map_err(BuildError::InvalidBaseUrl)?;
        let config = Config {
            issuer: self.issuer.unwrap_or_else(|| base.clone()),
            base_url: base,
            audience: self.audience,
            leeway_secs: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            max_staleness,
            poll_wait_secs: poll_wait.as_secs().clamp(1, MAX_POLL_WAIT_SECS),
            jwks_refetch_interval: self.jwks_refetch_interval,
            jwks_refresh_interval: self.jwks_refresh_interval,
        };

        let clock = self.clock;
        let now = || crate::clock::unix_secs(clock.now());
        let (keys, snapshot) =
            tokio::join!(client.jwks(), client.snapshot(now, config.leeway_secs));
        let keys = keys.map_err(BuildError::Jwks)?;
        let (revoked, cursor) = snapshot.map_err(BuildError::Snapshot)?;
        tracing::info!(
            keys = keys.len(),
            revoked = revoked.len(),
            "authd verifier ready"
        );
        let shared = Arc::new(Shared::new(config, client, clock, keys, revoked));
        Ok(Verifier::start(shared, move |shared| {
            runtime
                .spawn(async move { crate::sync::run(&shared, cursor).await })
                .abort_handle()
        }))
    }
}

impl std::fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("base_url", &self.base_url)
            .field(
                "service_key",
                &self.service_key.as_ref().map(|_| "<redacted>"),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("max_staleness", &self.max_staleness)
            .field("poll_wait", &self.poll_wait)
            .finish_non_exhaustive()
    }
}
