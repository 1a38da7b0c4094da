//! `/healthz` (liveness) and `/readyz` (readiness).
use std::time::Duration;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{AppState, Tag};
use crate::api::error::codes::*;
use crate::api::error::{ApiError, Errors};

/// How long a probe waits for the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A probe's answer.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Liveness only: `ok`, or `unreachable` while the database cannot be reached (authd keeps
    /// verifying access tokens from memory meanwhile).
    #[oai(skip_serializing_if_is_none)]
    pub database: Option<String>,
}

impl poem_openapi::types::Example for Health {
    fn example() -> Self {
        Self {
            status: "ok".into(),
            database: Some("ok".into()),
        }
    }
}

/// A probe's success.
#[derive(ApiResponse)]
pub enum Probe {
    /// Healthy (or ready).
    #[oai(status = 200)]
    Ok(Json<Health>),
}

async fn database_reachable(state: &AppState) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, state.store().ping()).await,
        Ok(Ok(()))
    )
}

/// Probes.
#[derive(Default)]
pub struct HealthApi;

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// 200 while the process serves, whatever the database does: during a database outage
    /// authd keeps verifying access tokens from memory, so restarting it would only make things
    /// worse. The body reports the database (`ok` or `unreachable`); readiness (`/readyz`) is
    /// the probe that follows it.
    #[oai(path = "/healthz", method = "get", operation_id = "health")]
    async fn health(&self, state: Data<&AppState>) -> Result<Probe, Errors<0>> {
        let database = if database_reachable(&state).await {
            "ok"
        } else {
            "unreachable"
        };
        Ok(Probe::Ok(Json(Health {
            status: "ok".into(),
            database: Some(database.into()),
        })))
    }

    /// Readiness
    ///
    /// 503 until migrations ran and the signing keys are loaded, and while the database cannot
    /// be reached.
    #[oai(path = "/readyz", method = "get", operation_id = "ready")]
    async fn ready(
        &self,
        state: Data<&AppState>,
    ) -> Result<Probe, Errors<{ SERVICE_UNAVAILABLE }>> {
        if !state.access.keys().is_ready() || !database_reachable(&state).await {
            return Err(ApiError::ServiceUnavailable.into());
        }
        Ok(Probe::Ok(Json(Health {
            status: "ok".into(),
            database: None,
        })))
    }
}
