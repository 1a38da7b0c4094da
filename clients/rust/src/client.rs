//! The two requests the verifier makes to authd: the JWKS and a page of the revocation feed.
//! Every request is counted, so that tests can prove verification itself makes none.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::FetchError;
use crate::keys::KeySet;
use crate::revoked::RevokedMap;

/// Entries asked for per page.
const PAGE_LIMIT: u32 = 1000;

/// A client for one authd, holding the service key.
pub(crate) struct AuthdClient {
    http: reqwest::Client,
    jwks_url: Url,
    feed_url: Url,
    /// `Bearer authd_sk_...`, marked sensitive.
    authorization: HeaderValue,
    timeout: Duration,
    requests: AtomicU64,
}

/// One answer of the feed.
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    pub(crate) entries: Vec<Entry>,
    pub(crate) cursor: String,
    pub(crate) more: bool,
}

/// One ended session, as the feed sends it; only the fields the verifier needs are read.
#[derive(Debug, Deserialize)]
pub(crate) struct Entry {
    pub(crate) session_id: String,
    /// RFC 3339: after it no access token of the session can verify.
    pub(crate) expires_at: String,
}

impl Entry {
    /// `expires_at` in Unix seconds.
    pub(crate) fn horizon(&self) -> Result<i64, FetchError> {
        OffsetDateTime::parse(&self.expires_at, &Rfc3339)
            .map(OffsetDateTime::unix_timestamp)
            .map_err(|e| FetchError::Body(format!("expires_at {:?}: {e}", self.expires_at)))
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

impl AuthdClient {
    /// A client for the authd at `base` (no trailing slash).
    pub(crate) fn new(
        http: reqwest::Client,
        base: &str,
        authorization: HeaderValue,
        timeout: Duration,
    ) -> Result<Self, String> {
        let url = |path: &str| Url::parse(&format!("{base}{path}")).map_err(|e| e.to_string());
        Ok(Self {
            http,
            jwks_url: url("/.well-known/jwks.json")?,
            feed_url: url("/auth/revocations")?,
            authorization,
            timeout,
            requests: AtomicU64::new(0),
        })
    }

    /// How many requests were sent so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `GET /.well-known/jwks.json`.
    pub(crate) async fn jwks(&self) -> Result<KeySet, FetchError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .http
            .get(self.jwks_url.clone())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(unreachable)?;
        let body = ok(answer).await?.bytes().await.map_err(unreachable)?;
        KeySet::from_json(&body)
    }

    /// `GET /auth/revocations`: the snapshot's first page without `cursor`, else the entries
    /// after it, held up to `wait` seconds while there are none.
    pub(crate) async fn page(&self, cursor: Option<&str>, wait: u64) -> Result<Page, FetchError> {
        let mut request = self
            .http
            .get(self.feed_url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .timeout(self.timeout + Duration::from_secs(wait))
            .query(&[("limit", PAGE_LIMIT)]);
        if let Some(cursor) = cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        if wait > 0 {
            request = request.query(&[("wait", wait)]);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answer = request.send().await.map_err(unreachable)?;
        ok(answer).await?.json::<Page>().await.map_err(|e| {
            if e.is_decode() {
                FetchError::Body(e.to_string())
            } else {
                unreachable(e)
            }
        })
    }

    /// The whole snapshot, page after page, purged of the entries already past `now` plus
    /// `leeway`; with the cursor to follow next.
    pub(crate) async fn snapshot(
        &self,
        now: impl Fn() -> i64,
        leeway: i64,
    ) -> Result<(RevokedMap, String), FetchError> {
        let mut map = RevokedMap::default();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.page(cursor.as_deref(), 0).await?;
            insert_all(&mut map, &page.entries)?;
            // Once, at the end: authd sends only entries still in force, and a purge per page
            // made loading grow with the square of the snapshot (2.8 s for 300,000 entries).
            if !page.more {
                map.purge(now(), leeway);
                return Ok((map, page.cursor));
            }
            cursor = Some(page.cursor);
        }
    }
}

/// Inserts a page's entries. A page with an unreadable entry is refused whole (and retried):
/// skipping the entry would let that session's tokens verify.
pub(crate) fn insert_all(map: &mut RevokedMap, entries: &[Entry]) -> Result<(), FetchError> {
    let horizons = entries
        .iter()
        .map(Entry::horizon)
        .collect::<Result<Vec<_>, _>>()?;
    for (entry, horizon) in entries.iter().zip(horizons) {
        map.insert(&entry.session_id, horizon);
    }
    Ok(())
}

/// A failed request, with its causes (reqwest's own text names only the URL).
fn unreachable(e: reqwest::Error) -> FetchError {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    FetchError::Unreachable(text)
}

/// The answer if it is a success, else the contract's error for its status.
async fn ok(answer: reqwest::Response) -> Result<reqwest::Response, FetchError> {
    let status = answer.status();
    if status.is_success() {
        return Ok(answer);
    }
    let retry_after = answer
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let code = answer
        .json::<ErrorBody>()
        .await
        .map(|b| b.error)
        .unwrap_or_default();
    Err(match status {
        StatusCode::UNAUTHORIZED => FetchError::InvalidServiceKey,
        StatusCode::FORBIDDEN => FetchError::InsufficientScope,
        StatusCode::GONE => FetchError::CursorExpired,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
            FetchError::Unavailable {
                status: status.as_u16(),
                retry_after,
            }
        }
        _ => FetchError::Status {
            status: status.as_u16(),
            code,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(session_id: &str, expires_at: &str) -> Entry {
        Entry {
            session_id: session_id.into(),
            expires_at: expires_at.into(),
        }
    }

    #[test]
    fn expires_at_is_read_as_rfc3339_with_any_offset() {
        assert_eq!(entry("s", "1970-01-01T00:01:40Z").horizon(), Ok(100));
        assert_eq!(entry("s", "1970-01-01T01:01:40+01:00").horizon(), Ok(100));
        assert!(entry("s", "yesterday").horizon().is_err());
    }

    #[test]
    fn a_page_with_an_unreadable_entry_inserts_nothing() {
        let mut map = RevokedMap::default();
        let entries = [entry("a", "2030-01-01T00:00:00Z"), entry("b", "soon")];
        assert!(insert_all(&mut map, &entries).is_err());
        assert_eq!(map.len(), 0);
    }
}
