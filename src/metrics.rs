//! Prometheus metrics, one registry per server (so that tests running several servers in one
//! process each see their own counters). Served at `/metrics`, on `AUTHD_METRICS_LISTEN` when set.
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Outcomes of `POST /auth/refresh`.
#[derive(Debug, Clone, Copy)]
pub enum RefreshOutcome {
    Rotated,
    GraceReplay,
    Rejected,
    ReuseDetected,
}

impl RefreshOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::GraceReplay => "grace_replay",
            Self::Rejected => "rejected",
            Self::ReuseDetected => "reuse_detected",
        }
    }
}

/// Outcomes of `POST /auth/login`.
#[derive(Debug, Clone, Copy)]
pub enum LoginOutcome {
    Success,
    InvalidCredentials,
    RateLimited,
}

impl LoginOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InvalidCredentials => "invalid_credentials",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// Every metric authd exports.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub logins: IntCounterVec,
    pub refreshes: IntCounterVec,
    pub revocations: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub revoked_set_size: IntGauge,
    pub db_pool: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

// Metric definitions are constants; registering them in a fresh registry cannot fail.
fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c =
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    c
}

impl Metrics {
    /// A fresh registry with every metric registered.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = counter(
            &registry,
            "authd_http_requests_total",
            "HTTP requests by operation and status.",
            &["operation", "status"],
        );
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "authd_http_request_duration_seconds",
                "HTTP request latency by operation and status.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["operation", "status"],
        )
        .unwrap_or_else(|e| panic!("latency: {e}"));
        registry
            .register(Box::new(latency.clone()))
            .unwrap_or_else(|e| panic!("latency: {e}"));
        let logins = counter(
            &registry,
            "authd_logins_total",
            "Logins by outcome.",
            &["outcome"],
        );
        let refreshes = counter(
            &registry,
            "authd_refreshes_total",
            "Refreshes by outcome: rotated, grace_replay, rejected, reuse_detected.",
            &["outcome"],
        );
        let revocations = counter(
            &registry,
            "authd_sessions_revoked_total",
            "Sessions ended, by cause.",
            &["cause"],
        );
        let rate_limited = counter(
            &registry,
            "authd_rate_limited_total",
            "Requests refused with 429, by operation.",
            &["operation"],
        );
        let revoked_set_size = IntGauge::new(
            "authd_revoked_sessions",
            "Entries in the in-memory revoked-session set.",
        )
        .unwrap_or_else(|e| panic!("revoked: {e}"));
        registry
            .register(Box::new(revoked_set_size.clone()))
            .unwrap_or_else(|e| panic!("revoked: {e}"));
        let db_pool = IntGaugeVec::new(
            Opts::new(
                "authd_db_pool_connections",
                "Database pool connections by state.",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("pool: {e}"));
        registry
            .register(Box::new(db_pool.clone()))
            .unwrap_or_else(|e| panic!("pool: {e}"));
        Self {
            registry,
            requests,
            latency,
            logins,
            refreshes,
            revocations,
            rate_limited,
            revoked_set_size,
            db_pool,
        }
    }

    /// Counts a refresh outcome.
    pub fn refresh(&self, outcome: RefreshOutcome) {
        self.refreshes.with_label_values(&[outcome.label()]).inc();
    }

    /// Counts a login outcome.
    pub fn login(&self, outcome: LoginOutcome) {
        self.logins.with_label_values(&[outcome.label()]).inc();
    }

    /// Counts `n` sessions ended for `cause`.
    pub fn revoked(&self, cause: &str, n: usize) {
        self.revocations
            .with_label_values(&[cause])
            .inc_by(n as u64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
