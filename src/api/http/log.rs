//! One log line and the metrics per request, and the request id that ties them to the answer.
use std::sync::Arc;
use std::time::Instant;

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;

use crate::metrics::Metrics;

/// Runs `ep`, then counts and logs the answer under the operation's id.
pub async fn requests<E: Endpoint>(
    ep: Arc<E>,
    metrics: &Metrics,
    req: Request,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let started = Instant::now();
    let request_id = request_id(&req);
    let mut resp = ep.call(req).await?.into_response();
    let status = resp.status().as_u16();
    let route = resp
        .data::<OperationId>()
        .map_or_else(|| route_label(&path), |o| o.0);
    let elapsed = started.elapsed();
    let status_label = status.to_string();
    metrics
        .requests
        .with_label_values(&[route, &status_label])
        .inc();
    metrics
        .latency
        .with_label_values(&[route, &status_label])
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "authd::http",
        %method,
        route,
        status,
        latency_ms = elapsed.as_micros() as f64 / 1000.0,
        request_id = %request_id,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}

/// The label of a request that reached no API operation.
fn route_label(path: &str) -> &'static str {
    match path {
        "/openapi.json" | "/openapi.yaml" => "spec",
        "/metrics" => "metrics",
        p if p == "/docs" || p.starts_with("/docs/") => "docs",
        _ => "unmatched",
    }
}

/// The caller's `X-Request-Id` when it is short and plain, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}
