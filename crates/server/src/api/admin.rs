//! Programme administration: partners, API keys, member registration, closing accounts.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use timecredits_domain::{AccountId, Intent};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::responses::{AuthProblems, BodilessWriteProblems, JsonWriteProblems};
use super::{created, only_entry, recorded, CheckpointView, EntryView, TextField};
use crate::auth::{not_visible, Caller, Operation};
use crate::idempotency::{fingerprint, IdemKey, IdempotencyKeyHeader};
use crate::problem::{ApiError, Problem};
use crate::registry::staff::Username;
use crate::registry::{ApiKey, Partner, Principal, Role};
use crate::service;
use crate::AppState;

/// A new partner organisation.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Riverside Lunch Club", "roles": ["earn"]}))]
pub struct NewPartner {
    /// The organisation's name.
    pub name: TextField,
    /// `earn` (issues credits from a budget), `spend` (a venue), or both.
    #[schema(min_items = 1)]
    pub roles: Vec<Role>,
}

/// A partner and the entries that opened its accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerCreated {
    /// The partner as recorded.
    pub partner: Partner,
    /// The `open` entries of its accounts.
    pub entries: Vec<EntryView>,
    /// A signed checkpoint whose tree includes those entries.
    pub checkpoint: CheckpointView,
}

/// A list of partners.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerList {
    /// Every partner, oldest first.
    pub partners: Vec<Partner>,
}

