//! Moving credits: allocate, earn, spend (with the member's consent), gift, reverse, settle.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use timecredits_domain::{AccountId, Details, Intent, MovementKind, Transfer};
use utoipa::ToSchema;
use uuid::Uuid;

use super::responses::JsonWriteProblems;
use super::sheets::EarnBatchBody;
use super::{
    amount, created, recorded, whole, EntryView, HoursField, MinutesField, RecordedMany, TextField,
};
use crate::auth::{Caller, Operation};
use crate::cards::{CardNumber, Pin};
use crate::idempotency::{fingerprint, IdemKey, IdempotencyKeyHeader};
use crate::problem::{ApiError, Problem};
use crate::registry::Scope;
use crate::service::redemptions::{Consent, Redemption};
use crate::service::sheets;
use crate::service::{self, settlements::Settled};
use crate::spend_codes::Attempt;
use crate::AppState;

pub(super) fn transfer(
    kind: MovementKind,
    debit: AccountId,
    credit: AccountId,
    minutes: timecredits_domain::Minutes,
    effective: Option<NaiveDate>,
    details: Details,
) -> Intent {
    Intent::Transfer(Transfer {
        kind,
        debit,
        credit,
        minutes,
        effective,
        details,
    })
}

/// Credits for an earn partner's budget.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"partner_id": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e10", "hours": 500, "reference": "grant 2026-Q4"}))]
pub struct NewAllocation {
    /// The earn partner whose budget receives the credits.
    pub partner_id: Uuid,
    /// Whole hours (credits).
    #[serde(default)]
    pub hours: Option<HoursField>,
    /// Minutes: the whole amount, or below 60 when `hours` is given.
    #[serde(default)]
    pub minutes: Option<MinutesField>,
    /// The programme's reference (invoice, grant).
    pub reference: Option<TextField>,
}

