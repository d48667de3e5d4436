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
/// 200 when the ledger's state can be read and writes are taken; 503 (`unavailable`) with the
/// reason when either is not so (the writer stopped after a storage failure, or the last write
/// found the disk full).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "`unavailable`", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let entries = state
        .ledger
        .size()
        .map_err(|e| ApiError::Unavailable(format!("the ledger cannot be read: {e}")))?;
    if let Some(reason) = state.ledger.refusing_writes() {
        return Err(ApiError::Unavailable(format!(
            "the ledger refuses writes: {reason}"
        )));
    }
    Ok(HttpResponse::Ok().json(Health {
        status: "ready".into(),
        entries: Some(entries),
    }))
}
