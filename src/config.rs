//! The only reader of the environment (with `cli`, which declares `AUTHD_LOG_FORMAT` the same
//! way). Every setting is an environment variable and also a flag; values are validated at
//! start, and a bad one stops the process with a message naming the variable.
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// Default `DATABASE_URL`: an SQLite file next to the working directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://authd.db?mode=rwc";

/// Settings shared by every subcommand that touches the database.
#[derive(Debug, Clone, Args)]
pub struct DbConfig {
    /// Database URL: `sqlite://PATH?mode=rwc` (embedded, the default) or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,

    /// Largest number of pooled database connections.
    #[arg(long, env = "AUTHD_DB_MAX_CONNECTIONS", value_name = "AUTHD_DB_MAX_CONNECTIONS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,

    /// How long a request waits for a pooled connection before it answers 503, in milliseconds.
    #[arg(long, env = "AUTHD_DB_ACQUIRE_TIMEOUT_MS", value_name = "AUTHD_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(10..=60_000), global = true)]
    pub db_acquire_timeout_ms: u64,

    /// Postgres: longest a single statement may run (lock waits included), and longest a
    /// transaction may sit idle, in milliseconds, before the server cancels it; 0 turns both off.
    /// Ignored on SQLite, whose writers wait at most its 5 s busy timeout.
    #[arg(long, env = "AUTHD_DB_STATEMENT_TIMEOUT_MS", value_name = "AUTHD_DB_STATEMENT_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(0..=600_000), global = true)]
    pub db_statement_timeout_ms: u64,

    /// Postgres: how `DATABASE_URL` reaches the database. `direct`: the server itself or a
    /// pooler in session mode. `transaction`: a pooler in transaction mode (pgbouncer
    /// `pool_mode = transaction`); every statement then runs in a transaction that first drops
    /// any prepared statement, and the timeouts are set per transaction.
    #[arg(long, env = "AUTHD_DB_POOL_MODE", value_name = "AUTHD_DB_POOL_MODE", value_enum, default_value_t = PoolMode::Direct, global = true)]
    pub db_pool_mode: PoolMode,

    /// Postgres: a URL that reaches the database without a transaction-mode pooler (the server
    /// itself, or a session-mode pool), for what needs a session of its own: listening for the
    /// other instances' revocations. Without it, behind a transaction-mode pooler, instances
    /// learn of each other's revocations by polling every `AUTHD_SYNC_INTERVAL_MS`.
    #[arg(
        long,
        env = "AUTHD_DATABASE_DIRECT_URL",
        value_name = "AUTHD_DATABASE_DIRECT_URL",
        global = true
    )]
    pub database_direct_url: Option<String>,
}

/// How `DATABASE_URL` reaches Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PoolMode {
    /// The server, or a pooler that lends a connection for a whole session.
    #[default]
    Direct,
    /// A pooler that lends a connection for one transaction at a time.
    Transaction,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            db_max_connections: 8,
            db_acquire_timeout_ms: 3000,
            db_statement_timeout_ms: 5000,
            db_pool_mode: PoolMode::Direct,
            database_direct_url: None,
        }
    }
}

impl DbConfig {
    /// The acquire timeout as a `Duration`.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }
}

