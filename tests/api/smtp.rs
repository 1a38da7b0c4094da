//! A mail server for the tests: it speaks enough SMTP (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
//! for lettre, on a free loopback port, and keeps what it was given. It can refuse the next
//! messages with a temporary failure, to make the sender retry.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed).
    pub data: String,
}

impl Received {
    /// The message's text with quoted-printable soft breaks undone, for searching.
    pub fn text(&self) -> String {
        self.data.replace("=\r\n", "").replace("=3D", "=")
    }

    /// The token of the link this message carries (`...#action=A&token=T`), if any.
    pub fn token(&self) -> Option<String> {
        let text = self.text();
        let at = text.find("&token=")? + "&token=".len();
        Some(
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect(),
        )
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    refuse_next: usize,
}

/// A running sink.
#[derive(Clone)]
pub struct Sink {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl Sink {
    /// A sink on a free port.
    pub async fn start() -> Sink {
        Self::on(0).await
    }

    /// A sink on `port` (0: any free one).
    pub async fn on(port: u16) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(session(conn, shared.clone()));
            }
        });
        Sink {
            port,
            state,
            task: Arc::new(task),
        }
    }

    /// `AUTHD_SMTP_URL` for this sink (plain text: it is on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Answers the next `n` messages with `451` (try again later).
    pub fn refuse_next(&self, n: usize) {
        self.state.lock().expect("lock").refuse_next = n;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }

    /// Waits (10 s at most) until `n` messages have arrived, and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        self.wait_for_within(n, Duration::from_secs(10)).await
    }

    /// Waits at most `limit` until `n` messages have arrived, and returns them all.
    pub async fn wait_for_within(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} mails arrived within {limit:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn session(conn: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read);
    let mut to = Vec::new();
    if write.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if command.starts_with("MAIL FROM") {
            to.clear();
            b"250 OK\r\n"
        } else if command.starts_with("RCPT TO") {
            let raw = line.trim_end();
            let addr = raw[raw.find('<').map_or(0, |i| i + 1)..]
                .trim_end_matches('>')
                .to_owned();
            to.push(addr);
            b"250 OK\r\n"
        } else if command == "DATA" {
            if write.write_all(b"354 go on\r\n").await.is_err() {
                return;
            }
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let mut s = state.lock().expect("lock");
            if s.refuse_next > 0 {
                s.refuse_next -= 1;
                b"451 try again later\r\n"
            } else {
                s.received.push(Received {
                    to: std::mem::take(&mut to),
                    data,
                });
                b"250 queued\r\n"
            }
        } else if command == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else if command.starts_with("RSET") || command.starts_with("NOOP") {
            b"250 OK\r\n"
        } else {
            b"502 not here\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
