//! Members: a partner's list of those it registered, their credentials' reissue (a lost card)
//! and revocation, and a member's leaving.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use timecredits_domain::csv;
use timecredits_domain::entry::format_time;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::accounts::{decode_cursor, encode_cursor, page_size, AccountView};
use super::responses::{AuthProblems, JsonWriteProblems};
use super::sheets::CsvBody;
use super::{created, CheckpointView, EntryView};
use crate::auth::{not_visible, Caller, Operation};
use crate::idempotency::{fingerprint, IdemKey, IdempotencyKeyHeader};
use crate::problem::{ApiError, Problem};
use crate::registry::CredentialStatus;
use crate::service::sheets;
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

/// A member registered from a sheet, with their credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct SheetMember {
    /// The member's id, which is also their wallet account's id.
    pub member_id: Uuid,
    /// The reference given for them on the sheet.
    pub reference: Option<String>,
    /// The member credential, shown as at a single registration (and, on a repeat, under the
    /// same conditions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The members a registration sheet made, in row order.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersRegistered {
    /// The members, one per row, in row order.
    pub members: Vec<SheetMember>,
    /// The `open` entries of their wallets, in the same order.
    pub entries: Vec<super::EntryView>,
    /// A signed checkpoint whose tree includes them.
    pub checkpoint: super::CheckpointView,
}

/// Register members from a sheet
///
/// Registers a member for each row of a CSV sheet (`Content-Type: text/csv`, RFC 4180, UTF-8):
/// a header row `reference`, then one row per member with the partner's own reference for
/// them, at most 1,000. All or nothing: every wallet is opened in one ledger request, or none
/// is. A sheet with mistakes is refused whole with `invalid_request`, its `errors` listing
/// every mistake with its line (the header is line 1). Administrators and earn partners.
#[utoipa::path(post, path = "/v1/members/batch", tag = "members",
    params(IdempotencyKeyHeader),
    request_body(content(
        (String = "text/csv", example = "reference\r\nM-1042\r\nM-1043\r\n"),
    )),
    responses(
        (status = 201, description = "The members, their credentials and the opening entries", body = MembersRegistered),
        (status = 400, description = "`invalid_request` (with `errors`), `idempotency_key_missing`, `idempotency_key_invalid`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator or earn partner (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The key was used for a different request, or with other references (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        JsonWriteProblems,
    ),
    security(("bearer" = [])))]
pub async fn register_members(
    state: web::Data<AppState>,
    caller: Caller,
    idempotency_key: IdemKey,
    sheet: CsvBody,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::RegisterMember)?;
    let references = sheets::member_references(&sheet.0)?;
    let references = references.into_iter().map(Some).collect();
    let (members, committed) =
        service::members::register_many(&state, &caller, &idempotency_key.0, references).await?;
    Ok(created(
        committed.replayed,
        &MembersRegistered {
            members: members
                .into_iter()
                .map(|m| SheetMember {
                    member_id: m.member_id,
                    reference: m.reference,
                    credential: m.credential,
                })
                .collect(),
            entries: committed
                .entries
                .iter()
                .map(super::EntryView::from)
                .collect(),
            checkpoint: (&committed.checkpoint).into(),
        },
    ))
}

/// Which page of a partner's members to return, and how.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MemberListParams {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    // The pattern is exactly what `encode_cursor` makes of a member id (16 bytes, unpadded
    // base64url, whose last character carries 4 zero bits).
    #[param(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
    /// `csv` for the page as CSV, as `Accept: text/csv` asks too.
    pub format: Option<ListFormat>,
}

/// The form of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// JSON (the default).
    Json,
    /// RFC 4180 CSV: UTF-8, CRLF line ends, a header row.
    Csv,
}

/// A member the partner registered, with their wallet's balance and last activity. As a CSV
/// row, the fields in this order, an absent reference empty.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredMember {
    /// The member's id, which is also their wallet account's id.
    pub member_id: Uuid,
    /// The partner's own reference for the member, given at registration.
    pub reference: Option<String>,
    /// When the member was registered (UTC, microseconds).
    pub registered: String,
    /// The wallet's status: open or closed.
    pub status: String,
    /// The wallet's balance in minutes (60 = one credit).
    pub balance_minutes: i64,
    /// The sequence number of the newest entry touching the wallet (its opening, at least).
    pub last_entry_seq: u64,
    /// When that entry was recorded (UTC, microseconds).
    pub last_entry_recorded: String,
}

