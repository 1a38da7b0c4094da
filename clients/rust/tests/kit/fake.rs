//! A fake authd: the JWKS and the revocation feed of the contract, on 127.0.0.1:0, with a
//! revocation log the test controls, forced error answers, and a real stop (its own runtime on
//! its own thread, so that stopping it drops every connection, held long-polls included).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot, watch};

use crate::support::{SERVICE_KEY, rfc3339};

/// What the fake serves and counts.
pub struct FakeState {
    keys: Mutex<Vec<Value>>,
    log: Mutex<Vec<Value>>,
    /// Part of every cursor: bumping it expires them all (410).
    epoch: AtomicU64,
    page_size: AtomicUsize,
    changed: Notify,
    forced: Mutex<Option<(StatusCode, Option<u64>, &'static str)>>,
    jwks_status: Mutex<Option<StatusCode>>,
    scope_ok: AtomicBool,
    refuse_cursors: AtomicBool,
    snapshots_open: watch::Sender<bool>,
    /// `GET /.well-known/jwks.json` answered.
    pub jwks_fetches: AtomicUsize,
    /// Feed requests received.
    pub feed_requests: AtomicUsize,
    /// Feed requests without `cursor` (the start of a snapshot).
    pub snapshot_requests: AtomicUsize,
    /// Long-polls being held right now.
    pub held: AtomicUsize,
}

/// A running (or stopped) fake authd.
pub struct Fake {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
    running: Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Fake {
    /// A fake serving the JWKs `keys` and an empty feed, pages of 1000.
    pub fn start(keys: Vec<Value>) -> Self {
        let state = Arc::new(FakeState {
            keys: Mutex::new(keys),
            log: Mutex::new(Vec::new()),
            epoch: AtomicU64::new(1),
            page_size: AtomicUsize::new(1000),
            changed: Notify::new(),
            forced: Mutex::new(None),
            jwks_status: Mutex::new(None),
            scope_ok: AtomicBool::new(true),
            refuse_cursors: AtomicBool::new(false),
            snapshots_open: watch::channel(true).0,
            jwks_fetches: AtomicUsize::new(0),
            feed_requests: AtomicUsize::new(0),
            snapshot_requests: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fake = Self {
            addr,
            state,
            running: None,
        };
        fake.serve(listener);
        fake
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/auth/revocations", get(feed))
            .with_state(Arc::clone(&self.state));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: clients see the socket close.
        });
        self.running = Some((stop, thread));
    }

    /// Stops serving: every connection is closed, new ones are refused.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            thread.join().unwrap();
        }
        self.state.held.store(0, Ordering::SeqCst);
    }

    /// Serves again on the same address.
    pub fn restart(&mut self) {
        self.stop();
        let listener = std::net::TcpListener::bind(self.addr).unwrap();
        self.serve(listener);
    }

    /// Publishes an ended session whose tokens all expire at `expires_at` (Unix seconds); a
    /// held long-poll answers at once.
    pub fn revoke(&self, session_id: &str, expires_at: i64) {
        self.state.log.lock().unwrap().push(json!({
            "session_id": session_id,
            "user_id": "u1",
            "revoked_at": rfc3339(expires_at - 300),
            "expires_at": rfc3339(expires_at),
            "reason": "logout",
        }));
        self.state.changed.notify_waiters();
    }

    /// Expires every cursor (the next poll gets 410) and keeps only the entries of `keep`.
    pub fn expire_cursors(&self, keep: &[&str]) {
        self.state
            .log
            .lock()
            .unwrap()
            .retain(|e| keep.contains(&e["session_id"].as_str().unwrap_or_default()));
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
        self.state.changed.notify_waiters();
    }

    /// Every cursor, also a fresh snapshot's, answers 410 while `on` (a broken authd).
    pub fn refuse_cursors(&self, on: bool) {
        self.state.refuse_cursors.store(on, Ordering::SeqCst);
        self.state.changed.notify_waiters();
    }

