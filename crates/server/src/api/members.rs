//! Member credentials: reissue (a lost card) and revocation.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::created;
use crate::auth::{Caller, Operation};
use crate::idempotency::{fingerprint, IdemKey, IdempotencyKeyHeader};
use crate::problem::{ApiError, Problem};
use crate::registry::CredentialStatus;
use crate::service;
use crate::AppState;

/// A member's new credential, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialIssued {
    /// The new member credential. Not stored; a repeat of this request with the same
    /// Idempotency-Key shows it again only within the replay window (24 hours by default) and
    /// while it is the member's current credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The new credential's public record.
    pub status: CredentialStatus,
}

/// The problems both credential operations answer with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document, never built
enum CredentialProblems {
    /// `invalid_path`, `idempotency_key_missing`, `idempotency_key_invalid`
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No valid credential (`unauthorized`)
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Not an administrator or the registering partner (`forbidden`)
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such member (`member_not_found`)
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// `idempotency_key_in_flight`
    #[response(status = 409, content_type = "application/problem+json")]
    InFlight(Problem),
    /// `idempotency_key_reused`
    #[response(status = 422, content_type = "application/problem+json")]
    Reused(Problem),
    /// `storage_full`, `unavailable`
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Reissue a member credential
///
/// Gives the member a new credential (a lost or stolen card) and revokes the previous one, which
/// is refused from this moment. There is no body. Administrators, and the earn partner that
/// registered the member.
#[utoipa::path(post, path = "/v1/members/{id}/credential", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id"), IdempotencyKeyHeader),
    responses(
        (status = 201, description = "The new credential and its record", body = CredentialIssued),
        CredentialProblems,
    ),
    security(("bearer" = [])))]
pub async fn reissue_credential(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::ManageCredential)?;
    let id = id.into_inner();
    let print = fingerprint("reissue_credential", &id);
    let reissued =
        service::members::reissue_credential(&state, &caller, &idempotency_key.0, print, id)?;
    Ok(created(
        reissued.replayed,
        &CredentialIssued {
            credential: reissued.credential,
            status: reissued.status,
        },
    ))
}

/// Revoke a member credential
///
/// The member's credential is refused from this moment, and no credential replaces it until a
/// reissue. Revoking a revoked credential changes nothing. There is no body. Administrators, and
/// the earn partner that registered the member.
#[utoipa::path(post, path = "/v1/members/{id}/credential/revoke", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id"), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The revoked credential's record", body = CredentialStatus),
        CredentialProblems,
    ),
    security(("bearer" = [])))]
pub async fn revoke_credential(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::ManageCredential)?;
    let id = id.into_inner();
    let print = fingerprint("revoke_credential", &id);
    let (status, replayed) =
        service::members::revoke_credential(&state, &caller, &idempotency_key.0, print, id)?;
    let mut response = HttpResponse::Ok();
    if replayed {
        response.insert_header((super::REPLAYED_HEADER, "true"));
    }
    Ok(response.json(status))
}
