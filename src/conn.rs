//! Limits on HTTP connections, in front of the server: a cap on open connections (in all and
//! per client address), a deadline for each request's head, one for the rest of the request,
//! and one for a keep-alive connection's silence. Without them a few thousand connections that
//! trickle a header line now and then hold every file descriptor, and the accept loop spins on
//! the errors that follow.
//!
//! The deadlines work on the byte stream, below HTTP: a connection is "in a head" from its first
//! byte (or its acceptance) until the blank line that ends the head, "in a request" from there
//! until the server writes its answer, and "idle" after that until the next byte. A deadline
//! that passes closes the connection. The accept loop never fails: a connection over a cap is
//! closed at once, and an accept error (out of file descriptors) is logged and retried after a
//! pause instead of spinning.
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long the accept loop pauses after an accept error (file descriptors exhausted).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Refusals and timeouts are logged as one line per kind at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The limits (see the `AUTHD_HTTP_*` and `AUTHD_MAX_CONNECTIONS*` settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a connection's acceptance, or a request's first byte, to the end of its head.
    pub header_timeout: Duration,
    /// From the end of a request's head to the first byte of the answer (the body included).
    pub request_timeout: Duration,
    /// Silence allowed on a connection between an answer and the next request.
    pub idle_timeout: Duration,
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections per client address; 0: no per-address cap.
    pub max_per_ip: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A kind of event that is counted and logged in aggregate.
#[derive(Clone, Copy)]
enum Event {
    Refused,
    TimedOut,
    AcceptFailed,
}

struct Shared {
    limits: Limits,
    counts: Mutex<Counts>,
    events: [AtomicU64; 3],
    reported: Mutex<[Option<std::time::Instant>; 3]>,
}

impl Shared {
    fn admit(&self, ip: Option<IpAddr>) -> bool {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.limits.max_connections {
            return false;
        }
        if let Some(ip) = ip {
            let n = c.per_ip.entry(ip).or_default();
            if self.limits.max_per_ip > 0 && *n >= self.limits.max_per_ip {
                return false;
            }
            *n += 1;
        }
        c.total += 1;
        true
    }

    fn release(&self, ip: Option<IpAddr>) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(ip) = ip
            && let Some(n) = c.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&ip);
            }
        }
    }

    /// Counts `event`, and logs the count since the last report at most every
    /// [`REPORT_EVERY`], so that an attack cannot flood the log.
    fn report(&self, event: Event, detail: &dyn std::fmt::Display) {
        let i = event as usize;
        self.events[i].fetch_add(1, Ordering::Relaxed);
        let now = std::time::Instant::now();
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if reported[i].is_some_and(|at| now.duration_since(at) < REPORT_EVERY) {
            return;
        }
        reported[i] = Some(now);
        let n = self.events[i].swap(0, Ordering::Relaxed);
        let l = self.limits;
        match event {
            Event::Refused => tracing::warn!(
                connections = n,
                max = l.max_connections,
                max_per_ip = l.max_per_ip,
                last = %detail,
                "connections refused: over AUTHD_MAX_CONNECTIONS or AUTHD_MAX_CONNECTIONS_PER_IP"
            ),
            Event::TimedOut => tracing::warn!(
                connections = n,
                header_timeout_ms = l.header_timeout.as_millis() as u64,
                request_timeout_ms = l.request_timeout.as_millis() as u64,
                last = %detail,
                "connections closed: a request's head or body was too slow"
            ),
            Event::AcceptFailed => tracing::warn!(
                errors = n,
                error = %detail,
                "accepting connections failed (out of file descriptors?); retrying"
            ),
        }
    }
}

/// An acceptor that applies [`Limits`] to `A`'s connections.
pub struct LimitedAcceptor<A> {
    inner: A,
    shared: Arc<Shared>,
}

impl<A> LimitedAcceptor<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, limits: Limits) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                limits,
                counts: Mutex::default(),
                events: Default::default(),
                reported: Mutex::default(),
            }),
        }
    }
}

