//! The cookie policy and the CSRF gate, in one place.
//!
//! The refresh token travels in `__Host-refresh_token` (HttpOnly, Secure, SameSite=Strict,
//! Path=/): the `__Host-` prefix forbids a `Domain` attribute, so no sibling subdomain can plant
//! or shadow it. Cookie-borne requests must carry `X-Requested-With` (which a cross-site form
//! cannot send and which forces a CORS preflight from scripts) and come from our own origin or
//! an allowed one; login gets the same Origin check against login CSRF.
use poem::Request;
use poem::http::header;

use crate::api::error::{ApiError, CsrfCheck};

/// How the server names and marks its cookies.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    insecure: bool,
}

impl CookiePolicy {
    /// `insecure` drops `Secure` and the `__Host-` prefix (`AUTHD_INSECURE_COOKIES`).
    pub fn new(insecure: bool) -> Self {
        Self { insecure }
    }

    /// Name of the refresh-token cookie.
    pub fn name(&self) -> &'static str {
        if self.insecure {
            "refresh_token"
        } else {
            "__Host-refresh_token"
        }
    }

    fn attributes(&self) -> &'static str {
        if self.insecure {
            "Path=/; HttpOnly; SameSite=Strict"
        } else {
            "Path=/; HttpOnly; Secure; SameSite=Strict"
        }
    }

    /// `Set-Cookie` value carrying `token` for `max_age` seconds.
    pub fn set(&self, token: &str, max_age: i64) -> String {
        format!(
            "{}={token}; Max-Age={}; {}",
            self.name(),
            max_age.max(0),
            self.attributes()
        )
    }

    /// `Set-Cookie` value carrying `token` until the browser closes (no `Max-Age`): for a
    /// session opened with `"remember": false`. The session's own limits still apply.
    pub fn set_until_closed(&self, token: &str) -> String {
        format!("{}={token}; {}", self.name(), self.attributes())
    }

    /// `Set-Cookie` value that removes the cookie: empty, `Max-Age=0`, same name, path and
    /// attributes.
    pub fn expire(&self) -> String {
        format!("{}=; Max-Age=0; {}", self.name(), self.attributes())
    }

    /// The refresh token from the request's `Cookie` headers, if any. Only the first cookie of
    /// that name counts.
    pub fn read(&self, req: &Request) -> Option<String> {
        let name = self.name();
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"').to_owned())
    }
}

/// Which origins may make credentialed requests: our own and the configured allow-list.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    own: String,
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// `own` is the issuer's origin; `allowed` the `AUTHD_ALLOWED_ORIGINS` list.
    pub fn new(own: String, allowed: Vec<String>) -> Self {
        Self { own, allowed }
    }

    /// Is `origin` in the allow-list (for CORS with credentials)?
    pub fn is_allowed_cross_origin(&self, origin: &str) -> bool {
        self.allowed.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    fn is_own(&self, origin: &str, req: &Request) -> bool {
        if origin.eq_ignore_ascii_case(&self.own) {
            return true;
        }
        // The same server reached by another name (localhost vs 127.0.0.1): the browser
        // sets Origin, so a page elsewhere cannot claim to be us.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        host.is_some_and(|h| {
            origin.eq_ignore_ascii_case(&format!("http://{h}"))
                || origin.eq_ignore_ascii_case(&format!("https://{h}"))
        })
    }

    /// The Origin / Sec-Fetch-Site check (login and cookie-borne requests).
    pub fn check_origin(&self, req: &Request) -> Result<(), ApiError> {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("null"));
        match origin {
            Some(o) if self.is_own(o, req) || self.is_allowed_cross_origin(o) => Ok(()),
            Some(_) => Err(ApiError::CsrfRejected(CsrfCheck::ForeignOrigin)),
            None => {
                let site = req
                    .headers()
                    .get("sec-fetch-site")
                    .and_then(|v| v.to_str().ok());
                if site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
                    Err(ApiError::CsrfRejected(CsrfCheck::CrossSiteFetch))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The full gate for requests that carry the refresh cookie.
    pub fn check_cookie_request(&self, req: &Request) -> Result<(), ApiError> {
        if !req.headers().contains_key("x-requested-with") {
            return Err(ApiError::CsrfRejected(CsrfCheck::MissingRequestedWith));
        }
        self.check_origin(req)
    }
}
