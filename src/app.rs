//! Builds the state, the routes and the middleware; binds; runs the background tasks that keep
//! the revoked set and key set fresh and prune the database.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, IntoResponse, Route, Server};
use tokio::task::JoinHandle;

use crate::api::{self, AppState, CookiePolicy, HttpPolicy, Inner, OriginPolicy};
use crate::clock::SharedClock;
use crate::config::{DbConfig, ServeConfig, origin_of};
use crate::feed::{Feed, FeedLimits};
use crate::passwords::Hasher;
use crate::sessions::Sessions;
use crate::store::feed::FeedPosition;
use crate::store::{IssuingPolicy, Store};
use crate::tokens::{AccessTokens, KeyRecord, KeySet, RevokedSet, ServiceKeys};

/// Revocations read per query of the sync, and queries per pass (bounding one pass's work).
const SYNC_PAGE: u64 = 10_000;
const SYNC_PAGES_PER_PASS: usize = 50;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::tokens::keys::KeyError),
    #[error("signing keys: {0}")]
    Keyring(#[from] crate::keyring::KeyringError),
    #[error("password hasher: {0}")]
    Hasher(#[from] crate::passwords::PasswordError),
    #[error("the OS random number generator failed: {0}")]
    Random(String),
    #[error(transparent)]
    Spec(#[from] api::spec::SpecError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A server that is listening.
pub struct RunningApp {
    /// The bound address (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    /// The shared state, for tests and tools.
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningApp {
    /// Stops accepting, drains in-flight requests (up to 10 s) and stops the background tasks.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Waits until the server stops (after a signal). A server task that panicked is an
    /// error, never a clean exit.
    pub async fn wait(mut self) -> std::io::Result<()> {
        let joined = (&mut self.server).await;
        for t in &self.tasks {
            t.abort();
        }
        joined.map_err(|e| std::io::Error::other(format!("the server task failed: {e}")))?
    }
}

impl Drop for RunningApp {
    /// A server dropped without [`stop`](Self::stop) or [`wait`](Self::wait) stops at once:
    /// its listener and background tasks are aborted rather than left running unowned.
    fn drop(&mut self) {
        self.server.abort();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Connects, migrates, loads keys and revocations, binds and serves. `signal` ends the server
/// gracefully when it resolves.
pub async fn start(
    db: &DbConfig,
    cfg: &ServeConfig,
    clock: SharedClock,
    signal: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
) -> Result<RunningApp, StartError> {
    cfg.validate().map_err(StartError::Config)?;
    let store = Store::connect(db).await?;
    store.migrate().await?;
    let own = IssuingPolicy {
        access_ttl_secs: cfg.access_ttl_secs,
        leeway_secs: cfg.leeway_secs,
        reuse_grace_secs: cfg.reuse_grace_secs,
    };
    let policy = store.record_issuing_policy(own, clock.now()).await?;
    if policy != own {
        tracing::info!(
            access_ttl_secs = policy.access_ttl_secs,
            leeway_secs = policy.leeway_secs,
            reuse_grace_secs = policy.reuse_grace_secs,
            "the database records larger token lifetimes from another or an earlier server: \
             revocations, pruning and key overlap follow them"
        );
    }
    let overlap = policy.key_overlap_secs();
    let keys = Arc::new(KeySet::default());
    match &cfg.key_file {
        Some(path) => keys.load(&[KeyRecord::from_pem_file(path, clock.now())?])?,
        None => crate::keyring::load(&store, &keys, clock.now(), overlap).await?,
    }
    let key_sync = cfg.key_file.is_none();

    let revoked = Arc::new(RevokedSet::default());
    let mut position = FeedPosition::default();
    read_revocations(&store, &revoked, &mut position, clock.now(), usize::MAX).await?;
    let service_keys = Arc::new(ServiceKeys::default());
    service_keys.replace(store.live_service_keys().await?);

    let threads = match cfg.hash_threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n as usize,
    };
    let hasher = Hasher::new(threads, cfg.hash_queue as usize).await?;

    let acceptor = TcpListener::bind(cfg.listen)
        .into_acceptor()
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let acceptor = crate::conn::LimitedAcceptor::new(acceptor, cfg.connection_limits());
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .unwrap_or(cfg.listen);
    let issuer = cfg.issuer_for(addr);
    let own_origin = origin_of(&issuer).unwrap_or_else(|| format!("http://{addr}"));
    let mailer = Arc::new(
        crate::mail::Mailer::new(&cfg.mail, &issuer)
            .map_err(|e| StartError::Config(e.to_string()))?,
    );
    mailer.announce();

    let access = AccessTokens::new(
        keys.clone(),
        revoked.clone(),
        clock.clone(),
        issuer,
        cfg.audience.clone(),
        cfg.access_ttl_secs,
        cfg.leeway_secs,
    );
    access.set_max_lifetime(policy.access_ttl_secs);
    let mut fresh_key = [0u8; 32];
    getrandom::fill(&mut fresh_key).map_err(|e| StartError::Random(e.to_string()))?;
    let device_key = store
        .shared_secret("device_token_key", clock.now(), || fresh_key.to_vec())
        .await?;
    let devices = crate::tokens::DeviceTokens::new(&device_key);
    let mut fresh_key = [0u8; 32];
    getrandom::fill(&mut fresh_key).map_err(|e| StartError::Random(e.to_string()))?;
    let cursor_key = store
        .shared_secret("feed_cursor_key", clock.now(), || fresh_key.to_vec())
        .await?;
    let feed = Arc::new(Feed::new(
        &cursor_key,
        FeedLimits {
            max_waiters: cfg.feed_max_waiters as usize,
            max_waiters_per_key: cfg.feed_max_waiters_per_key as usize,
        },
    ));
    let metrics = Arc::new(crate::metrics::Metrics::new()?);
    let rules = crate::sessions::Rules {
        refresh_idle_secs: cfg.refresh_idle_secs,
        session_max_secs: cfg.session_max_secs,
        reuse_grace_secs: cfg.reuse_grace_secs,
        max_sessions_per_user: cfg.max_sessions_per_user,
        short_session_max_secs: cfg.short_session_max_secs,
    };
    let sessions = Sessions::new(
        store,
        access.clone(),
        revoked.clone(),
        feed.clone(),
        metrics.clone(),
        clock.clone(),
        rules,
    );
    let state = AppState(Arc::new(Inner {
        sessions,
        hasher,
        access,
        devices,
        limits: crate::ratelimit::RateLimits::new(clock.clone(), cfg.rate_limits),
        clock,
        http: HttpPolicy {
            cookies: CookiePolicy::new(cfg.insecure_cookies),
            origins: OriginPolicy::new(own_origin, cfg.allowed_origins.0.clone()),
            trust_proxy: cfg.trust_proxy,
        },
        metrics,
        service_keys,
        feed,
        // A held feed request answers well before the HTTP request timeout would cut it.
        feed_max_wait: Duration::from_millis(cfg.http_request_timeout_ms.saturating_sub(1000)),
        mailer: mailer.clone(),
        require_verified_email: cfg.mail.require_verified_email,
    }));

    let kick = Arc::new(tokio::sync::Notify::new());
    let mut tasks = vec![
        tokio::spawn(sync_loop(
            state.clone(),
            position,
            Duration::from_millis(cfg.sync_interval_ms),
            key_sync,
            kick.clone(),
        )),
        tokio::spawn(prune_loop(
            state.clone(),
            Duration::from_secs(cfg.prune_interval_secs),
        )),
        tokio::spawn(crate::mail::sender(
            state.store().clone(),
            mailer,
            state.clock.clone(),
        )),
    ];

    if let Some(listen) = crate::store::listen::announcements(&state.store().clone(), kick) {
        tasks.push(tokio::spawn(listen));
    }
    let mut app = routes()?;
    match cfg.metrics_listen {
        None => app = app.at("/metrics", metrics_endpoint(state.clone())),
        Some(maddr) => {
            let listener = TcpListener::bind(maddr)
                .into_acceptor()
                .await
                .map_err(|source| StartError::Bind {
                    addr: maddr,
                    source,
                })?;
            let ep = Route::new().at("/metrics", metrics_endpoint(state.clone()));
            tasks.push(tokio::spawn(async move {
                if let Err(e) = Server::new_with_acceptor(listener).run(ep).await {
                    tracing::error!(error = %e, "metrics listener stopped");
                }
            }));
        }
    }
    let app = app
        .with(poem::middleware::CookieJarManager::new())
        .with(poem::middleware::CatchPanic::new().with_handler(panic_response))
        .data(state.clone());
    // The boundary's middlewares, innermost first (see `api::http`).
    let app = app.around(api::http::bodies::checked);
    let origins = Arc::new(state.http.origins.clone());
    let app = app.around(move |ep, req| {
        let origins = origins.clone();
        async move { api::http::cors::allow_listed(ep, &origins, req).await }
    });
    let app = app.around(api::http::hygiene::headers);
    let metrics = state.metrics.clone();
    let app = app.around(move |ep, req| {
        let metrics = metrics.clone();
        async move { api::http::log::requests(ep, &metrics, req).await }
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let feed = state.feed.clone();
    let server = tokio::spawn(async move {
        let stop = async move {
            match signal {
                Some(signal) => {
                    tokio::select! {
                        _ = signal => {}
                        _ = rx => {}
                    }
                }
                None => {
                    let _ = rx.await;
                }
            }
            // Held feed requests answer now instead of holding up the drain.
            feed.close();
        };
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, stop, Some(Duration::from_secs(10)))
            .await
    });
    tracing::info!(%addr, docs = %format!("http://{addr}/docs"), "authd listening");
    Ok(RunningApp {
        addr,
        state,
        shutdown: Some(tx),
        server,
        tasks,
    })
}

/// `GET /metrics`: the Prometheus text format, with the gauges read at scrape time.
fn metrics_endpoint(state: AppState) -> impl poem::Endpoint<Output = poem::Response> {
    poem::endpoint::make_sync(move |_| {
        let m = &state.metrics;
        m.revoked_set_size.set(state.access.revoked().len() as i64);
        m.feed_held.set(state.feed.held() as i64);
        let (open, idle) = state.store().pool_stats();
        m.db_pool.with_label_values(&["idle"]).set(idle as i64);
        m.db_pool
            .with_label_values(&["in_use"])
            .set(i64::from(open) - idle as i64);
        poem::Response::builder()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(m.render())
    })
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> poem::Response {
    tracing::error!("a request handler panicked");
    crate::api::error::ApiError::Internal.into_response()
}

/// The routes: the API, the docs UI and the spec (all three serve the one finished document of
/// [`api::spec`]).
pub fn routes() -> Result<Route, api::spec::SpecError> {
    let service = api::service();
    let docs_html = api::spec::swagger_ui_html()?;
    let docs = Route::new().at(
        "/",
        poem::endpoint::make_sync(move |_| poem::web::Html(docs_html.clone())),
    );
    let json = api::spec::json()?;
    let yaml = api::spec::yaml()?;
    Ok(Route::new()
        .at(
            "/openapi.json",
            poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json; charset=utf-8")
                    .body(json.clone())
            }),
        )
        .at(
            "/openapi.yaml",
            poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/yaml; charset=utf-8")
                    .body(yaml.clone())
            }),
        )
        .nest("/docs", docs)
        .nest("/", service))
}

/// Keeps the in-memory revoked set, service keys and key set in step with the database, so
/// that a session ended, a key revoked or a signing key rotated by another instance (or by the
/// CLI) takes effect here within one interval (at once when `kick` is notified: on Postgres, by
/// another instance's `NOTIFY`), with no database read on the verify path.
async fn sync_loop(
    state: AppState,
    mut position: FeedPosition,
    every: Duration,
    sync_keys: bool,
    kick: Arc<tokio::sync::Notify>,
) {
    let mut key_sync = crate::keyring::KeySync::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = kick.notified() => {}
        }
        let now = state.clock.now();
        if let Err(e) = sync_revocations(&state, &mut position, now).await {
            tracing::warn!(error = %e, "revocation sync failed");
        }
        state.access.revoked().purge(now);
        state.limits.purge();
        sync_service_keys(&state).await;
        // Retired keys verify, and tokens may live, as long as the recorded policy says
        // (another server may issue longer-lived tokens than this one).
        let overlap = match state.store().issuing_policy().await {
            Ok(p) => {
                state.access.set_max_lifetime(p.access_ttl_secs);
                p.key_overlap_secs()
            }
            Err(e) => {
                tracing::warn!(error = %e, "policy sync failed");
                continue;
            }
        };
        if !sync_keys {
            continue;
        }
        key_sync
            .step(state.store(), state.access.keys(), now, overlap)
            .await;
    }
}

/// Reads the revocations recorded after `position` into the revoked set, a page at a time (at
/// most `pages` of them), and wakes the held feed requests when there were new ones. The
/// position never skips an entry (see `store::feed`), so a burst of revocations elsewhere cannot
/// hold up the entries recorded behind it.
async fn sync_revocations(
    state: &AppState,
    position: &mut FeedPosition,
    now: i64,
) -> Result<(), crate::store::StoreError> {
    let revoked = state.access.revoked();
    if read_revocations(state.store(), revoked, position, now, SYNC_PAGES_PER_PASS).await? {
        state.feed.ring();
    }
    Ok(())
}

/// Reads up to `pages` pages after `position` into `revoked`; says whether any entry was new.
async fn read_revocations(
    store: &Store,
    revoked: &RevokedSet,
    position: &mut FeedPosition,
    now: i64,
    pages: usize,
) -> Result<bool, crate::store::StoreError> {
    let mut new = false;
    for _ in 0..pages {
        let page = store.read_feed(position, SYNC_PAGE, now).await?;
        for e in &page.entries {
            revoked.insert(&e.session_id, e.expires_at);
        }
        new |= !page.entries.is_empty();
        *position = page.next;
        if !page.more {
            break;
        }
    }
    Ok(new)
}

/// Reloads the service keys in force (a revoked one stops working here within one pass) and
/// writes when keys were last used.
async fn sync_service_keys(state: &AppState) {
    let store = state.store();
    if let Err(e) = state.service_keys.reload(store.live_service_keys()).await {
        tracing::warn!(error = %e, "service key sync failed");
    }
    let used = state.service_keys.take_used();
    if let Err(e) = state.store().touch_service_keys(&used).await {
        tracing::warn!(error = %e, "recording service key use failed");
    }
}

/// Runs the pruning every `every`.
async fn prune_loop(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.store().prune(state.clock.now()).await {
            Ok(p) => tracing::debug!(?p, "pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
    }
}