    /// The JWKs served from now on.
    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.state.keys.lock().unwrap() = keys;
    }

    /// Snapshot pages of `size` entries.
    pub fn set_page_size(&self, size: usize) {
        self.state.page_size.store(size, Ordering::SeqCst);
    }

    /// Every feed request (held ones too) answers `status` with this error code.
    pub fn fail_feed(&self, status: u16, retry_after: Option<u64>, code: &'static str) {
        let status = StatusCode::from_u16(status).unwrap();
        *self.state.forced.lock().unwrap() = Some((status, retry_after, code));
        self.state.changed.notify_waiters();
    }

    /// The JWKS answers `status`.
    pub fn fail_jwks(&self, status: u16) {
        *self.state.jwks_status.lock().unwrap() = Some(StatusCode::from_u16(status).unwrap());
    }

    /// The service key loses (or regains) the scope `revocations:read`: 403.
    pub fn set_scope(&self, ok: bool) {
        self.state.scope_ok.store(ok, Ordering::SeqCst);
        self.state.changed.notify_waiters();
    }

    /// Answers normally again.
    pub fn heal(&self) {
        *self.state.forced.lock().unwrap() = None;
        self.set_scope(true);
    }

    /// Holds every snapshot request until `open_snapshots`.
    pub fn hold_snapshots(&self) {
        self.state.snapshots_open.send_replace(false);
    }

    /// Releases the held snapshot requests.
    pub fn open_snapshots(&self) {
        self.state.snapshots_open.send_replace(true);
    }

    /// A counter's value.
    pub fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn jwks(State(state): State<Arc<FakeState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(status) = *state.jwks_status.lock().unwrap() {
        return error(status, "internal_error");
    }
    let keys = state.keys.lock().unwrap().clone();
    Json(json!({ "keys": keys })).into_response()
}

#[derive(Deserialize)]
struct FeedQuery {
    cursor: Option<String>,
    limit: Option<usize>,
    wait: Option<u64>,
}

/// Decrements the held count however the poll ends, also when the client hangs up.
struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn feed(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Response {
    state.feed_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    let epoch = state.epoch.load(Ordering::SeqCst);
    let len = state.log.lock().unwrap().len();
    let start = match &query.cursor {
        None => {
            state.snapshot_requests.fetch_add(1, Ordering::SeqCst);
            let mut open = state.snapshots_open.subscribe();
            let _ = open.wait_for(|open| *open).await;
            0
        }
        Some(cursor) => match parse_cursor(&state, cursor, epoch, len) {
            Some(start) => start,
            None => return error(StatusCode::GONE, "cursor_expired"),
        },
    };
    let wait = query.wait.unwrap_or(0).min(30);
    if query.cursor.is_some() && wait > 0 {
        state.held.fetch_add(1, Ordering::SeqCst);
        let _held = Held(&state.held);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        loop {
            let changed = state.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if state.log.lock().unwrap().len() > start
                || state.epoch.load(Ordering::SeqCst) != epoch
                || state.refuse_cursors.load(Ordering::SeqCst)
                || state.forced.lock().unwrap().is_some()
                || !state.scope_ok.load(Ordering::SeqCst)
            {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        if let Some(refused) = refusal(&state, &headers) {
            return refused;
        }
        if state.epoch.load(Ordering::SeqCst) != epoch
            || state.refuse_cursors.load(Ordering::SeqCst)
        {
            return error(StatusCode::GONE, "cursor_expired");
        }
    }
    let log = state.log.lock().unwrap();
    let size = query
        .limit
        .unwrap_or(1000)
        .min(state.page_size.load(Ordering::SeqCst));
    let end = (start + size).min(log.len());
    Json(json!({
        "entries": log[start..end].to_vec(),
        "cursor": format!("{epoch}:{end}"),
        "more": end < log.len(),
    }))
    .into_response()
}

/// The refusal a feed request gets now, if any: a wrong key, a missing scope, a forced error.
fn refusal(state: &FakeState, headers: &HeaderMap) -> Option<Response> {
    let expected = format!("Bearer {SERVICE_KEY}");
    if headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) != Some(expected.as_bytes()) {
        return Some(error(StatusCode::UNAUTHORIZED, "invalid_service_key"));
    }
    if !state.scope_ok.load(Ordering::SeqCst) {
        return Some(error(StatusCode::FORBIDDEN, "insufficient_scope"));
    }
    let (status, retry_after, code) = (*state.forced.lock().unwrap())?;
    let mut response = error(status, code);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
    }
    Some(response)
}

fn parse_cursor(state: &FakeState, cursor: &str, epoch: u64, len: usize) -> Option<usize> {
    if state.refuse_cursors.load(Ordering::SeqCst) {
        return None;
    }
    let (e, position) = cursor.split_once(':')?;
    let position: usize = position.parse().ok()?;
    (e.parse::<u64>().ok()? == epoch && position <= len).then_some(position)
}

fn error(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "message": "fake authd"})),
    )
        .into_response()
}
