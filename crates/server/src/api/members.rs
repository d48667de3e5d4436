//! Member credentials: reissue (a lost card) and revocation; a member's leaving.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::responses::JsonWriteProblems;
use super::{created, CheckpointView, EntryView};
use crate::auth::{Caller, Operation};
use crate::idempotency::{fingerprint, IdemKey, IdempotencyKeyHeader};
use crate::problem::{ApiError, Problem};
use crate::registry::CredentialStatus;
use crate::service::{self, members::Remaining};
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
    /// Not an administrator or the registering partner (`forbidden`), or its partner is
    /// suspended (`partner_suspended`)
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

/// A member's leaving: where their remaining credits go.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"remaining": {"gift_to": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e13"}}))]
pub struct NewLeaving {
    /// `"retire"` (out of circulation), or `{"gift_to": MEMBER_ID}` (to another member's open
    /// wallet).
    pub remaining: Remaining,
}

/// A member who left.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberLeft {
    /// The entries: the `retire` or `gift` of the remaining credits (none if the wallet was
    /// empty), then the wallet's `close`.
    pub entries: Vec<EntryView>,
    /// A signed checkpoint whose tree includes them.
    pub checkpoint: CheckpointView,
    /// The member's credential, revoked.
    pub credential: CredentialStatus,
}

/// A member leaves
///
/// In one atomic ledger request, the member's remaining credits are retired to the programme or
/// gifted to another member, and their wallet is closed for good; then their credential is
/// revoked. A repeat with the same Idempotency-Key answers the same entries. Administrators, and
/// the earn partner that registered the member (recording what the member asked for).
#[utoipa::path(post, path = "/v1/members/{id}/leave", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id"), IdempotencyKeyHeader),
    request_body = NewLeaving,
    responses(
        (status = 201, description = "The entries and the revoked credential", body = MemberLeft),
        (status = 400, description = "`invalid_path`, `malformed_json`, `invalid_request` (a gift to the leaving member), `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator or the registering partner (`forbidden`), or its partner is suspended (`partner_suspended`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member (`member_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`account_closed` (the member already left, or the recipient's wallet is closed), `unknown_account`, `wrong_account_kind` (the recipient is not a member), `account_not_empty` (credits arrived meanwhile: send it again), `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn leave(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
    body: web::Json<NewLeaving>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::LeaveMember)?;
    let id = id.into_inner();
    let print = fingerprint("leave", &(id, &body.remaining));
    let (committed, credential) = service::members::leave(
        &state,
        &caller,
        &idempotency_key.0,
        print,
        id,
        body.remaining,
    )
    .await?;
    Ok(created(
        committed.replayed,
        &MemberLeft {
            entries: committed.entries.iter().map(EntryView::from).collect(),
            checkpoint: (&committed.checkpoint).into(),
            credential,
        },
    ))
}
