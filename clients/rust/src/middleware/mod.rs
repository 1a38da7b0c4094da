//! What the tower layer and the poem middleware share: where the token is read from, and the
//! answers to a refused request.
#[cfg(feature = "poem")]
pub(crate) mod poem;
#[cfg(feature = "tower")]
pub(crate) mod tower;

use std::sync::Arc;

use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::{Claims, Verifier, VerifyError};

/// A verifier, and the cookie a token may also come in.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    pub(crate) verifier: Verifier,
    pub(crate) cookie: Option<Arc<str>>,
}

impl Gate {
    /// The claims of the request's token, or why it is refused.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<Claims, Refusal> {
        let Some(token) = token(headers, self.cookie.as_deref()) else {
            tracing::debug!("request refused: no access token");
            return Err(Refusal(None));
        };
        self.verifier.verify(token).map_err(|error| {
            tracing::debug!(%error, "request refused");
            Refusal(Some(error))
        })
    }
}

/// Why a request is refused: no token, or the verifier's error.
pub(crate) struct Refusal(Option<VerifyError>);

impl Refusal {
    /// 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"` for a missing
    /// or refused token; 503 `service_unavailable` with `Retry-After: 1` for a stale verifier.
    pub(crate) fn response(&self) -> Response<String> {
        refusal(self.0.as_ref())
    }
}

/// The token of `Authorization: Bearer <token>`, or else of the cookie `cookie`.
fn token<'a>(headers: &'a HeaderMap, cookie: Option<&str>) -> Option<&'a str> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty());
    bearer.or_else(|| {
        let name = cookie?;
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.trim_matches('"'))
            .filter(|t| !t.is_empty())
    })
}

/// The answer to a refused request (see [`Refusal::response`]).
fn refusal(error: Option<&VerifyError>) -> Response<String> {
    let stale = matches!(error, Some(VerifyError::Stale));
    let (status, code, message) = if stale {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The service is temporarily unavailable; retry shortly.",
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The access token is missing, invalid or expired.",
        )
    };
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if stale {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    } else {
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_bearer_header_wins_over_the_cookie() {
        let h = headers(&[("authorization", "Bearer abc"), ("cookie", "at=def")]);
        assert_eq!(token(&h, Some("at")), Some("abc"));
        let h = headers(&[("authorization", "bearer  abc ")]);
        assert_eq!(token(&h, None), Some("abc"));
    }

    #[test]
    fn the_cookie_is_read_only_when_configured() {
        let h = headers(&[("cookie", "a=1; at=def"), ("cookie", "b=2")]);
        assert_eq!(token(&h, Some("at")), Some("def"));
        assert_eq!(token(&h, None), None);
        let h = headers(&[("authorization", "Basic dXNlcg=="), ("cookie", "at=def")]);
        assert_eq!(token(&h, Some("at")), Some("def"));
        assert_eq!(token(&h, None), None);
    }

    #[test]
    fn refusals_carry_the_contract_headers() {
        let r = refusal(Some(&VerifyError::Revoked));
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        let r = refusal(Some(&VerifyError::Stale));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        assert!(r.body().contains("service_unavailable"));
    }
}