/// Settings of `authd serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on: an IP address and port such as `127.0.0.1:8080`, `[::1]:8080` or
    /// `0.0.0.0:8080` (every interface; then `AUTHD_ISSUER` is required); `localhost:PORT`
    /// means `127.0.0.1:PORT`. Port 0 picks a free port.
    #[arg(
        long,
        env = "AUTHD_LISTEN",
        value_name = "AUTHD_LISTEN",
        default_value = "127.0.0.1:8080",
        value_parser = parse_listen
    )]
    pub listen: SocketAddr,

    /// `iss` of access tokens and the server's own origin for the CSRF check: the URL clients
    /// reach authd at (default: `http://` + the listen address; required when listening on
    /// every interface, whose address is no URL anyone can use).
    #[arg(long, env = "AUTHD_ISSUER", value_name = "AUTHD_ISSUER")]
    pub issuer: Option<String>,

    /// `aud` of access tokens.
    #[arg(
        long,
        env = "AUTHD_AUDIENCE",
        value_name = "AUTHD_AUDIENCE",
        default_value = "authd"
    )]
    pub audience: String,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "AUTHD_ACCESS_TTL_SECS", value_name = "AUTHD_ACCESS_TTL_SECS", default_value_t = 300, value_parser = clap::value_parser!(i64).range(1..=86_400))]
    pub access_ttl_secs: i64,

    /// A session ends when it is not refreshed for this long, in seconds.
    #[arg(long, env = "AUTHD_REFRESH_IDLE_SECS", value_name = "AUTHD_REFRESH_IDLE_SECS", default_value_t = 1_209_600, value_parser = clap::value_parser!(i64).range(60..=31_536_000))]
    pub refresh_idle_secs: i64,

    /// A session ends this long after login whatever happens, in seconds.
    #[arg(long, env = "AUTHD_SESSION_MAX_SECS", value_name = "AUTHD_SESSION_MAX_SECS", default_value_t = 2_592_000, value_parser = clap::value_parser!(i64).range(60..=31_536_000))]
    pub session_max_secs: i64,

    /// Absolute limit, in seconds, of a session opened with `"remember": false` (a shared
    /// computer): its cookie has no `Max-Age`, so it also ends when the browser closes. Never
    /// longer than `AUTHD_SESSION_MAX_SECS`.
    #[arg(long, env = "AUTHD_SHORT_SESSION_MAX_SECS", value_name = "AUTHD_SHORT_SESSION_MAX_SECS", default_value_t = 43_200, value_parser = clap::value_parser!(i64).range(60..=31_536_000))]
    pub short_session_max_secs: i64,

    /// Seconds after a rotation during which the rotated refresh token returns the same
    /// successor instead of counting as reuse; 0 turns the grace window off.
    #[arg(long, env = "AUTHD_REUSE_GRACE_SECS", value_name = "AUTHD_REUSE_GRACE_SECS", default_value_t = 10, value_parser = clap::value_parser!(i64).range(0..=300))]
    pub reuse_grace_secs: i64,

    /// Most live sessions one user may have; a login past it ends the user's oldest session
    /// (`session_revoked`).
    #[arg(long, env = "AUTHD_MAX_SESSIONS_PER_USER", value_name = "AUTHD_MAX_SESSIONS_PER_USER", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_sessions_per_user: u64,

    /// Comma-separated origins (`https://app.example.com`) allowed CORS with credentials and
    /// cookie-borne requests.
    #[arg(long, env = "AUTHD_ALLOWED_ORIGINS", value_name = "AUTHD_ALLOWED_ORIGINS", default_value = "", value_parser = parse_origins)]
    pub allowed_origins: Origins,

    /// Read the client IP from `X-Forwarded-For`: `off` (never), `on` (one trusted proxy in
    /// front of authd) or the number of trusted proxies in a chain (1 to 10). authd takes the
    /// entry that the farthest trusted proxy appended, counted from the right: entries to its
    /// left are whatever the client wrote.
    #[arg(long, env = "AUTHD_TRUST_PROXY", value_name = "AUTHD_TRUST_PROXY", default_value = "off", value_parser = parse_proxy_hops)]
    pub trust_proxy: usize,

    /// Drop `Secure` and the `__Host-` prefix from cookies (plain-HTTP development only).
    #[arg(long, env = "AUTHD_INSECURE_COOKIES", value_name = "AUTHD_INSECURE_COOKIES", default_value = "off", value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub insecure_cookies: bool,

    /// Throttle login, register and refresh (`off` for load tests).
    #[arg(long, env = "AUTHD_RATE_LIMITS", value_name = "AUTHD_RATE_LIMITS", default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub rate_limits: bool,

    /// Clock-skew allowance on `exp`, in seconds.
    #[arg(long, env = "AUTHD_LEEWAY_SECS", value_name = "AUTHD_LEEWAY_SECS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..=300))]
    pub leeway_secs: i64,

    /// Seconds between two runs of the background pruning.
    #[arg(long, env = "AUTHD_PRUNE_INTERVAL_SECS", value_name = "AUTHD_PRUNE_INTERVAL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub prune_interval_secs: u64,

    /// Sign with the Ed25519 key in this PEM file (PKCS#8) instead of the keys kept in the
    /// database; every instance must then be given the same file.
    #[arg(long, env = "AUTHD_KEY_FILE", value_name = "AUTHD_KEY_FILE")]
    pub key_file: Option<std::path::PathBuf>,

    /// Serve `/metrics` on this separate address (keep it private) instead of the main listener.
    #[arg(
        long,
        env = "AUTHD_METRICS_LISTEN",
        value_name = "AUTHD_METRICS_LISTEN"
    )]
    pub metrics_listen: Option<SocketAddr>,

    /// Threads that hash and verify passwords (argon2id, 19 MiB each while working); 0 means one
    /// per CPU core.
    #[arg(long, env = "AUTHD_HASH_THREADS", value_name = "AUTHD_HASH_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=256))]
    pub hash_threads: u64,

    /// Password checks that may wait for a hashing thread; past it, login, registration and
    /// password change answer 503 with `Retry-After` at once.
    #[arg(long, env = "AUTHD_HASH_QUEUE", value_name = "AUTHD_HASH_QUEUE", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub hash_queue: u64,

    /// Milliseconds a client has to send a request's head, from connecting (or from the
    /// request's first byte on a kept-alive connection) to the blank line that ends it.
    #[arg(long, env = "AUTHD_HTTP_HEADER_TIMEOUT_MS", value_name = "AUTHD_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_header_timeout_ms: u64,

    /// Milliseconds from the end of a request's head to the start of the answer: the body must
    /// arrive within it.
    #[arg(long, env = "AUTHD_HTTP_REQUEST_TIMEOUT_MS", value_name = "AUTHD_HTTP_REQUEST_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_request_timeout_ms: u64,

    /// Milliseconds a kept-alive connection may stay silent between an answer and the next
    /// request.
    #[arg(long, env = "AUTHD_HTTP_IDLE_TIMEOUT_MS", value_name = "AUTHD_HTTP_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub http_idle_timeout_ms: u64,

    /// Most open connections; past it new ones are closed at once. 0: three quarters of the
    /// file-descriptor limit, at most 8192.
    #[arg(long, env = "AUTHD_MAX_CONNECTIONS", value_name = "AUTHD_MAX_CONNECTIONS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub max_connections: u64,

    /// Most open connections from one client address (behind a proxy, that is the proxy: raise
    /// it or set 0 for no per-address cap).
    #[arg(long, env = "AUTHD_MAX_CONNECTIONS_PER_IP", value_name = "AUTHD_MAX_CONNECTIONS_PER_IP", default_value_t = 512, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub max_connections_per_ip: u64,

    /// Milliseconds between two polls of the shared revocation list and key set.
    #[arg(long, env = "AUTHD_SYNC_INTERVAL_MS", value_name = "AUTHD_SYNC_INTERVAL_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub sync_interval_ms: u64,

    /// Most revocation-feed requests held waiting (`wait` > 0) at once; past it they answer
    /// 503 with `Retry-After`. A held request holds no database connection.
    #[arg(long, env = "AUTHD_FEED_MAX_WAITERS", value_name = "AUTHD_FEED_MAX_WAITERS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub feed_max_waiters: u64,

    /// Most revocation-feed requests one service key may hold waiting at once (one per verifier
    /// process is what a kit uses).
    #[arg(long, env = "AUTHD_FEED_MAX_WAITERS_PER_KEY", value_name = "AUTHD_FEED_MAX_WAITERS_PER_KEY", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub feed_max_waiters_per_key: u64,

    #[command(flatten)]
    pub mail: MailConfig,
}

