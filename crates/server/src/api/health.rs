//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::AppState;

/// Health status.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "entries": 43}))]
pub struct Health {
    /// `ok` from `/healthz` (the process answers); `ready` from `/readyz` (it takes writes).
    pub status: String,
    /// The number of entries in the ledger (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
}

/// Liveness
///
/// 200 while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health {
        status: "ok".into(),
        entries: None,
    })
}

/// Readiness
///
/// 200 when the ledger's state can be read and both stores take writes; 503 (`unavailable`) with
/// the reason in `detail` when the state cannot be read, when writes are refused (the ledger's
/// writer stopped after a storage failure, the last ledger write found the disk full, or registry
/// writes stopped until a restart), and 503 (`shutting_down`) while the service drains before it
/// stops.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "`unavailable` (the reason is in `detail`) or `shutting_down`", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let entries = state
        .ledger
        .size()
        .map_err(|e| ApiError::Unavailable(format!("the ledger cannot be read: {e}")))?;
    let refusals = write_refusals(
        state.ledger.refusing_writes(),
        state.registry.write_refusal(),
    );
    if let Some(reasons) = refusals {
        return Err(ApiError::Unavailable(reasons));
    }
    Ok(HttpResponse::Ok().json(Health {
        status: "ready".into(),
        entries: Some(entries),
    }))
}

/// Why writes are refused, store by store, in one sentence: `None` when both take writes.
fn write_refusals(ledger: Option<String>, registry: Option<String>) -> Option<String> {
    let reasons: Vec<String> = [("ledger", ledger), ("registry", registry)]
        .into_iter()
        .filter_map(|(store, reason)| reason.map(|r| format!("{store}: {r}")))
        .collect();
    (!reasons.is_empty()).then(|| format!("writes are refused; {}", reasons.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusing_store_is_named() {
        assert_eq!(write_refusals(None, None), None);
        let both = write_refusals(Some("disk full".into()), Some("stopped".into())).unwrap();
        assert_eq!(
            both,
            "writes are refused; ledger: disk full; registry: stopped"
        );
    }
}