/// Create a partner
///
/// Registers an earn partner (a charity or group that issues credits for time given), a spend
/// partner (a venue), or both, and opens its budget and/or venue account in the ledger in one
/// atomic request. Create API keys for it next. Administrators only.
#[utoipa::path(post, path = "/v1/partners", tag = "administration",
    params(IdempotencyKeyHeader),
    request_body = NewPartner,
    responses(
        (status = 201, description = "The partner and the entries opening its accounts", body = PartnerCreated),
        (status = 400, description = "Malformed body, missing or invalid Idempotency-Key (`malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The key was used for a different request (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn create_partner(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    body: web::Json<NewPartner>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::CreatePartner)?;
    let name = body.name.parse("name")?;
    let roles = body.roles.clone();
    let (partner, committed) =
        service::partners::create(&state, &caller, &idempotency_key.0, name, roles).await?;
    Ok(created(
        committed.replayed,
        &PartnerCreated {
            partner,
            entries: committed.entries.iter().map(EntryView::from).collect(),
            checkpoint: (&committed.checkpoint).into(),
        },
    ))
}

/// List partners
///
/// All partners, oldest first. Administrators and auditors.
#[utoipa::path(get, path = "/v1/partners", tag = "administration",
    responses(
        (status = 200, description = "The partners", body = PartnerList),
        (status = 403, description = "Not an administrator or auditor (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn list_partners(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<PartnerList>, ApiError> {
    caller.permit(Operation::ListPartners)?;
    Ok(web::Json(PartnerList {
        partners: state.registry.partners(),
    }))
}

/// Get a partner
///
/// One partner with its name, roles and account ids. Administrators, auditors, members (so
/// that they can name the partners in their history), and the partner itself.
#[utoipa::path(get, path = "/v1/partners/{id}", tag = "administration",
    params(("id" = Uuid, Path, description = "The partner's id")),
    responses(
        (status = 200, description = "The partner", body = Partner),
        (status = 400, description = "The id is not a UUID (`invalid_path`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner, or another partner's (`partner_not_found`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = []), ("member" = [])))]
pub async fn get_partner(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<Partner>, ApiError> {
    let id = id.into_inner();
    let visible = caller.may_see_partner(id);
    state
        .registry
        .partner(id)
        .filter(|_| visible)
        .map(web::Json)
        .ok_or_else(|| ApiError::PartnerNotFound(not_visible("partner", id)))
}

/// The year of a statement.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// The calendar year (UTC) the statement covers, e.g. 2026.
    // The limits are `service::statements::YEARS`, which refuses any other year.
    #[param(minimum = 1970, maximum = 9999)]
    pub year: i32,
}

/// A partner's year-end statement
///
/// CSV (RFC 4180: UTF-8, CRLF line ends, a header line) with, for each of the partner's
/// accounts (budget, venue): an `opening` line with the balance on 1 January, a `movement` line
/// for each movement in or out of the account recorded during the year (UTC day, sequence
/// number, kind, signed minutes, the kind of the account on the other side, the reference, the
/// balance after it), and a `closing` line with the balance on 31 December (or now, for the
/// current year). Administrators, auditors, and the partner itself.
#[utoipa::path(get, path = "/v1/partners/{id}/statement", tag = "administration",
    params(("id" = Uuid, Path, description = "The partner's id"), StatementQuery),
    responses(
        (status = 200, description = "The statement", body = String, content_type = "text/csv",
            example = json!("account_kind,line,date,seq,kind,minutes,counterparty_kind,reference,balance_minutes\r\nvenue,opening,2026-01-01,,,,,,0\r\nvenue,movement,2026-11-23,6,spend,60,member,,60\r\nvenue,movement,2026-11-30,9,retire,-60,programme,November,0\r\nvenue,closing,2026-12-31,,,,,,0\r\n")),
        (status = 400, description = "`invalid_path`, `invalid_query` (no year, or one out of range)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A member (`forbidden`): partners are public, their books are not", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner, or another partner (`partner_not_found`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn statement(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<StatementQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.may_read_statement(id)?;
    let partner = state
        .registry
        .partner(id)
        .ok_or_else(|| ApiError::PartnerNotFound(format!("partner {id} does not exist")))?;
    let csv = service::statements::statement(&state, &partner, query.year)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"statement-{id}-{}.csv\"", query.year),
        ))
        .body(csv))
}

pub use crate::service::api_keys::KeyHolder;

/// A new API key.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"label": "front desk till", "holder": {"kind": "partner", "id": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e10"}}))]
pub struct NewApiKey {
    /// A label to tell keys apart.
    pub label: TextField,
    /// Who the key acts for.
    pub holder: KeyHolder,
}

/// A created API key with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    /// The key's public record.
    pub key: ApiKey,
    /// The bearer token. It is not stored; a repeat of the request shows it again, except after
    /// a rotation of the server secret (then the repeat has no `secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A list of API keys (without secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys asked for (all, or one holder's), oldest first, revoked ones included.
    pub keys: Vec<ApiKey>,
}

/// Create an API key
///
/// Creates a key for an administrator, a new auditor, or a partner (several keys per partner
/// allow rotation: create the new key, switch, revoke the old). The secret is returned once.
/// Administrators only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "administration",
    params(IdempotencyKeyHeader),
    request_body = NewApiKey,
    responses(
        (status = 201, description = "The key and its secret", body = ApiKeyCreated),
        (status = 400, description = "Malformed body or Idempotency-Key (`malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner (`partner_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A scope the partner's roles do not allow (`wrong_partner_role`), or the key was used for a different request (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn create_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    body: web::Json<NewApiKey>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::CreateApiKey)?;
    let label = body.label.parse("label")?;
    let print = fingerprint("create_api_key", &*body);
    let made = service::api_keys::create(
        &state,
        &caller,
        &idempotency_key.0,
        print,
        label,
        &body.holder,
    )?;
    Ok(created(
        made.replayed,
        &ApiKeyCreated {
            key: made.api_key,
            secret: made.secret,
        },
    ))
}

/// A staff login to make: a person who signs in to the pages.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "ana@lunchclub.org", "label": "Ana, coordinator", "holder": {"kind": "partner", "id": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e10"}}))]
pub struct NewStaffLogin {
    /// What the person types to sign in: 3 to 64 characters, `a-z`, `0-9`, `.`, `_`, `-`, `@`
    /// (upper case is taken as lower case).
    #[schema(min_length = 3, max_length = 64)]
    pub username: String,
    /// Who the person is, to tell logins apart (the label of the login's key).
    pub label: TextField,
    /// Whom the login acts for, with which scopes: as for an API key.
    pub holder: KeyHolder,
}

/// A created staff login with its password, shown to the administrator to hand over.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffLoginCreated {
    /// The username.
    pub username: String,
    /// The key the login acts with: revoke it (`POST /v1/api-keys/{id}/revoke`) to revoke the
    /// login.
    pub key: ApiKey,
    /// The password (24 characters). Only its Argon2id hash is stored; a repeat of the request
    /// shows it again while the server secret is the same.
    pub password: String,
}

/// A staff login's public record.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffLoginView {
    /// The username.
    pub username: String,
    /// The key the login acts with (its principal, scopes and revocation).
    pub key: ApiKey,
}

/// The staff logins.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffLoginList {
    /// Every staff login, by username, revoked ones included.
    pub logins: Vec<StaffLoginView>,
}