/// How authd sends mail (password reset, email verification and change).
#[derive(Clone, Args)]
pub struct MailConfig {
    /// The SMTP server: `smtp://[USER:PASSWORD@]HOST[:PORT]` (STARTTLS, required; port 587 by
    /// default), `smtps://...` (TLS from the first byte; port 465), or `smtp://HOST:PORT?tls=none`
    /// (plain text: only for a relay on the same host). Unset: mail is written as `.eml` files
    /// to `AUTHD_MAIL_DIR` instead (development). The password is never logged.
    #[arg(
        long,
        env = "AUTHD_SMTP_URL",
        value_name = "AUTHD_SMTP_URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,

    /// Where mail goes as `.eml` files when `AUTHD_SMTP_URL` is unset.
    #[arg(
        long,
        env = "AUTHD_MAIL_DIR",
        value_name = "AUTHD_MAIL_DIR",
        default_value = "authd-mail"
    )]
    pub mail_dir: std::path::PathBuf,

    /// The sender of every mail, `Name <address>`.
    #[arg(
        long,
        env = "AUTHD_MAIL_FROM",
        value_name = "AUTHD_MAIL_FROM",
        default_value = "authd <no-reply@localhost>"
    )]
    pub mail_from: String,

    /// The web app (SPA) that mailed links open; the token travels in the link's fragment
    /// (`#action=...&token=...`), which no server sees. Default: the issuer.
    #[arg(long, env = "AUTHD_APP_URL", value_name = "AUTHD_APP_URL")]
    pub app_url: Option<String>,

    /// The product name mails speak of.
    #[arg(
        long,
        env = "AUTHD_PRODUCT_NAME",
        value_name = "AUTHD_PRODUCT_NAME",
        default_value = "authd"
    )]
    pub product_name: String,

    /// A directory of mail templates that replace the built-in ones, file by file
    /// (`password_reset.subject`, `password_reset.txt`, `password_reset.html`, ...).
    #[arg(
        long,
        env = "AUTHD_MAIL_TEMPLATES",
        value_name = "AUTHD_MAIL_TEMPLATES"
    )]
    pub mail_templates: Option<std::path::PathBuf>,

    /// Refuse the login of an account whose email is not verified (`403 email_not_verified`,
    /// only once the password was right).
    #[arg(long, env = "AUTHD_REQUIRE_VERIFIED_EMAIL", value_name = "AUTHD_REQUIRE_VERIFIED_EMAIL", default_value = "off", value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub require_verified_email: bool,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            mail_dir: std::path::PathBuf::from("authd-mail"),
            mail_from: "authd <no-reply@localhost>".to_owned(),
            app_url: None,
            product_name: "authd".to_owned(),
            mail_templates: None,
            require_verified_email: false,
        }
    }
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("smtp", &self.smtp_url.as_ref().map(|_| "(set)"))
            .field("mail_dir", &self.mail_dir)
            .field("mail_from", &self.mail_from)
            .field("app_url", &self.app_url)
            .field("product_name", &self.product_name)
            .field("mail_templates", &self.mail_templates)
            .field("require_verified_email", &self.require_verified_email)
            .finish()
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            audience: "authd".to_owned(),
            access_ttl_secs: 300,
            refresh_idle_secs: 1_209_600,
            session_max_secs: 2_592_000,
            short_session_max_secs: 43_200,
            reuse_grace_secs: 10,
            max_sessions_per_user: 100,
            allowed_origins: Origins::default(),
            trust_proxy: 0,
            insecure_cookies: false,
            rate_limits: true,
            leeway_secs: 30,
            prune_interval_secs: 300,
            sync_interval_ms: 500,
            metrics_listen: None,
            key_file: None,
            hash_threads: 0,
            hash_queue: 64,
            http_header_timeout_ms: 10_000,
            http_request_timeout_ms: 60_000,
            http_idle_timeout_ms: 60_000,
            max_connections: 0,
            max_connections_per_ip: 512,
            feed_max_waiters: 1000,
            feed_max_waiters_per_key: 100,
            mail: MailConfig::default(),
        }
    }
}

