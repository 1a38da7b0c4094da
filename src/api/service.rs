//! Service keys at the HTTP boundary: the security scheme, and the scope each operation needs.
use std::sync::Arc;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use super::AppState;
use crate::api::error::ApiError;
use crate::tokens::{Scope, ServiceKey};

/// The paths that take a service key, not an access token: a request to them without any
/// credential hears `invalid_service_key`.
pub fn takes_service_key(path: &str) -> bool {
    path == "/auth/revocations" || path == "/auth/introspect" || path.starts_with("/admin/")
}

/// A service key from `authd service-keys create`, as `Authorization: Bearer authd_sk_...`.
/// Each operation names the scope it needs (`revocations:read`, `introspect`, `admin`). An
/// access token is never a service key.
#[derive(SecurityScheme)]
#[oai(
    rename = "serviceKey",
    ty = "bearer",
    bearer_format = "authd_sk_...",
    checker = "check_service_key"
)]
pub struct ServiceKeyAuth(pub Arc<ServiceKey>);

impl ServiceKeyAuth {
    /// The key, if it carries `scope`; otherwise 403 `insufficient_scope`.
    pub fn require(&self, scope: Scope) -> Result<&ServiceKey, ApiError> {
        if self.0.allows(scope) {
            Ok(&self.0)
        } else {
            tracing::info!(key = %self.0.name, scope = scope.as_str(), "service key lacks scope");
            Err(ApiError::InsufficientScope(scope))
        }
    }
}

pub(super) async fn check_service_key(
    req: &Request,
    bearer: Bearer,
) -> poem::Result<Arc<ServiceKey>> {
    let state = req.data::<AppState>().ok_or(ApiError::Internal)?;
    let ip = state.client_meta(req).ip.unwrap_or_default();
    let limiter = &state.limits.service_key_ip;
    state.refuse_for(limiter.wait_secs(&ip), "service_key")?;
    match state.service_keys.check(&bearer.token, state.clock.now()) {
        Some(key) => Ok(key),
        None => {
            // Only failures spend the bucket; the answer is the same 401 either way.
            let _ = limiter.take(&ip);
            tracing::info!(ip = %ip, "service key refused");
            Err(ApiError::InvalidServiceKey.into())
        }
    }
}
