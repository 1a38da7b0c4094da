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
    pub feed_held: IntGauge,
    pub db_pool: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Registers `metric` in `registry` and hands it back.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> prometheus::Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    registered(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

impl Metrics {
    /// A fresh registry with every metric registered. The definitions are constants: an error
    /// here is a bug, reported at start.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = counter(
            &registry,
            "authd_http_requests_total",
            "HTTP requests by operation and status.",
            &["operation", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "authd_http_request_duration_seconds",
                "HTTP request latency by operation and status.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["operation", "status"],
        )?;
        let latency = registered(&registry, latency)?;
        let logins = counter(
            &registry,
            "authd_logins_total",
            "Logins by outcome.",
            &["outcome"],
        )?;
        let refreshes = counter(
            &registry,
            "authd_refreshes_total",
            "Refreshes by outcome: rotated, grace_replay, rejected, reuse_detected.",
            &["outcome"],
        )?;
        let revocations = counter(
            &registry,
            "authd_sessions_revoked_total",
            "Sessions ended, by cause.",
            &["cause"],
        )?;
        let rate_limited = counter(
            &registry,
            "authd_rate_limited_total",
            "Requests refused with 429, by operation.",
            &["operation"],
        )?;
        let revoked_set_size = registered(
            &registry,
            IntGauge::new(
                "authd_revoked_sessions",
                "Entries in the in-memory revoked-session set.",
            )?,
        )?;
        let feed_held = registered(
            &registry,
            IntGauge::new(
                "authd_feed_held_requests",
                "Revocation-feed requests held waiting for a new entry.",
            )?,
        )?;
        let db_pool = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "authd_db_pool_connections",
                    "Database pool connections by state.",
                ),
                &["state"],
            )?,
        )?;
        Ok(Self {
            registry,
            requests,
            latency,
            logins,
            refreshes,
            revocations,
            rate_limited,
            revoked_set_size,
            feed_held,
            db_pool,
        })
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
