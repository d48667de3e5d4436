//! The expiry policy's two routes: the notice list of wallets about to expire, and the
//! administrator's sweep (see [`service::expiries`]).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use timecredits_domain::csv;
use timecredits_domain::entry::format_time;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::page_size;
use super::members::{csv_page, member_cursor, next_member_cursor, wants_csv, MemberListParams};
use super::responses::AuthProblems;
use super::EntryView;
use crate::auth::{Caller, Operation};
use crate::problem::{ApiError, Problem};
use crate::registry::Scope;
use crate::service::{self, expiries::Whose};
use crate::AppState;

/// A member wallet that expires within the notice period. As a CSV row, the fields in this
/// order, an absent reference empty.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpcomingExpiry {
    /// The member's id, which is also their wallet account's id.
    pub member_id: Uuid,
    /// The registering partner's own reference for the member, given at registration.
    pub reference: Option<String>,
    /// The wallet's balance in minutes: what expires, unless the wallet is used first.
    pub balance_minutes: i64,
    /// The sequence number of the newest entry touching the wallet: its last use.
    pub last_use_seq: u64,
    /// When that entry was recorded (UTC, microseconds).
    pub last_use: String,
    /// The first moment the wallet may expire: `expiry_months` calendar months after its last
    /// use (UTC, microseconds). Already past for a wallet the next sweep expires.
    pub expires: String,
}

impl UpcomingExpiry {
    /// The CSV header row: the field names, in order (a test keeps them those of the JSON).
    const CSV_HEADER: [&'static str; 6] = [
        "member_id",
        "reference",
        "balance_minutes",
        "last_use_seq",
        "last_use",
        "expires",
    ];
}

/// A page of the notice list, member id order (oldest registration first).
#[derive(Debug, Serialize, ToSchema)]
pub struct UpcomingPage {
    /// Whether the service runs with an expiry policy; without one the list is always empty.
    pub policy_active: bool,
    /// The policy's period in months, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_months: Option<u32>,
    /// How many days ahead an expiry is listed, when there is a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_days: Option<u32>,
    /// The wallets of this page.
    pub members: Vec<UpcomingExpiry>,
    /// Whether more follow this page.
    pub has_more: bool,
    /// Pass as `cursor` to get the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// List wallets about to expire
///
/// The notice list of the expiry policy: member wallets holding credits that expire within the
/// notice period (`expiry_notice_days`, 30 by default), because no entry touched them for the
/// policy's period, with when each expires; wallets already due, which the next sweep expires,
/// too. Any use of the wallet (an earn, a spend, a gift in or out) puts its expiry off. An earn
/// partner sees the members it registered; administrators and auditors every member. Cursor
/// pagination as in a partner's member list; CSV with `?format=csv` or `Accept: text/csv`.
/// With no expiry policy the list is empty and `policy_active` is false (not an error: a
/// partner's routine fetch works either way).
#[utoipa::path(get, path = "/v1/expiries/upcoming", tag = "members",
    params(MemberListParams),
    responses(
        (status = 200, description = "A page of the notice list",
         headers(("Link" = String, description = "For CSV, when more follow: `<address of the next page>; rel=\"next\"`")),
         content(
            (UpcomingPage = "application/json"),
            (String = "text/csv", example = "member_id,reference,balance_minutes,last_use_seq,last_use,expires\r\n0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12,M-1042,180,42,2025-12-20T09:00:00.000000Z,2026-12-20T09:00:00.000000Z\r\n"),
         )),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A member, or a partner key without the `earn` scope (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn upcoming(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    params: web::Query<MemberListParams>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::ListUpcomingExpiries)?;
    let whose = if caller.reads_all() {
        Whose::All
    } else {
        Whose::RegisteredBy(caller.partner_account(Scope::Earn)?.0)
    };
    let limit = page_size(params.limit)?;
    let after = member_cursor(params.cursor.as_deref())?;
    let policy = state.expiry.policy;
    let (page, has_more) = web::block({
        let state = state.clone();
        move || service::expiries::upcoming(&state, whose, after, limit)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the notice list did not finish: {e}")))??;
    let next_cursor = next_member_cursor(page.last().map(|w| w.member.account), has_more);
    let members: Vec<UpcomingExpiry> = page
        .into_iter()
        .map(|w| UpcomingExpiry {
            member_id: w.member.account,
            reference: w.member.reference,
            balance_minutes: w.balance,
            last_use_seq: w.last_use.seq,
            last_use: format_time(&w.last_use.recorded),
            expires: format_time(&w.expires),
        })
        .collect();
    if !wants_csv(&req, params.format) {
        return Ok(HttpResponse::Ok().json(UpcomingPage {
            policy_active: policy.is_some(),
            expiry_months: policy.map(|p| p.months),
            notice_days: policy.map(|p| p.notice_days),
            members,
            has_more,
            next_cursor,
        }));
    }
    let mut body = csv::record(&UpcomingExpiry::CSV_HEADER);
    for m in &members {
        body += &csv::record(&[
            &m.member_id.to_string(),
            &csv::text(m.reference.as_deref().unwrap_or("")),
            &m.balance_minutes.to_string(),
            &m.last_use_seq.to_string(),
            &m.last_use,
            &m.expires,
        ]);
    }
    let next =
        next_cursor.map(|c| format!("/v1/expiries/upcoming?format=csv&limit={limit}&cursor={c}"));
    Ok(csv_page(body, next))
}

/// What a sweep expired.
#[derive(Debug, Serialize, ToSchema)]
pub struct SweepResult {
    /// How many wallets it expired.
    pub expired: usize,
    /// The minutes it expired, in all.
    pub expired_minutes: u64,
    /// Its `expire` entries, one per wallet.
    pub entries: Vec<EntryView>,
}

/// Sweep expired wallets now
///
/// Runs the expiry sweep, which the service also runs at start and then daily: every member
/// wallet holding credits that no entry touched for the policy's period is emptied back to the
/// programme by an `expire` entry (each naming the period it applied, for the auditor's
/// replay). No body and no Idempotency-Key: each expiry is recorded under a key derived from
/// the wallet and its last use, so a repeated or concurrent sweep records none twice, and
/// answers with what it expired itself (nothing, when another sweep did it). A sweep under way
/// is waited for. Administrators only.
#[utoipa::path(post, path = "/v1/expiries/sweep", tag = "administration",
    responses(
        (status = 200, description = "What the sweep expired", body = SweepResult),
        (status = 403, description = "Not an administrator (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No expiry policy is configured (`expiry_policy_off`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body was sent; this request takes none (`body_not_allowed`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn sweep(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::SweepExpiries)?;
    let swept = web::block(move || service::expiries::sweep(&state))
        .await
        .map_err(|e| ApiError::Internal(format!("the sweep did not finish: {e}")))??;
    Ok(HttpResponse::Ok().json(SweepResult {
        expired: swept.entries.len(),
        expired_minutes: swept.minutes,
        entries: swept.entries.iter().map(EntryView::from).collect(),
    }))
}