/// A page of a partner's members, oldest registration first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    /// The members of this page.
    pub members: Vec<RegisteredMember>,
    /// Whether there are more members after this page.
    pub has_more: bool,
    /// Pass as `cursor` to get the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The media type of a CSV answer (RFC 4180, RFC 7111's `header` parameter).
const TEXT_CSV: &str = "text/csv; charset=utf-8; header=present";

/// Whether the request asks for CSV: `?format=csv`, or `text/csv` among the media types its
/// `Accept` header accepts (with any weight but 0) when `format` is not given.
pub(super) fn wants_csv(req: &HttpRequest, format: Option<ListFormat>) -> bool {
    if let Some(format) = format {
        return format == ListFormat::Csv;
    }
    let refused = |param: &str| {
        let q = param.trim().strip_prefix("q=");
        q.is_some_and(|q| q.starts_with('0') && q.bytes().all(|b| b == b'0' || b == b'.'))
    };
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("text/csv") && !parts.any(refused)
        })
}

/// List a partner's members
///
/// The members the partner registered, oldest first, each with the partner's own reference
/// for them, their wallet's balance and status, and their last activity (the newest entry
/// touching the wallet). Cursor pagination as in account histories. As CSV with `?format=csv`
/// or `Accept: text/csv`: a header row, then one row per member (UTF-8, CRLF line ends), the
/// next page's address in a `Link` header (`rel="next"`). Administrators, and the partner
/// itself; members credited by a partner that did not register them are not its members (see
/// the README's concepts).
#[utoipa::path(get, path = "/v1/partners/{id}/members", tag = "members",
    params(("id" = Uuid, Path, description = "The partner's id"), MemberListParams),
    responses(
        (status = 200, description = "A page of members",
         headers(("Link" = String, description = "For CSV, when more members follow: `<address of the next page>; rel=\"next\"`")),
         content(
            (MemberPage = "application/json"),
            (String = "text/csv", example = "member_id,reference,registered,status,balance_minutes,last_entry_seq,last_entry_recorded\r\n0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12,M-1042,2026-11-23T10:15:00.123456Z,open,180,42,2026-11-30T09:00:00.000000Z\r\n"),
         )),
        (status = 400, description = "`invalid_path`, `invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A caller that may see the partner but not its members: an auditor, a member (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such partner, or another partner's (`partner_not_found`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = []), ("member" = [])))]
pub async fn list_members(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<Uuid>,
    params: web::Query<MemberListParams>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    caller.may_list_members(id)?;
    if state.registry.partner(id).is_none() {
        return Err(ApiError::PartnerNotFound(not_visible("partner", id)));
    }
    let limit = page_size(params.limit)?;
    let after = member_cursor(params.cursor.as_deref())?;
    let (listed, has_more) = service::members::registered_by(&state, id, after, limit)?;
    let next_cursor = next_member_cursor(listed.last().map(|l| l.member.account), has_more);
    let members: Vec<RegisteredMember> = listed
        .into_iter()
        .map(|l| {
            let wallet = AccountView::from(&l.wallet);
            RegisteredMember {
                member_id: l.member.account,
                reference: l.member.reference,
                registered: format_time(&l.member.registered),
                status: wallet.status,
                balance_minutes: wallet.balance_minutes,
                last_entry_seq: l.last_entry.seq,
                last_entry_recorded: format_time(&l.last_entry.recorded),
            }
        })
        .collect();
    if !wants_csv(&req, params.format) {
        return Ok(HttpResponse::Ok().json(MemberPage {
            members,
            has_more,
            next_cursor,
        }));
    }
    let next = next_cursor
        .map(|c| format!("/v1/partners/{id}/members?format=csv&limit={limit}&cursor={c}"));
    Ok(csv_page(to_csv(&members), next))
}

/// The member id a member list's `cursor` names, if one is given.
pub(super) fn member_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    cursor
        .map(|c| decode_cursor(c).map(Uuid::from_bytes))
        .transpose()
}

/// The cursor of the page after one that ends with member `last`, when more follow.
pub(super) fn next_member_cursor(last: Option<Uuid>, has_more: bool) -> Option<String> {
    last.filter(|_| has_more)
        .map(|id| encode_cursor(id.as_bytes()))
}

/// A page of a list as CSV, with the address of the `next` page, if more follow, in a `Link`
/// header (`rel="next"`).
pub(super) fn csv_page(body: impl Into<Vec<u8>>, next: Option<String>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(next) = next {
        response.insert_header((header::LINK, format!("<{next}>; rel=\"next\"")));
    }
    response.content_type(TEXT_CSV).body(body.into())
}

/// `members` as CSV (`timecredits_domain::csv`): the header row (written here, so that an empty
/// page has one too), then a row each; the partner's references made safe for a spreadsheet.
fn to_csv(members: &[RegisteredMember]) -> Vec<u8> {
    let mut out = csv::record(&RegisteredMember::CSV_HEADER);
    for m in members {
        let reference = csv::text(m.reference.as_deref().unwrap_or(""));
        out += &csv::record(&[
            &m.member_id.to_string(),
            &reference,
            &m.registered,
            &m.status,
            &m.balance_minutes.to_string(),
            &m.last_entry_seq.to_string(),
            &m.last_entry_recorded,
        ]);
    }
    out.into_bytes()
}

impl RegisteredMember {
    /// The CSV header row: the field names, in order (a test keeps them those of the JSON).
    const CSV_HEADER: [&'static str; 7] = [
        "member_id",
        "reference",
        "registered",
        "status",
        "balance_minutes",
        "last_entry_seq",
        "last_entry_recorded",
    ];
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(reference: Option<&str>) -> RegisteredMember {
        RegisteredMember {
            member_id: Uuid::nil(),
            reference: reference.map(str::to_owned),
            registered: "2026-11-23T10:15:00.000000Z".into(),
            status: "open".into(),
            balance_minutes: 90,
            last_entry_seq: 7,
            last_entry_recorded: "2026-11-24T10:15:00.000000Z".into(),
        }
    }

    #[test]
    fn the_csv_header_names_the_json_fields_in_order() {
        let json = serde_json::to_value(member(None)).unwrap();
        let names: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut sorted = RegisteredMember::CSV_HEADER.to_vec();
        sorted.sort_unstable();
        // serde_json's map is sorted; the header's order is checked by the row below.
        assert_eq!(names, sorted);
        let csv = String::from_utf8(to_csv(&[member(Some("a \"b\", c"))])).unwrap();
        assert_eq!(
            csv,
            "member_id,reference,registered,status,balance_minutes,last_entry_seq,last_entry_recorded\r\n\
             00000000-0000-0000-0000-000000000000,\"a \"\"b\"\", c\",2026-11-23T10:15:00.000000Z,open,90,7,2026-11-24T10:15:00.000000Z\r\n"
        );
    }

    #[test]
    fn csv_is_what_the_format_or_accept_header_asks_for() {
        let asks = |accept: &str, format| {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::ACCEPT, accept))
                .to_http_request();
            wants_csv(&req, format)
        };
        assert!(asks("application/json;q=0.9, text/csv", None));
        assert!(asks("TEXT/CSV; charset=utf-8", None));
        assert!(!asks("text/csv;q=0, application/json", None));
        assert!(!asks("text/csv; q=0.00", None));
        assert!(asks("text/csv; q=0.1", None));
        assert!(!asks("*/*", None));
        assert!(!asks("text/csv", Some(ListFormat::Json)));
        assert!(asks("application/json", Some(ListFormat::Csv)));
    }

    #[test]
    fn a_reference_cannot_start_a_spreadsheet_formula() {
        let csv = String::from_utf8(to_csv(&[member(Some("=HYPERLINK(\"x\")"))])).unwrap();
        assert!(csv.contains(",\"'=HYPERLINK(\"\"x\"\")\","), "{csv}");
    }

    #[test]
    fn an_empty_page_is_its_header() {
        let csv = to_csv(&[]);
        assert!(csv.ends_with(b"last_entry_recorded\r\n"));
        assert_eq!(csv.iter().filter(|b| **b == b'\n').count(), 1);
    }
}