impl ServeConfig {
    /// Checks the rules that involve more than one setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.refresh_idle_secs > self.session_max_secs {
            return Err(format!(
                "AUTHD_REFRESH_IDLE_SECS ({}) must not exceed AUTHD_SESSION_MAX_SECS ({})",
                self.refresh_idle_secs, self.session_max_secs
            ));
        }
        if self.access_ttl_secs > self.refresh_idle_secs {
            return Err(format!(
                "AUTHD_ACCESS_TTL_SECS ({}) must not exceed AUTHD_REFRESH_IDLE_SECS ({}): an \
                 access token would outlive the idle limit of its session",
                self.access_ttl_secs, self.refresh_idle_secs
            ));
        }
        if self.listen.ip().is_unspecified() && self.issuer.is_none() {
            return Err(format!(
                "AUTHD_ISSUER is required when AUTHD_LISTEN is {} (every interface): it is the \
                 `iss` of every access token and the origin the CSRF check compares with, so set \
                 it to the URL clients use, such as https://auth.example.com",
                self.listen
            ));
        }
        if let Some(issuer) = &self.issuer {
            origin_of(issuer).ok_or_else(|| {
                format!("AUTHD_ISSUER must be an http(s) URL such as https://auth.example.com, got {issuer:?}")
            })?;
        }
        if self.audience.trim().is_empty() {
            return Err("AUTHD_AUDIENCE must not be empty".to_owned());
        }
        Ok(())
    }

    /// The HTTP connection limits.
    pub fn connection_limits(&self) -> crate::conn::Limits {
        crate::conn::Limits {
            header_timeout: Duration::from_millis(self.http_header_timeout_ms),
            request_timeout: Duration::from_millis(self.http_request_timeout_ms),
            idle_timeout: Duration::from_millis(self.http_idle_timeout_ms),
            max_connections: match self.max_connections {
                0 => crate::conn::default_max_connections(),
                n => n as usize,
            },
            max_per_ip: self.max_connections_per_ip as usize,
        }
    }

    /// The `iss` claim: the configured issuer, or `http://` + the listen address.
    pub fn issuer_for(&self, bound: SocketAddr) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
    }
}

fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = raw.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "expected an IP address and a port, such as 127.0.0.1:8080, [::1]:8080 or 0.0.0.0:8080 \
         (every interface), or localhost:8080; got {raw:?}"
    ))
}

/// A validated list of web origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

fn parse_origins(raw: &str) -> Result<Origins, String> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match origin_of(item) {
            Some(origin) if is_bare_origin(item) => out.push(origin),
            _ => {
                return Err(format!(
                    "{item:?} is not an origin (scheme://host[:port], no path)"
                ));
            }
        }
    }
    Ok(Origins(out))
}

/// The origin of an http(s) URL as a browser writes it in `Origin`: `scheme://host[:port]`,
/// lower-case, the host in its IDNA ASCII form, no default port (so `https://App.example:443`
/// is `https://app.example`). `None` for anything else, or a URL with credentials in it.
pub fn origin_of(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    let web = matches!(url.scheme(), "http" | "https") && url.host().is_some();
    (web && url.username().is_empty() && url.password().is_none())
        .then(|| url.origin().ascii_serialization())
}

/// Is `raw` an origin and nothing more (no path, query or fragment)?
fn is_bare_origin(raw: &str) -> bool {
    url::Url::parse(raw.trim())
        .is_ok_and(|u| u.path() == "/" && u.query().is_none() && u.fragment().is_none())
}

fn parse_proxy_hops(raw: &str) -> Result<usize, String> {
    if let Ok(on) = parse_switch(raw) {
        return Ok(usize::from(on));
    }
    match raw.trim().parse::<usize>() {
        Ok(n @ 0..=10) => Ok(n),
        _ => Err(format!(
            "expected off, on or the number of trusted proxies (0 to 10), got {raw:?}"
        )),
    }
}

fn parse_switch(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" | "" => Ok(false),
        other => Err(format!("expected on or off, got {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_as_browsers_write_them() {
        assert_eq!(
            origin_of("HTTPS://App.Example.com:443").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            origin_of("http://a.test:80/x").as_deref(),
            Some("http://a.test")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:5173").as_deref(),
            Some("http://127.0.0.1:5173")
        );
        assert_eq!(
            origin_of("https://b\u{fc}cher.example").as_deref(),
            Some("https://xn--bcher-kva.example")
        );
        for bad in [
            "ftp://a.test",
            "https://user:pw@a.test",
            "localhost:3000",
            "*",
            "",
        ] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_allow_list_takes_origins_only() {
        let ok = parse_origins("https://a.test, https://B.test:443/").unwrap();
        assert_eq!(ok.0, ["https://a.test", "https://b.test"]);
        for bad in ["https://a.test/path", "https://a.test?x", "not an origin"] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_proxy_count_is_off_on_or_a_number() {
        assert_eq!(parse_proxy_hops("off"), Ok(0));
        assert_eq!(parse_proxy_hops("on"), Ok(1));
        assert_eq!(parse_proxy_hops("3"), Ok(3));
        assert!(parse_proxy_hops("11").is_err());
        assert!(parse_proxy_hops("many").is_err());
    }
}