/// Allocate credits to a partner
///
/// Moves credits from the programme into an earn partner's budget (credits the partner has
/// bought or been granted). The programme account is the only one that goes negative: minus its
/// balance is the credit in circulation. Administrators only.
#[utoipa::path(post, path = "/v1/allocations", tag = "movements",
    params(IdempotencyKeyHeader),
    request_body = NewAllocation,
    responses(
        (status = 201, description = "The allocate entry", body = super::Recorded),
        (status = 400, description = "`malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`partner_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`wrong_partner_role` (not an earn partner), `account_closed`, `amount_overflow`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn allocate(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    body: web::Json<NewAllocation>,
) -> Result<HttpResponse, ApiError> {
    // Refused before the body is read, as every write is (the service checks again).
    caller.permit(Operation::Allocate)?;
    let minutes = amount(body.hours, body.minutes)?;
    let details = Details {
        reference: TextField::parse_optional("reference", &body.reference)?,
        ..Details::default()
    };
    let committed = service::allocations::allocate(
        &state,
        &caller,
        &idempotency_key.0,
        body.partner_id,
        minutes,
        details,
    )
    .await?;
    recorded(committed)
}

/// Time given by a member.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"member_id": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12", "hours": 2, "activity": "lunch club", "date_given": "2026-11-22", "reference": "R-1042"}))]
pub struct NewEarn {
    /// The member who gave the time.
    pub member_id: Uuid,
    /// Whole hours given.
    #[serde(default)]
    pub hours: Option<HoursField>,
    /// Minutes: the whole amount, or below 60 when `hours` is given.
    #[serde(default)]
    pub minutes: Option<MinutesField>,
    /// What the time was given to.
    pub activity: TextField,
    /// The day the time was given (default: today). Not after tomorrow (UTC).
    pub date_given: Option<NaiveDate>,
    /// The partner's own reference.
    pub reference: Option<TextField>,
}

impl NewEarn {
    fn intent(&self, budget: AccountId) -> Result<Intent, ApiError> {
        let details = Details {
            activity: Some(self.activity.parse("activity")?),
            reference: TextField::parse_optional("reference", &self.reference)?,
            ..Details::default()
        };
        Ok(transfer(
            MovementKind::Earn,
            budget,
            AccountId(self.member_id),
            amount(self.hours, self.minutes)?,
            self.date_given,
            details,
        ))
    }
}

/// Record time given
///
/// An earn partner records time a member gave and issues the credits from its own budget
/// (one hour = one credit = 60 minutes). Earn partners only.
#[utoipa::path(post, path = "/v1/earn", tag = "movements",
    params(IdempotencyKeyHeader),
    request_body = NewEarn,
    responses(
        (status = 201, description = "The earn entry", body = super::Recorded),
        (status = 400, description = "`malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an earn partner key (`forbidden`), or its partner is suspended (`partner_suspended`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_credits` (budget), `unknown_account`, `wrong_account_kind`, `account_closed`, `effective_date_in_future`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn earn(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    body: web::Json<NewEarn>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::Earn)?;
    let (_, budget) = caller.partner_account(Scope::Earn)?;
    let intent = body.intent(budget)?;
    recorded(service::submit(&state, &caller, &idempotency_key.0, vec![intent]).await?)
}

/// Time given by a group, issued all or nothing.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEarnBatch {
    /// 1 to 1000 earn movements.
    #[schema(min_items = 1, max_items = 1000)]
    pub items: Vec<NewEarn>,
}

/// Record time given by a group
///
/// Issues credits to many members in one atomic request: every movement is committed, or none
/// is (for example when the budget does not cover them all). Earn partners only.
///
/// The batch is JSON, or a CSV sheet (`Content-Type: text/csv`, RFC 4180, UTF-8): a header row
/// naming the columns `member_id`, `hours`, `activity` (required) and `reference`,
/// `date_given` (optional, empty for none), in any order, then one row per earn, at most
/// 1,000. `hours` is written as people write it: `2`, `1.5`, `0.25` or `1:30`, converted
/// exactly to minutes; hours that are not a whole number of minutes (`1.33`) are refused. A
/// sheet with mistakes is refused whole with `invalid_request`, its `errors` listing every
/// mistake with its line (the header is line 1) and column.
#[utoipa::path(post, path = "/v1/earn/batch", tag = "movements",
    params(IdempotencyKeyHeader),
    request_body(content(
        (NewEarnBatch = "application/json"),
        (String = "text/csv", example = "member_id,hours,activity,reference,date_given\r\n0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12,1.5,lunch club,R-1042,2026-11-22\r\n0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e13,1:30,lunch club,,\r\n"),
    )),
    responses(
        (status = 201, description = "The earn entries, in the order given", body = RecordedMany),
        (status = 400, description = "`malformed_json`, `invalid_request` (for a sheet, with `errors`), `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an earn partner key (`forbidden`), or its partner is suspended (`partner_suspended`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_credits`, `unknown_account`, `wrong_account_kind`, `account_closed`, `effective_date_in_future`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn earn_batch(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    body: EarnBatchBody,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::Earn)?;
    let (_, budget) = caller.partner_account(Scope::Earn)?;
    let intents = match body {
        EarnBatchBody::Json(batch) => batch
            .items
            .iter()
            .map(|item| item.intent(budget))
            .collect::<Result<Vec<_>, _>>()?,
        EarnBatchBody::Csv(sheet) => sheets::earn_intents(&sheet, budget)?,
    };
    let committed = service::submit(&state, &caller, &idempotency_key.0, intents).await?;
    Ok(created(
        committed.replayed,
        &RecordedMany {
            entries: committed.entries.iter().map(EntryView::from).collect(),
            checkpoint: (&committed.checkpoint).into(),
        },
    ))
}

/// A member's request for a spend code.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"max_minutes": 120}))]
pub struct NewSpendCode {
    /// The most the venue may redeem with this code, in minutes (default: no cap).
    #[schema(minimum = 1, maximum = 60000000)]
    #[serde(default, deserialize_with = "whole::option_u64")]
    pub max_minutes: Option<u64>,
}

/// A one-time spend code.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "7KQ2M9XD", "expires_at": "2026-11-23T10:30:00Z", "max_minutes": 120}))]
pub struct SpendCode {
    /// 8 characters of Crockford base32, to read out or show as a QR code. Single use.
    pub code: String,
    /// The code is refused after this time (15 minutes after creation).
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The most minutes the code may pay, if the member set a cap.
    pub max_minutes: Option<u64>,
}

/// Create a spend code
///
/// The member's consent to a spend: the member creates a one-time code (valid 15 minutes,
/// optionally capped) and gives it to the venue, which redeems it. Codes are kept only as keyed
/// hashes, on disk, so they survive a restart. A member holds at most 5 unused codes (by
/// default): a sixth is refused with 429 `too_many_spend_codes` until one is used or expires
/// (see Retry-After). Members only.
#[utoipa::path(post, path = "/v1/spend-codes", tag = "movements",
    params(IdempotencyKeyHeader),
    request_body = NewSpendCode,
    responses(
        (status = 201, description = "The code", body = SpendCode),
        (status = 400, description = "`malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member credential (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The member holds the most unused codes allowed (`too_many_spend_codes`); see Retry-After", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("member" = [])))]
pub async fn create_spend_code(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    body: web::Json<NewSpendCode>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::CreateSpendCode)?;
    let member = caller.member_account()?;
    let cap = body
        .max_minutes
        .map(timecredits_domain::Minutes::new)
        .transpose()?
        .map(|m| m.get());
    let print = fingerprint("spend_code", &*body);
    let (issued, replayed) =
        service::spend_codes::issue(&state, &caller, &idempotency_key.0, member, print, cap)?;
    Ok(created(
        replayed,
        &SpendCode {
            code: issued.code,
            expires_at: issued.expires,
            max_minutes: issued.cap,
        },
    ))
}