impl<A: Acceptor> Acceptor for LimitedAcceptor<A> {
    type Io = Limited<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            match self.inner.accept().await {
                Ok((io, local, remote, scheme)) => {
                    let ip = remote.as_socket_addr().map(|a| a.ip());
                    if self.shared.admit(ip) {
                        let io = Limited::new(io, self.shared.clone(), ip);
                        return Ok((io, local, remote, scheme));
                    }
                    drop(io);
                    let who = ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
                    self.shared.report(Event::Refused, &who);
                }
                Err(e) => {
                    self.shared.report(Event::AcceptFailed, &e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request's head.
    Head,
    /// The head is in; the body (if any) and the handler until the answer starts.
    Request,
    /// Answered; waiting for the next request.
    Idle,
}

/// A connection under [`Limits`]; releases its place when dropped.
pub struct Limited<Io> {
    io: Io,
    shared: Arc<Shared>,
    ip: Option<IpAddr>,
    phase: Phase,
    /// The last bytes of the head read so far, to find its end across reads.
    tail: [u8; 3],
    deadline: Pin<Box<Sleep>>,
}

impl<Io> Limited<Io> {
    fn new(io: Io, shared: Arc<Shared>, ip: Option<IpAddr>) -> Self {
        let deadline = Box::pin(tokio::time::sleep(shared.limits.header_timeout));
        Self {
            io,
            shared,
            ip,
            phase: Phase::Head,
            tail: [0; 3],
            deadline,
        }
    }

    fn enter(&mut self, phase: Phase) {
        let l = self.shared.limits;
        let after = match phase {
            Phase::Head => l.header_timeout,
            Phase::Request => l.request_timeout,
            Phase::Idle => l.idle_timeout,
        };
        self.phase = phase;
        self.deadline.as_mut().reset(Instant::now() + after);
    }

    /// Follows the phase through `bytes`, just read.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Idle {
            self.enter(Phase::Head);
            self.tail = [0; 3];
        }
        if self.phase != Phase::Head {
            return;
        }
        // The end of a head may straddle two reads: look at the kept tail joined to the start
        // of these bytes (a few bytes, on the stack), then at these bytes alone.
        let mut seam = [0u8; 6];
        let head = bytes.len().min(3);
        seam[..3].copy_from_slice(&self.tail);
        seam[3..3 + head].copy_from_slice(&bytes[..head]);
        if ends_a_head(&seam[..3 + head]) || ends_a_head(bytes) {
            self.enter(Phase::Request);
            return;
        }
        let keep = bytes.len().min(3);
        let mut tail = [0u8; 3];
        // Shift the old tail left by what these bytes bring, then append them.
        tail[..3 - keep].copy_from_slice(&self.tail[keep..]);
        tail[3 - keep..].copy_from_slice(&bytes[bytes.len() - keep..]);
        self.tail = tail;
    }
}

/// Does `bytes` hold the blank line that ends a request head (CRLF CRLF, or bare LF LF)?
fn ends_a_head(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"\r\n\r\n") || bytes.windows(2).any(|w| w == b"\n\n")
}

impl<Io> Drop for Limited<Io> {
    fn drop(&mut self) {
        self.shared.release(self.ip);
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Limited<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    if this.phase != Phase::Idle {
                        let who = this.ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
                        this.shared.report(Event::TimedOut, &who);
                    }
                    Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Limited<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.enter(Phase::Idle);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.enter(Phase::Idle);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The default cap on open connections: three quarters of this process's file-descriptor
/// limit (the rest is for the database, logs and the listener), at most 8192.
pub fn default_max_connections() -> usize {
    #[cfg(target_os = "linux")]
    if let Some(soft) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
        return (soft.saturating_mul(3) / 4).clamp(16, 8192) as usize;
    }
    8192
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(max: usize, per_ip: usize) -> Arc<Shared> {
        let d = Duration::from_secs(1);
        LimitedAcceptor::new(
            (),
            Limits {
                header_timeout: d,
                request_timeout: d,
                idle_timeout: d,
                max_connections: max,
                max_per_ip: per_ip,
            },
        )
        .shared
    }

    #[test]
    fn the_caps_count_connections_in_all_and_per_address() {
        let s = shared(3, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        assert!(s.admit(Some(a)));
        assert!(s.admit(Some(a)));
        assert!(!s.admit(Some(a)), "per address");
        assert!(s.admit(Some(b)));
        assert!(!s.admit(Some(b)), "in all");
        s.release(Some(a));
        assert!(s.admit(Some(b)));
    }

    #[tokio::test]
    async fn the_head_ends_at_the_blank_line_even_across_reads() {
        let mut c = Limited::new((), shared(10, 0), None);
        c.saw(b"GET / HTTP/1.1\r\nHost: x\r");
        assert_eq!(c.phase, Phase::Head);
        c.saw(b"\n\r");
        assert_eq!(c.phase, Phase::Head);
        c.saw(b"\n");
        assert_eq!(c.phase, Phase::Request);
        // Split after every byte position of a short head, including inside the blank line.
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 1..head.len() {
            let mut c = Limited::new((), shared(10, 0), None);
            c.saw(&head[..cut]);
            c.saw(&head[cut..]);
            assert_eq!(c.phase, Phase::Request, "cut at {cut}");
        }
        let mut c = Limited::new((), shared(10, 0), None);
        for b in head.iter() {
            c.saw(std::slice::from_ref(b));
        }
        assert_eq!(c.phase, Phase::Request, "one byte at a time");
        c.enter(Phase::Idle);
        c.saw(b"G");
        assert_eq!(c.phase, Phase::Head, "a new request starts a new head");
    }
}
