//! The tower layer (axum, hyper, tonic): `AuthdLayer` wraps a service in `AuthdService`.
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::Gate;
use crate::Verifier;

/// A tower [`Layer`] that lets through only requests with a valid access token, putting its
/// [`Claims`](crate::Claims) in the request's extensions (axum: `Extension<Claims>`). Refused
/// requests get 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"`, or
/// 503 `service_unavailable` with `Retry-After: 1` when the verifier is stale.
#[derive(Clone, Debug)]
pub struct AuthdLayer {
    gate: Gate,
}

impl AuthdLayer {
    /// A layer reading `Authorization: Bearer <token>`.
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

impl<S> Layer<S> for AuthdLayer {
    type Service = AuthdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthdService {
            inner,
            gate: self.gate.clone(),
        }
    }
}

/// The service [`AuthdLayer`] makes: verifies, then calls `inner` with the claims.
#[derive(Clone, Debug)]
pub struct AuthdService<S> {
    inner: S,
    gate: Gate,
}

/// The future of [`AuthdService`]: the refusal at once, or the inner service's answer.
pub type ResponseFuture<F, B, E> = Either<std::future::Ready<Result<Response<B>, E>>, F>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthdService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.gate.check(request.headers()) {
            Ok(claims) => {
                request.extensions_mut().insert(claims);
                Either::Right(self.inner.call(request))
            }
            Err(refusal) => {
                let response = refusal.response().map(ResBody::from);
                Either::Left(std::future::ready(Ok(response)))
            }
        }
    }
}