/// A venue's redemption of a member's spend code.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "7KQ2M9XD", "hours": 2, "activity": "family swim", "adults": 1, "children": 1}))]
pub struct NewRedemption {
    /// The member's spend code (case, spaces and hyphens do not matter). Give either `code`, or
    /// `card_number` and `pin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The number on the member's card, typed or scanned from its QR code (12 characters; case,
    /// spaces and hyphens do not matter). A number whose check character does not match is
    /// refused as a typo (`invalid_request`) before it is looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    /// The PIN the member types on the venue's device (4 to 6 digits), with `card_number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Whole hours (credits) spent.
    #[serde(default)]
    pub hours: Option<HoursField>,
    /// Minutes: the whole amount, or below 60 when `hours` is given.
    #[serde(default)]
    pub minutes: Option<MinutesField>,
    /// The activity or offer.
    pub activity: TextField,
    /// Number of adults in the party.
    #[serde(deserialize_with = "whole::u32")]
    pub adults: u32,
    /// Number of children (under 16) in the party.
    #[serde(deserialize_with = "whole::u32")]
    pub children: u32,
    /// The venue's own reference.
    pub reference: Option<TextField>,
}

/// The party rule of a redemption as JSON Schema (joined to [`NewRedemption`]'s derived schema
/// in [`crate::openapi`]): at least one adult or child.
pub fn party_rule() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    let at_least_one = |field: &str| {
        ObjectBuilder::new().property(
            field,
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
    };
    AnyOfBuilder::new()
        .item(at_least_one("adults"))
        .item(at_least_one("children"))
        .description(Some("A party of at least one adult or child."))
        .build()
        .into()
}

/// The consent rule of a redemption as JSON Schema (joined to [`NewRedemption`]'s derived
/// schema in [`crate::openapi`]): a spend code, or a card number and a PIN, not both.
pub fn consent_rule() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().required("code"))
        .item(ObjectBuilder::new().required("card_number").required("pin"))
        .description(Some(
            "The member's consent: a spend code (`code`), or their card's number and their PIN \
             (`card_number` and `pin`), not both.",
        ))
        .build()
        .into()
}

