//! Member credentials: reissue (a lost card) and revocation.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::created;
use crate::auth::{Caller, Operation};
use crate::idempotency::{fingerprint, IdemKey, IdempotencyKeyHeader, InFlightGuard};
use crate::problem::{ApiError, Problem};
use crate::registry::{CredentialStatus, Member, Previous, RequestRef};
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

/// The member `id`, if the caller may manage its credential (see [`Caller::may_manage_member`]).
fn managed_member(state: &AppState, caller: &Caller, id: Uuid) -> Result<(Uuid, Member), ApiError> {
    caller.permit(Operation::ManageCredential)?;
    let member = state
        .registry
        .member(id)
        .ok_or_else(|| ApiError::MemberNotFound(format!("member {id} does not exist")))?;
    caller.may_manage_member(member.registered_by)?;
    Ok((caller.actor(), member))
}

/// What both credential operations start with.
struct Started<'a> {
    /// The caller's actor id.
    actor: Uuid,
    /// Holds the request in flight until the handler answers.
    _guard: InFlightGuard<'a>,
    /// The request's fingerprint.
    print: String,
    /// What an earlier request with the same key did (never [`Previous::Different`]).
    previous: Previous,
}

/// Checks that the caller may manage member `id`'s credential, marks the request in flight, and
/// refuses a key already used for another request.
fn start<'a>(
    state: &'a AppState,
    caller: &Caller,
    idempotency_key: &IdemKey,
    id: Uuid,
    operation: &str,
) -> Result<Started<'a>, ApiError> {
    let (actor, _) = managed_member(state, caller, id)?;
    let guard = service::begin(
        state,
        actor,
        &idempotency_key.0,
        service::Remembered::Registry,
    )?;
    let print = fingerprint(operation, &id);
    let previous = state
        .registry
        .previous(actor, idempotency_key.0.as_str(), &print);
    if let Previous::Different = previous {
        return Err(ApiError::IdempotencyKeyReused(
            idempotency_key.0.as_str().into(),
        ));
    }
    Ok(Started {
        actor,
        _guard: guard,
        print,
        previous,
    })
}

/// The request record of a registry write, for its idempotent repeats.
fn request_ref(actor: Uuid, idempotency_key: &IdemKey, fingerprint: String) -> RequestRef {
    RequestRef {
        actor,
        key: idempotency_key.0.as_str().to_owned(),
        fingerprint,
    }
}

fn status(state: &AppState, id: Uuid) -> Result<CredentialStatus, ApiError> {
    state
        .registry
        .credential_status(id)
        .ok_or_else(|| ApiError::Internal(format!("member {id} has no credential record")))
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
    let id = id.into_inner();
    let started = start(&state, &caller, &idempotency_key, id, "reissue_credential")?;
    let (actor, previous) = (started.actor, started.previous);
    let credential = match previous {
        Previous::Same(_) => {
            let credential = state.registry.replay_credential(
                id,
                Some((actor, idempotency_key.0.as_str())),
                state.credential_replay_window,
            );
            let status = status(&state, id)?;
            return Ok(created(true, &CredentialIssued { credential, status }));
        }
        // `start` refused `Different`.
        Previous::None | Previous::Different => state
            .registry
            .reissue_member_credential(id, request_ref(actor, &idempotency_key, started.print))?,
    };
    Ok(created(
        false,
        &CredentialIssued {
            credential: Some(credential),
            status: status(&state, id)?,
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
    let id = id.into_inner();
    let started = start(&state, &caller, &idempotency_key, id, "revoke_credential")?;
    let (actor, previous) = (started.actor, started.previous);
    if status(&state, id)?.revoked.is_none() {
        state
            .registry
            .revoke_member_credential(id, request_ref(actor, &idempotency_key, started.print))?;
    }
    let mut response = HttpResponse::Ok();
    if matches!(previous, Previous::Same(_)) {
        response.insert_header((super::REPLAYED_HEADER, "true"));
    }
    Ok(response.json(status(&state, id)?))
}
