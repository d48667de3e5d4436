//! Reading: who am I, accounts and their balances, histories, entries.

use std::collections::BTreeMap;

use actix_web::web;
use base64::Engine;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use timecredits_domain::{AccountId, AccountState, AccountStatus, EntryKind};
use timecredits_ledger::HistoryQuery;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::responses::AuthProblems;
use super::EntryView;
use crate::auth::Caller;
use crate::problem::{ApiError, Problem};
use crate::registry::{Partner, Scope};
use crate::service;
use crate::AppState;

/// An account and its balance.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12", "kind": "member", "status": "open", "balance_minutes": 180, "opened_seq": 7}))]
pub struct AccountView {
    /// The account's id.
    pub id: Uuid,
    /// programme, budget, venue or member.
    pub kind: String,
    /// The partner owning a budget or venue account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Uuid>,
    /// open or closed.
    pub status: String,
    /// The balance in minutes (60 = one credit). Only the programme account is ever negative.
    pub balance_minutes: i64,
    /// The sequence number of the entry that opened it.
    pub opened_seq: u64,
}

impl From<&AccountState> for AccountView {
    fn from(a: &AccountState) -> Self {
        AccountView {
            id: a.id.0,
            kind: a.kind.as_str().to_owned(),
            owner: a.owner,
            status: match a.status {
                AccountStatus::Open => "open",
                AccountStatus::Closed => "closed",
            }
            .to_owned(),
            balance_minutes: a.balance,
            opened_seq: a.opened,
        }
    }
}

/// The caller, as the service knows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// administrator, auditor, partner or member.
    pub kind: String,
    /// The id entries made by this caller carry as actor.
    pub actor: Uuid,
    /// The API key's scopes (empty for members).
    pub scopes: Vec<Scope>,
    /// The partner, for partner keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner: Option<Partner>,
    /// The caller's own accounts with their balances (a member's wallet, a partner's budget
    /// and venue accounts).
    pub accounts: Vec<AccountView>,
}

/// Who am I
///
/// The caller's identity, scopes, and own accounts with balances: what a member's app or a
/// partner's integration shows on its first screen.
#[utoipa::path(get, path = "/v1/me", tag = "accounts",
    responses(
        (status = 200, description = "The caller", body = Me),
        AuthProblems,
    ),
    security(("bearer" = []), ("member" = [])))]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<web::Json<Me>, ApiError> {
    let (kind, scopes, partner, own): (_, _, _, Vec<Uuid>) = match &caller {
        Caller::Member(m) => ("member", vec![], None, vec![m.account]),
        Caller::ApiKey {
            api_key, partner, ..
        } => {
            let kind = match api_key.principal {
                crate::registry::Principal::Administrator => "administrator",
                crate::registry::Principal::Auditor { .. } => "auditor",
                crate::registry::Principal::Partner { .. } => "partner",
            };
            let own = partner
                .iter()
                .flat_map(|p| [p.budget_account, p.venue_account])
                .flatten()
                .collect();
            (kind, api_key.scopes.clone(), partner.clone(), own)
        }
    };
    let mut accounts = Vec::new();
    for id in own {
        if let Some(a) = state.ledger.account(AccountId(id))? {
            accounts.push(AccountView::from(&a));
        }
    }
    Ok(web::Json(Me {
        kind: kind.into(),
        actor: caller.actor(),
        scopes,
        partner,
        accounts,
    }))
}

/// Get an account
///
/// An account's kind, status and balance (one keyed read). Administrators and auditors see
/// every account, partners their own budget and venue accounts and the wallets of the members
/// they registered, members their own wallet; anything else is reported as not found.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts",
    params(("id" = Uuid, Path, description = "The account's id (for members, the member id)")),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`account_not_found`", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = []), ("member" = [])))]
pub async fn get_account(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<AccountView>, ApiError> {
    let account = service::accounts::visible_account(&state, &caller, id.into_inner())?;
    Ok(web::Json((&account).into()))
}

/// Which page of a history to return.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    // The pattern is exactly what `encode_cursor` makes (8 bytes, unpadded base64url, whose
    // last character carries 2 zero bits), so fuzzers do not take other strings for valid.
    #[param(pattern = "^[A-Za-z0-9_-]{10}[AEIMQUYcgkosw048]$")]
    pub cursor: Option<String>,
    /// Only these kinds, comma-separated without spaces (e.g. `earn,spend`).
    #[param(
        pattern = "^(open|close|allocate|earn|spend|gift|reverse|retire|key)(,(open|close|allocate|earn|spend|gift|reverse|retire|key))*$"
    )]
    pub kind: Option<String>,
    /// Only entries effective on or after this date.
    pub from: Option<NaiveDate>,
    /// Only entries effective on or before this date.
    pub to: Option<NaiveDate>,
}

/// A page of an account's history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    /// The entries of this page, newest first.
    pub entries: Vec<EntryView>,
    /// Whether there may be more entries after this page.
    pub has_more: bool,
    /// Pass as `cursor` to get the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The partners owning the budget and venue accounts this page's entries move credits
    /// from or to, by account id: who paid a member for time given, where they spent it. Beside
    /// the entries, whose fields are exactly their canonical encoding.
    pub partners: BTreeMap<Uuid, PartnerName>,
}