/// Redeem a spend code or a member card
///
/// A venue takes credits from the member who consents, into its own venue account. The member
/// consents with a spend code (`code`), or with their card's number and their PIN
/// (`card_number` and `pin`), never both. Every refused redemption counts against the calling
/// API key (5 a minute), its partner (10), its source address (20) and the whole service (100,
/// a breaker on the code space); past any of them redemptions get 429 until the minute has
/// passed, so neither codes nor PINs can be guessed. A card is also locked after 5 wrong PINs
/// in a row (`card_locked`) until the partner that registered the member resets its PIN. A
/// wrong card number and a wrong PIN get the same answer (`card_invalid`); `card_blocked` is
/// answered only to the right PIN. A repeat under a used `Idempotency-Key` is judged by the
/// whole request, code or card and PIN included: the same request gets the original answer,
/// any other `idempotency_key_reused`, whatever it carries. A refusal tells the venue only that
/// the member cannot pay (`insufficient_credits`, `spend_code_amount_exceeded`), never the
/// member's balance or the code's cap. Spend partners only.
#[utoipa::path(post, path = "/v1/redemptions", tag = "movements",
    params(IdempotencyKeyHeader),
    request_body = NewRedemption,
    responses(
        (status = 201, description = "The spend entry", body = super::Recorded),
        (status = 400, description = "`malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a spend partner key (`forbidden`), or its partner is suspended (`partner_suspended`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`spend_code_invalid`, `spend_code_expired`, `spend_code_used`, `spend_code_revoked`, `spend_code_amount_exceeded`, `card_invalid`, `card_locked`, `card_blocked`, `insufficient_credits`, `account_closed`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many refused redemptions from this key, partner or address, or from everyone (`too_many_attempts`); see Retry-After", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn redeem(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    idempotency_key: IdemKey,
    body: web::Json<NewRedemption>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::Redeem)?;
    let (partner, venue) = caller.partner_account(Scope::Spend)?;
    let minutes = amount(body.hours, body.minutes)?;
    let details = Details {
        activity: Some(body.activity.parse("activity")?),
        reference: TextField::parse_optional("reference", &body.reference)?,
        adults: Some(body.adults),
        children: Some(body.children),
        expiry_months: None,
    };
    let who = Attempt {
        api_key: caller
            .api_key_id()
            .ok_or_else(|| ApiError::Internal("a partner caller has an API key".into()))?,
        partner,
        address: req.peer_addr().map(|a| crate::spend_codes::source(a.ip())),
    };
    let typo = |field: &str, e: &dyn std::fmt::Display| {
        ApiError::InvalidRequest(format!("`{field}`: {e}"))
    };
    let card = match (&body.code, &body.card_number, &body.pin) {
        (Some(_), None, None) => None,
        (None, Some(number), Some(pin)) => Some((
            CardNumber::parse(number).map_err(|e| typo("card_number", &e))?,
            Pin::parse(pin).map_err(|e| typo("pin", &e))?,
        )),
        _ => {
            return Err(ApiError::InvalidRequest(
                "give the member's consent as `code`, or as `card_number` and `pin`".into(),
            ))
        }
    };
    // The fingerprint covers the code or card number as the member means it, so a retry typed
    // differently is still the same request, and a keyed digest of the PIN, never the PIN.
    let print = {
        let mut normalised = body.clone();
        normalised.code = body.code.as_deref().map(crate::spend_codes::normalise);
        if let Some((number, pin)) = &card {
            normalised.card_number = Some(number.as_str().to_owned());
            normalised.pin = Some(state.registry.pin_print(pin));
        }
        fingerprint("redeem", &normalised)
    };
    let consent = match (&card, &body.code) {
        (Some((number, pin)), _) => Consent::Card { number, pin },
        (None, code) => Consent::SpendCode(code.as_deref().unwrap_or_default()),
    };
    let redemption = Redemption {
        consent,
        minutes,
        details,
        fingerprint: print,
    };
    let committed =
        service::redemptions::redeem(&state, &caller, &idempotency_key.0, venue, &who, redemption)
            .await?;
    recorded(committed)
}

/// A gift of credits from one member to another.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to_member_id": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e13", "hours": 1}))]
pub struct NewGift {
    /// The member receiving the credits.
    pub to_member_id: Uuid,
    /// Hours: the whole amount, or with `minutes` below 60.
    #[serde(default)]
    pub hours: Option<HoursField>,
    /// Minutes: the whole amount, or below 60 when `hours` is given.
    #[serde(default)]
    pub minutes: Option<MinutesField>,
    /// A reference of the member's choosing (no personal data, please).
    pub reference: Option<TextField>,
}

/// Gift credits
///
/// A member gives credits to another member. Members only, from their own wallet.
#[utoipa::path(post, path = "/v1/gifts", tag = "movements",
    params(IdempotencyKeyHeader),
    request_body = NewGift,
    responses(
        (status = 201, description = "The gift entry", body = super::Recorded),
        (status = 400, description = "`malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member credential (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_credits`, `unknown_account`, `wrong_account_kind`, `account_closed`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("member" = [])))]
pub async fn gift(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    body: web::Json<NewGift>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::Gift)?;
    let member = caller.member_account()?;
    let details = Details {
        reference: TextField::parse_optional("reference", &body.reference)?,
        ..Details::default()
    };
    let intent = transfer(
        MovementKind::Gift,
        member,
        AccountId(body.to_member_id),
        amount(body.hours, body.minutes)?,
        None,
        details,
    );
    recorded(service::submit(&state, &caller, &idempotency_key.0, vec![intent]).await?)
}

/// Why an entry is reversed.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reference": "recorded twice by mistake"}))]
pub struct NewReversal {
    /// The reason or reference.
    pub reference: Option<TextField>,
}

/// Reverse an entry
///
/// Records the mirror of an earlier movement (same amount, accounts swapped), referencing it.
/// Nothing is edited or deleted. An entry is reversed at most once; a reversal cannot be
/// reversed; a reversal that would take an account below zero is refused. The partner that made
/// an entry may reverse it within the reversal window (30 days by default), with a key holding
/// the scope that made it (`earn` for an earn, `spend` for a spend) on an open account;
/// administrators may reverse any movement at any time.
#[utoipa::path(post, path = "/v1/entries/{id}/reversal", tag = "movements",
    params(("id" = Uuid, Path, description = "The id of the entry to reverse"),
        IdempotencyKeyHeader),
    request_body = NewReversal,
    responses(
        (status = 201, description = "The reverse entry", body = super::Recorded),
        (status = 400, description = "`invalid_path`, `malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the entry's partner, or a key without the entry's scope (`forbidden`), or too late (`reversal_window_passed`), or its partner is suspended (`partner_suspended`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`entry_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`already_reversed`, `not_reversible`, `insufficient_credits`, `account_closed`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn reverse(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
    body: web::Json<NewReversal>,
) -> Result<HttpResponse, ApiError> {
    let reference = body.reference.as_ref().map(TextField::as_str);
    let entry_id = id.into_inner();
    let committed =
        service::reversals::reverse(&state, &caller, &idempotency_key.0, entry_id, reference)
            .await?;
    recorded(committed)
}

/// Credits a partner takes out of circulation.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"partner_id": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e14", "account": "venue", "reference": "settlement 2026-11"}))]
pub struct NewSettlement {
    /// The partner whose account is settled.
    pub partner_id: Uuid,
    /// `venue` (the credits it redeemed) or `budget` (credits it will not give out).
    pub account: Settled,
    /// Whole hours; with `minutes` left out too, everything the account holds.
    #[serde(default)]
    pub hours: Option<HoursField>,
    /// Minutes: the whole amount, or below 60 when `hours` is given; with `hours` left out
    /// too, everything the account holds.
    #[serde(default)]
    pub minutes: Option<MinutesField>,
    /// The partner's or programme's reference (an invoice, a settlement run).
    pub reference: Option<TextField>,
}

/// Settle a partner's account
///
/// Retires credits from a venue account (the credits it redeemed, which the programme then
/// settles with the venue outside the ledger) or from an earn partner's budget (credits it hands
/// back unused) to the programme: a `retire` entry, after which the credits are out of
/// circulation. Without an amount, everything the account holds is settled (a repeat with the
/// same Idempotency-Key answers the first settlement, whatever the balance is by then). An
/// account is settled before it is closed. The partner itself, with a key holding `spend` for
/// its venue account or `earn` for its budget, or an administrator.
#[utoipa::path(post, path = "/v1/settlements", tag = "movements",
    params(IdempotencyKeyHeader),
    request_body = NewSettlement,
    responses(
        (status = 201, description = "The retire entry", body = super::Recorded),
        (status = 400, description = "`malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator, nor the partner with the account's scope (`forbidden`), or its partner is suspended (`partner_suspended`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`partner_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_credits` (more than the account holds, or nothing to settle), `wrong_partner_role` (the partner has no such account), `account_closed`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn settle(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    body: web::Json<NewSettlement>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::Settle)?;
    let minutes = match (body.hours, body.minutes) {
        (None, None) => None,
        (hours, minutes) => Some(amount(hours, minutes)?),
    };
    let reference = TextField::parse_optional("reference", &body.reference)?;
    let committed = service::settlements::settle(
        &state,
        &caller,
        &idempotency_key.0,
        body.partner_id,
        body.account,
        minutes,
        reference,
    )
    .await?;
    recorded(committed)
}
