//! Member cards: issued (or reissued), printed and blocked, and their PIN reset, by the partner
//! that registered the member or an administrator. A venue redeems a card with its PIN at
//! `POST /v1/redemptions` (see `movements`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::created;
use super::responses::{AuthProblems, BodilessWriteProblems, JsonWriteProblems};
use crate::auth::{Caller, Operation};
use crate::cards::Pin;
use crate::idempotency::{fingerprint, IdemKey, IdempotencyKeyHeader};
use crate::problem::{ApiError, Problem};
use crate::registry::CardStatus;
use crate::service;
use crate::AppState;

/// The problems of every card operation, besides those of its kind of request.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document, never built
enum CardProblems {
    /// `invalid_path`, `invalid_request`, `malformed_json`, `idempotency_key_missing`,
    /// `idempotency_key_invalid`
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// Not an administrator's or an earn partner's key (`forbidden`), or its partner is
    /// suspended (`partner_suspended`)
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No card for this member, no such member, or one another partner registered
    /// (`card_not_found`, in the same words for each)
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// `idempotency_key_reused`
    #[response(status = 422, content_type = "application/problem+json")]
    Reused(Problem),
    /// `storage_full`, `unavailable`
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// A card's PIN: chosen by the partner, or generated when left out.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"pin": "4821"}))]
pub struct NewPin {
    /// 4 to 6 digits the member chose; left out, the service generates 4 and shows them once.
    #[schema(pattern = "^[0-9]{4,6}$")]
    #[serde(default)]
    pub pin: Option<String>,
}

impl NewPin {
    fn parse(&self) -> Result<Option<Pin>, ApiError> {
        self.pin
            .as_deref()
            .map(Pin::parse)
            .transpose()
            .map_err(|e| ApiError::InvalidRequest(format!("`pin`: {e}")))
    }

    /// The request's fingerprint, over a keyed digest of the PIN (never the PIN).
    fn print(&self, state: &AppState, what: &str, id: Uuid) -> Result<String, ApiError> {
        let pin = self.parse()?.map(|p| state.registry.pin_print(&p));
        Ok(fingerprint(what, &(id, pin)))
    }
}

/// A member's card, as issued.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"card_number": "7KQ2 M9XD 4RTB", "pin": "4821", "status": {
    "member_id": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12", "generation": 0,
    "issued": "2026-11-23T10:15:00Z", "pin_set": "2026-11-23T10:15:00Z",
    "blocked": null, "locked": null, "wrong_pins": 0}}))]
pub struct CardIssued {
    /// The card's number, in three groups of four: print the card with
    /// `GET /v1/members/{id}/card`.
    pub card_number: String,
    /// The PIN, when the service generated it: shown this once, never on a repeat (reset it if
    /// the answer was lost). Give it to the member apart from the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// The card's record.
    pub status: CardStatus,
}

/// A card's PIN reset.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinReset {
    /// The new PIN, when the service generated it: shown this once, never on a repeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// The card's record: no wrong PINs, not locked.
    pub status: CardStatus,
}

/// Issue a member card
///
/// Gives the member a card (a random 12-character number with a check character) and a PIN: the
/// one in the body, or 4 generated digits shown once. A member who had a card gets a new one
/// (a new number), and the old card is refused from this moment: this is how a lost, stolen or
/// blocked card is replaced. Administrators, and the earn partner that registered the member.
#[utoipa::path(post, path = "/v1/members/{id}/card", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id"), IdempotencyKeyHeader),
    request_body = NewPin,
    responses(
        (status = 201, description = "The card's number, its generated PIN and its record", body = CardIssued),
        CardProblems,
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn issue_card(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
    body: web::Json<NewPin>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::ManageCard)?;
    let id = id.into_inner();
    let print = body.print(&state, "issue_card", id)?;
    let pin = body.parse()?;
    let issued = service::cards::issue(&state, &caller, &idempotency_key.0, print, id, pin)?;
    Ok(created(
        issued.replayed,
        &CardIssued {
            card_number: issued.number.grouped(),
            pin: issued.generated_pin.map(|p| p.as_str().to_owned()),
            status: issued.status,
        },
    ))
}

/// Print a member card
///
/// The member's current card as an SVG document the size of a bank card: the programme's name,
/// the number in large type and a QR code of the number. Never the PIN. Administrators, and the
/// earn partner that registered the member.
#[utoipa::path(get, path = "/v1/members/{id}/card", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id")),
    responses(
        (status = 200, description = "The card", content_type = "image/svg+xml", body = String),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator's or an earn partner's key (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No card for this member, no such member, or one another partner registered (`card_not_found`, in the same words for each)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn print_card(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::ManageCard)?;
    let svg = service::cards::printable(&state, &caller, id.into_inner())?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(svg))
}

/// Block a member card
///
/// The card is refused from this moment (a venue's till hears `card_blocked` only when the PIN
/// typed is right). Blocking a blocked card changes nothing; issuing a new card replaces it.
/// There is no body. Administrators, and the earn partner that registered the member.
#[utoipa::path(post, path = "/v1/members/{id}/card/block", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id"), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The blocked card's record", body = CardStatus),
        CardProblems,
        BodilessWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn block_card(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::ManageCard)?;
    let id = id.into_inner();
    let print = fingerprint("block_card", &id);
    let (status, replayed) = service::cards::block(&state, &caller, &idempotency_key.0, print, id)?;
    let mut response = HttpResponse::Ok();
    if replayed {
        response.insert_header((super::REPLAYED_HEADER, "true"));
    }
    Ok(response.json(status))
}

/// Reset a card's PIN
///
/// Sets the PIN in the body, or 4 generated digits shown once, and clears the card's wrong PINs
/// and its lockout: this is how a locked card is opened again. Administrators, and the earn
/// partner that registered the member.
#[utoipa::path(post, path = "/v1/members/{id}/card/pin", tag = "members",
    params(("id" = Uuid, Path, description = "The member's id"), IdempotencyKeyHeader),
    request_body = NewPin,
    responses(
        (status = 200, description = "The generated PIN, and the card's record", body = PinReset),
        CardProblems,
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn reset_pin(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
    body: web::Json<NewPin>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::ManageCard)?;
    let id = id.into_inner();
    let print = body.print(&state, "reset_pin", id)?;
    let pin = body.parse()?;
    let (pin, status, replayed) =
        service::cards::reset_pin(&state, &caller, &idempotency_key.0, print, id, pin)?;
    let mut response = HttpResponse::Ok();
    if replayed {
        response.insert_header((super::REPLAYED_HEADER, "true"));
    }
    Ok(response.json(PinReset {
        pin: pin.map(|p| p.as_str().to_owned()),
        status,
    }))
}