/// A partner as a history names it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerName {
    /// The partner's id (readable by members: `GET /v1/partners/{id}`).
    pub partner_id: Uuid,
    /// Its name.
    pub name: String,
}

/// An opaque page cursor: a position (a sequence number, a member id) in unpadded base64url.
pub(super) fn encode_cursor(position: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position)
}

/// The position an [`encode_cursor`] cursor holds, if it is one.
pub(super) fn decode_cursor<const N: usize>(cursor: &str) -> Result<[u8; N], ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| ApiError::InvalidQuery("the cursor is not one this API returned".into()))
}

/// A page size asked for (1 to [`HistoryQuery::MAX_LIMIT`], 50 when not given).
pub(super) fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=HistoryQuery::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit must be between 1 and {}",
            HistoryQuery::MAX_LIMIT
        )));
    }
    Ok(limit)
}

impl HistoryParams {
    fn query(&self) -> Result<HistoryQuery, ApiError> {
        let limit = page_size(self.limit)?;
        let kinds = match &self.kind {
            None => vec![],
            Some(list) => list
                .split(',')
                .map(|name| {
                    EntryKind::ALL
                        .into_iter()
                        // Exactly the names, as the parameter's pattern states.
                        .find(|k| k.as_str() == name)
                        .ok_or_else(|| {
                            ApiError::InvalidQuery(format!("{name:?} is not an entry kind"))
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from > to {
                return Err(ApiError::InvalidQuery("from is after to".into()));
            }
        }
        Ok(HistoryQuery {
            before: self
                .cursor
                .as_deref()
                .map(|c| decode_cursor(c).map(u64::from_be_bytes))
                .transpose()?,
            limit,
            kinds,
            from: self.from,
            to: self.to,
        })
    }
}

/// List an account's entries
///
/// The account's history, newest first, with cursor pagination and filters by kind and
/// effective date, with the names of the partners whose accounts the entries touch. Same
/// visibility as the account itself.
#[utoipa::path(get, path = "/v1/accounts/{id}/entries", tag = "accounts",
    params(("id" = Uuid, Path, description = "The account's id"), HistoryParams),
    responses(
        (status = 200, description = "A page of entries", body = HistoryPage),
        (status = 400, description = "`invalid_path`, `invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`account_not_found`", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = []), ("member" = [])))]
pub async fn history(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    params: web::Query<HistoryParams>,
) -> Result<web::Json<HistoryPage>, ApiError> {
    let query = params.query()?;
    let page = service::accounts::history(&state, &caller, id.into_inner(), &query)?;
    let partners = page
        .partners
        .into_iter()
        .map(|(account, p)| {
            let name = PartnerName {
                partner_id: p.id,
                name: p.name,
            };
            (account, name)
        })
        .collect();
    Ok(web::Json(HistoryPage {
        partners,
        entries: page.entries.iter().map(EntryView::from).collect(),
        has_more: page.next.is_some(),
        next_cursor: page.next.map(|seq| encode_cursor(&seq.to_be_bytes())),
    }))
}

/// Get an entry
///
/// One entry by id. Administrators and auditors see every entry; partners and members the
/// entries they took part in; anything else is reported as not found.
#[utoipa::path(get, path = "/v1/entries/{id}", tag = "accounts",
    params(("id" = Uuid, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "The entry", body = EntryView),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`entry_not_found`", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = []), ("member" = [])))]
pub async fn get_entry(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<EntryView>, ApiError> {
    let entry = service::accounts::visible_entry(&state, &caller, id.into_inner())?;
    Ok(web::Json(EntryView::from(&entry)))
}

/// Get a receipt for an entry
///
/// A C2SP `tlog-proof@v1` proving the entry is in the ledger: the entry's canonical bytes
/// (`extra`, base64), its index, the inclusion proof, and the latest signed checkpoint. Keep it;
/// check it offline with `timecredits-audit receipt --key VKEY FILE`. Same visibility as the
/// entry: members get receipts of their own entries, partners of theirs.
#[utoipa::path(get, path = "/v1/entries/{id}/receipt", tag = "accounts",
    params(("id" = Uuid, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "The receipt", body = String, content_type = "text/plain",
         example = "c2sp.org/tlog-proof@v1\nextra eyJzZXEiOjU…\nindex 5\nq1GIqbF5sP0CUoUGV0Ulh7n4YMBL0Ifn0bqhU5UM6oE=\n\nlocalhost/timecredits\n7\nM3apXw9awstMNak1WM7pl4ynGsL18fwhkI/mEPR64gA=\n\n— localhost/timecredits Kwls3PT7…\n"),
        (status = 400, description = "`invalid_path`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`entry_not_found`", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = []), ("member" = [])))]
pub async fn receipt(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let text = service::accounts::receipt(&state, &caller, id.into_inner())?;
    Ok(actix_web::HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}