/// Create a staff login
///
/// A login to the pages (`/app/`) for a person: a username and a generated password, acting
/// with an API key of its own made for `holder` as `POST /v1/api-keys` would make it (same
/// principal, same scopes), which has no bearer token. Revoking that key revokes the login, at
/// once. Administrators only.
#[utoipa::path(post, path = "/v1/staff-logins", tag = "administration",
    params(IdempotencyKeyHeader),
    request_body = NewStaffLogin,
    responses(
        (status = 201, description = "The login and its password", body = StaffLoginCreated),
        (status = 400, description = "Malformed body or Idempotency-Key (`malformed_json`, `invalid_request`, `idempotency_key_missing`, `idempotency_key_invalid`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner (`partner_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The username is taken (`username_taken`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A scope the partner's roles do not allow (`wrong_partner_role`), or the key was used for a different request (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn create_staff_login(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    body: web::Json<NewStaffLogin>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::CreateApiKey)?;
    let username = Username::from_input(&body.username)
        .map_err(|e| ApiError::InvalidRequest(format!("username: {e}")))?;
    let label = body.label.parse("label")?;
    let print = fingerprint("create_staff_login", &*body);
    let made = service::staff_logins::create(
        &state,
        &caller,
        &idempotency_key.0,
        print,
        username,
        label,
        &body.holder,
    )?;
    Ok(created(
        made.replayed,
        &StaffLoginCreated {
            username: made.username.into(),
            key: made.api_key,
            password: made.password,
        },
    ))
}

/// List staff logins
///
/// Every staff login (never a password), by username. Administrators only.
#[utoipa::path(get, path = "/v1/staff-logins", tag = "administration",
    responses(
        (status = 200, description = "The logins", body = StaffLoginList),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn list_staff_logins(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<StaffLoginList>, ApiError> {
    caller.permit(Operation::ListApiKeys)?;
    let logins = state
        .registry
        .staff_logins()
        .into_iter()
        .filter_map(|login| {
            let key = state.registry.api_key(login.key)?;
            Some(StaffLoginView {
                username: login.username,
                key,
            })
        })
        .collect();
    Ok(web::Json(StaffLoginList { logins }))
}

/// Filter for listing API keys.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct KeyFilter {
    /// Only the keys of this partner.
    pub partner_id: Option<Uuid>,
}

/// List API keys
///
/// Every key's public record (never the secret), oldest first, optionally for one partner.
/// Administrators only.
#[utoipa::path(get, path = "/v1/api-keys", tag = "administration",
    params(KeyFilter),
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        (status = 400, description = "Bad query (`invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    caller: Caller,
    filter: web::Query<KeyFilter>,
) -> Result<web::Json<ApiKeyList>, ApiError> {
    caller.permit(Operation::ListApiKeys)?;
    let principal = filter.partner_id.map(|id| Principal::Partner { id });
    Ok(web::Json(ApiKeyList {
        keys: state.registry.api_keys(principal),
    }))
}

/// Revoke an API key
///
/// The key stops working at once, for good. Revoking a revoked key changes nothing.
/// Administrators only (an administrator cannot revoke the key it is calling with).
#[utoipa::path(post, path = "/v1/api-keys/{id}/revoke", tag = "administration",
    params(("id" = Uuid, Path, description = "The key's id"),
        IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The revoked key", body = ApiKey),
        (status = 400, description = "Bad id or Idempotency-Key (`invalid_path`, `idempotency_key_missing`, `idempotency_key_invalid`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key (`api_key_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The key is the one calling (`api_key_in_use`), or the Idempotency-Key was used for a different request (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        BodilessWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn revoke_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::RevokeApiKey)?;
    let id = id.into_inner();
    let print = fingerprint("revoke_api_key", &id);
    let (revoked, replayed) =
        service::api_keys::revoke(&state, &caller, &idempotency_key.0, print, id)?;
    let mut response = HttpResponse::Ok();
    if replayed {
        response.insert_header((super::REPLAYED_HEADER, "true"));
    }
    Ok(response.json(revoked))
}

/// The problems suspending and reinstating answer with.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document, never built
enum SuspensionProblems {
    /// `invalid_path`, `idempotency_key_missing`, `idempotency_key_invalid`
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// Not an administrator (`forbidden`)
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such partner (`partner_not_found`)
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The Idempotency-Key was used for a different request (`idempotency_key_reused`)
    #[response(status = 422, content_type = "application/problem+json")]
    Reused(Problem),
}

/// Suspend a partner
///
/// From this moment every write by the partner's keys (earn, redeem, register members, settle,
/// reverse, …) is refused with 403 `partner_suspended`; its keys still read. Nothing in the
/// ledger changes: a suspension is recorded in the registry, kept across restarts, and undone by
/// a reinstatement. Suspending a suspended partner changes nothing. There is no body.
/// Administrators only.
#[utoipa::path(post, path = "/v1/partners/{id}/suspend", tag = "administration",
    params(("id" = Uuid, Path, description = "The partner's id"), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The partner, with the time it was suspended", body = Partner),
        SuspensionProblems,
        BodilessWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn suspend_partner(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_suspended(&state, &caller, &idempotency_key, id.into_inner(), true)
}

/// Reinstate a partner
///
/// Ends a partner's suspension: its keys write again. Reinstating a partner that is not
/// suspended changes nothing. There is no body. Administrators only.
#[utoipa::path(post, path = "/v1/partners/{id}/reinstate", tag = "administration",
    params(("id" = Uuid, Path, description = "The partner's id"), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The partner, no longer suspended", body = Partner),
        SuspensionProblems,
        BodilessWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn reinstate_partner(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_suspended(&state, &caller, &idempotency_key, id.into_inner(), false)
}

/// What both suspension handlers do, `suspend` telling which.
fn set_suspended(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdemKey,
    id: Uuid,
    suspend: bool,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::SuspendPartner)?;
    let route = if suspend {
        "suspend_partner"
    } else {
        "reinstate_partner"
    };
    let print = fingerprint(route, &id);
    let (partner, replayed) =
        service::partners::set_suspended(state, caller, &idempotency_key.0, print, id, suspend)?;
    let mut response = HttpResponse::Ok();
    if replayed {
        response.insert_header((super::REPLAYED_HEADER, "true"));
    }
    Ok(response.json(partner))
}

/// Close an account
///
/// Closes a member wallet, a budget or a venue account for good. Only an empty account can be
/// closed: one that still holds credits is refused with 422 `account_not_empty`, so settle a
/// venue account or a budget first (`POST /v1/settlements`), then close it. The closing is an
/// entry in the ledger. Administrators only.
#[utoipa::path(post, path = "/v1/accounts/{id}/close", tag = "administration",
    params(("id" = Uuid, Path, description = "The account's id"),
        IdempotencyKeyHeader),
    responses(
        (status = 201, description = "The closing entry", body = super::Recorded),
        (status = 400, description = "Bad id or Idempotency-Key (`invalid_path`, `idempotency_key_missing`, `idempotency_key_invalid`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`unknown_account`, `account_closed`, `account_not_empty`, `programme_account`, `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        BodilessWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn close_account(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::CloseAccount)?;
    let account = AccountId(id.into_inner());
    let committed = service::submit(
        &state,
        &caller,
        &idempotency_key.0,
        vec![Intent::Close { account }],
    )
    .await?;
    recorded(committed)
}

/// A rotation of the ledger's signing key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRotated {
    /// The new C2SP verifier key: give it to auditors.
    pub verifier_key: String,
    /// The `key` entry: the new key and the previous key's endorsement of it.
    pub entry: EntryView,
    /// The first checkpoint that includes it, signed by the new key and the previous one.
    pub checkpoint: CheckpointView,
}

/// Rotate the signing key
///
/// Hands checkpoint signing over to a new key, made and kept by the service: the ledger records a
/// `key` entry naming the new key, endorsed by the current one. From then on checkpoints are
/// signed by the new key and, for the overlap the service was started with (`serve
/// --key-overlap-days`, 30 days by default), by the previous key too, so that verifiers which
/// know only the previous key keep working while they learn the new one. There is no body.
/// Administrators only; the `key` entry's actor is the administrator's id.
///
/// One rotation per overlap: while the last rotation's overlap runs, another is refused with 409
/// `key_overlap_running` (its detail says when the overlap ends), so that the key before it
/// keeps signing for the whole overlap promised to verifiers.
#[utoipa::path(post, path = "/v1/key-rotations", tag = "administration",
    params(IdempotencyKeyHeader),
    responses(
        (status = 201, description = "The rotation: the new key, its entry and checkpoint", body = KeyRotated),
        (status = 400, description = "`idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_key_in_flight`, `key_rotation_in_progress`, `key_overlap_running`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body was sent; this request takes none (`body_not_allowed`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn rotate_key(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::RotateKey)?;
    // The rotation writes a key file and waits for its entry: off the async workers.
    let (verifier_key, committed) =
        web::block(move || service::signing_keys::rotate(&state, &caller, &idempotency_key.0))
            .await
            .map_err(|e| ApiError::Internal(format!("the rotation did not finish: {e}")))??;
    let entry = only_entry(&committed)?;
    Ok(created(
        committed.replayed,
        &KeyRotated {
            verifier_key,
            entry: entry.into(),
            checkpoint: (&committed.checkpoint).into(),
        },
    ))
}

/// A registered member with their credential, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRegistered {
    /// The member's id, which is also their wallet account's id.
    pub member_id: Uuid,
    /// The member credential (for a membership card's QR code or an app). Not stored. A repeat
    /// of this request with the same Idempotency-Key shows it again only within the replay
    /// window (24 hours by default) and while it is the member's current credential: later, or
    /// after a reissue or revocation, the repeat has no `credential` (reissue one instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The `open` entry of the member's wallet.
    pub entry: EntryView,
    /// A signed checkpoint whose tree includes that entry.
    pub checkpoint: CheckpointView,
}

/// What a registration may say about the member, as query parameters (it has no body).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The registering partner's own reference for the member (a membership number), shown in
    /// its list of members. Kept by the service, not in the ledger; a repeat of the request
    /// must give the same.
    pub reference: Option<TextField>,
}

/// Register a member
///
/// Opens a member wallet and returns the member's credential. There is no body: names and
/// contact details stay with the partner, and the ledger holds only the opaque id; the
/// partner may give its own `reference` for the member. Administrators and earn partners.
#[utoipa::path(post, path = "/v1/members", tag = "members",
    params(NewMember, IdempotencyKeyHeader),
    responses(
        (status = 201, description = "The member, their credential and the opening entry", body = MemberRegistered),
        (status = 400, description = "Missing or invalid Idempotency-Key (`idempotency_key_missing`, `idempotency_key_invalid`), a bad query (`invalid_query`) or reference (`invalid_request`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator or earn partner (`forbidden`), or its partner is suspended (`partner_suspended`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The key was used for a different request, or with another reference (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        BodilessWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn register_member(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    query: web::Query<NewMember>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::RegisterMember)?;
    let reference = TextField::parse_optional("reference", &query.reference)?;
    let (registered, committed) =
        service::members::register(&state, &caller, &idempotency_key.0, reference).await?;
    Ok(created(
        committed.replayed,
        &MemberRegistered {
            member_id: registered.member_id,
            credential: registered.credential,
            entry: only_entry(&committed)?.into(),
            checkpoint: (&committed.checkpoint).into(),
        },
    ))
}
