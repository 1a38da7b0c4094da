//! The poem middleware: `AuthdMiddleware` wraps an endpoint in `AuthdEndpoint`.
use std::sync::Arc;

use ::poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::Gate;
use crate::Verifier;

/// A poem [`Middleware`] that lets through only requests with a valid access token, putting its
/// [`Claims`](crate::Claims) in the request's data (handlers take `Data<&Claims>`). Refused
/// requests get 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"`, or
/// 503 `service_unavailable` with `Retry-After: 1` when the verifier is stale.
#[derive(Clone, Debug)]
pub struct AuthdMiddleware {
    gate: Gate,
}

impl AuthdMiddleware {
    /// A middleware reading `Authorization: Bearer <token>`.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            gate: Gate {
                verifier,
                cookie: None,
            },
        }
    }

    /// Also reads the token from the cookie `name` when there is no bearer token.
    #[must_use]
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.gate.cookie = Some(Arc::from(name.into()));
        self
    }
}

impl<E: Endpoint> Middleware<E> for AuthdMiddleware {
    type Output = AuthdEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AuthdEndpoint {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// The endpoint [`AuthdMiddleware`] makes: verifies, then calls `inner` with the claims.
#[derive(Debug)]
pub struct AuthdEndpoint<E> {
    inner: E,
    gate: Gate,
}

impl<E: Endpoint> Endpoint for AuthdEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        match self.gate.check(request.headers()) {
            Ok(claims) => {
                request.set_data(claims);
                Ok(self.inner.call(request).await?.into_response())
            }
            Err(refusal) => {
                let (parts, body) = refusal.response().into_parts();
                let mut response = Response::builder().status(parts.status).body(body);
                *response.headers_mut() = parts.headers;
                Ok(response)
            }
        }
    }
}
