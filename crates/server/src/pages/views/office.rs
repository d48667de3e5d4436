//! The programme office: partners, staff logins, this year's figures and the ledger's checkpoint.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use askama::Template;
use timecredits_domain::report::{Figure, Section};
use timecredits_domain::{AccountId, Details};
use timecredits_ledger::ExportRange;
use uuid::Uuid;

use crate::auth::{Caller, Operation};
use crate::pages::{render, render_with, Form, Visitor};
use crate::problem::ApiError;
use crate::registry::staff::Username;
use crate::registry::{Principal, Role};
use crate::service;
use crate::service::api_keys::KeyHolder;
use crate::service::settlements::Settled;
use crate::AppState;

use super::{
    checked, failed, form_key, format_minutes, not_allowed, signed_in, Chrome, Page, Refusal, Said,
    SecretPage,
};

/// A partner in the office's list, with what its accounts hold.
pub struct PartnerRow {
    id: Uuid,
    name: String,
    roles: String,
    earns: bool,
    budget: String,
    received: String,
}

/// An API key in the office's list (a staff login's key names its username), revocable
/// unless it is revoked already or the caller's own.
pub struct KeyRow {
    id: Uuid,
    label: String,
    username: Option<String>,
    holder: String,
    created: String,
    revoked: bool,
    own: bool,
}

/// One bar of the office's chart.
pub struct Bar {
    x: u32,
    y: u32,
    height: u32,
    label: String,
    value: String,
}

#[derive(Template)]
#[template(path = "app/office.html")]
struct OfficePage {
    c: Chrome,
    partners: Vec<PartnerRow>,
    keys: Vec<KeyRow>,
    hours_given: String,
    hours_redeemed: String,
    bars: Vec<Bar>,
    report_size: u64,
    size: u64,
    verifier_key: String,
    checkpoint: String,
    idempotency_key: String,
    may_export: bool,
}

/// The chart's drawing height, in SVG units.
const CHART_HEIGHT: u32 = 160;

fn office_caller(v: &Visitor, state: &AppState) -> Result<Caller, Refusal> {
    let caller = signed_in(v, state)?;
    match caller.permit(Operation::ListPartners) {
        Ok(()) => Ok(caller),
        Err(_) => Err(not_allowed(v, &caller)),
    }
}

fn office_page(v: &Visitor, state: &AppState, caller: &Caller, said: Said) -> HttpResponse {
    let status = said.status();
    let t = &v.t;
    let held = |account: Option<Uuid>| {
        account
            .and_then(|a| state.ledger.account(AccountId(a)).ok().flatten())
            .map_or_else(String::new, |a| format_minutes(a.balance.unsigned_abs()))
    };
    let partners: Vec<PartnerRow> = state
        .registry
        .partners()
        .into_iter()
        .map(|p| PartnerRow {
            id: p.id,
            roles: p
                .roles
                .iter()
                .map(|r| match r {
                    Role::Earn => t.get("role-earn"),
                    Role::Spend => t.get("role-spend"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            earns: p.budget_account.is_some(),
            budget: held(p.budget_account),
            received: held(p.venue_account),
            name: p.name,
        })
        .collect();
    let keys = if caller.permit(Operation::ListApiKeys).is_ok() {
        let usernames: HashMap<Uuid, String> = state
            .registry
            .staff_logins()
            .into_iter()
            .map(|l| (l.key, l.username))
            .collect();
        let names: HashMap<Uuid, &str> = partners.iter().map(|p| (p.id, p.name.as_str())).collect();
        state
            .registry
            .api_keys(None)
            .into_iter()
            .map(|k| KeyRow {
                id: k.id,
                holder: match k.principal {
                    Principal::Administrator => t.get("administrator"),
                    Principal::Auditor { .. } => t.get("auditor"),
                    Principal::Partner { id } => names.get(&id).copied().unwrap_or("").to_owned(),
                },
                created: k.created.format("%Y-%m-%d").to_string(),
                revoked: k.revoked.is_some(),
                own: caller.api_key_id() == Some(k.id),
                username: usernames.get(&k.id).cloned(),
                label: k.label,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (report, report_size) =
        service::reports::cached_report(state, service::reports::this_year(None))
            .map(|(r, size)| (r.rows, size))
            .unwrap_or_default();
    let total = |section: Section, figure: Figure| -> i64 {
        report
            .iter()
            .filter(|r| r.section == section && r.figure == figure && r.partner.is_some())
            .map(|r| r.value)
            .sum()
    };
    let mut months: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for r in report.iter().filter(|r| {
        r.section == Section::Earn && r.figure == Figure::GivenMinutes && r.partner.is_some()
    }) {
        *months.entry(r.period.clone()).or_default() += r.value;
    }
    let peak = months.values().copied().max().unwrap_or(0).max(1);
    let bars = months
        .iter()
        .enumerate()
        .map(|(i, (month, minutes))| {
            let height = (minutes * i64::from(CHART_HEIGHT) / peak) as u32;
            Bar {
                x: 10 + 40 * i as u32,
                y: CHART_HEIGHT - height + 10,
                height,
                label: month.clone(),
                value: format_minutes(minutes.unsigned_abs()),
            }
        })
        .collect();
    let checkpoint = state
        .ledger
        .checkpoint()
        .map(|s| s.note)
        .unwrap_or_default();
    render_with(
        status,
        &OfficePage {
            c: Chrome::new(v, Some(caller), "/app/office", "office-title").say(said),
            partners,
            keys,
            hours_given: format_minutes(total(Section::Earn, Figure::GivenMinutes).unsigned_abs()),
            hours_redeemed: format_minutes(
                total(Section::Spend, Figure::RedeemedMinutes).unsigned_abs(),
            ),
            bars,
            report_size,
            size: state.ledger.size().unwrap_or(0),
            verifier_key: state.ledger.verifier_key(),
            checkpoint,
            idempotency_key: form_key(),
            may_export: caller.permit(Operation::Export).is_ok(),
        },
    )
}

/// `GET /app/office`.
pub async fn office(v: Visitor, state: web::Data<AppState>) -> Page {
    let caller = office_caller(&v, &state)?;
    Ok(office_page(&v, &state, &caller, Said::Nothing))
}

/// `POST /app/office/logins`: a staff login, its password shown once.
pub async fn office_login(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let caller = office_caller(&v, &state)?;
    let outcome = (|| {
        caller.permit(Operation::CreateApiKey)?;
        let username = Username::from_input(form.get("username").unwrap_or(""))
            .map_err(|e| ApiError::InvalidRequest(format!("username: {e}")))?;
        let label = form
            .text("label")?
            .ok_or_else(|| ApiError::InvalidRequest("label: give the person's name".into()))?;
        let holder = match form.get("holder").unwrap_or("") {
            "administrator" => KeyHolder::Administrator {},
            "auditor" => KeyHolder::Auditor {},
            id => KeyHolder::Partner {
                id: id.parse().map_err(|_| {
                    ApiError::InvalidRequest("holder: choose whom it is for".into())
                })?,
                scopes: None,
            },
        };
        let key = form.idempotency_key()?;
        let print = form.fingerprint("app/office/logins");
        service::staff_logins::create(&state, &caller, &key, print, username, label, &holder)
    })();
    Ok(match outcome {
        Ok(made) => render(&SecretPage {
            c: Chrome::new(&v, Some(&caller), "/app/office", "office-new-login")
                .notice(v.t.get("office-login-created")),
            label: format!("{} · {}", v.t.get("username"), made.username.as_str()),
            secret: made.password,
            qr: None,
            back: "/app/office",
        }),
        Err(e) => office_page(&v, &state, &caller, Said::refused(&v.t, &e)),
    })
}

/// `POST /app/office/partners`: a new partner, an earn partner, a venue or both (the form's
/// `earn` and `spend` boxes), its accounts opened in the ledger; a form sent twice makes one.
pub async fn office_partner(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let caller = office_caller(&v, &state)?;
    let outcome = async {
        caller.permit(Operation::CreatePartner)?;
        let name = form
            .text("name")?
            .ok_or_else(|| ApiError::InvalidRequest("name: give the partner's name".into()))?;
        let roles = [("earn", Role::Earn), ("spend", Role::Spend)]
            .into_iter()
            .filter(|(field, _)| form.get(field).is_some())
            .map(|(_, role)| role)
            .collect();
        let key = form.idempotency_key()?;
        service::partners::create(&state, &caller, &key, name, roles).await
    }
    .await;
    let said = Said::of(&v.t, outcome, |(partner, _)| {
        v.t.with("office-partner-created", "name", &partner.name)
    });
    Ok(office_page(&v, &state, &caller, said))
}

/// `POST /app/office/allocations`: budget for an earn partner.
pub async fn office_allocate(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let caller = office_caller(&v, &state)?;
    let outcome = async {
        let partner = chosen_partner(&form)?;
        let details = Details {
            reference: form.text("reference")?,
            ..Details::default()
        };
        let minutes = form.amount()?;
        let key = form.idempotency_key()?;
        service::allocations::allocate(&state, &caller, &key, partner, minutes, details).await
    }
    .await;
    let said = Said::of(&v.t, outcome, |_| v.t.get("office-allocated"));
    Ok(office_page(&v, &state, &caller, said))
}

/// `POST /app/office/settlements`: a partner's venue credits retired, or its unused budget
/// returned (all of it).
pub async fn office_settle(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let caller = office_caller(&v, &state)?;
    let outcome = async {
        let partner = chosen_partner(&form)?;
        let which = match form.get("account") {
            Some("budget") => Settled::Budget,
            Some("venue") => Settled::Venue,
            _ => {
                return Err(ApiError::InvalidRequest(
                    "account: choose the budget or the venue credits".into(),
                ))
            }
        };
        let key = form.idempotency_key()?;
        service::settlements::settle(&state, &caller, &key, partner, which, None, None).await
    }
    .await;
    let said = Said::of(&v.t, outcome, |_| v.t.get("office-settled"));
    Ok(office_page(&v, &state, &caller, said))
}

/// `POST /app/office/keys/revoke`: an API key (or a staff login's) revoked, its sessions ended.
pub async fn office_revoke(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let caller = office_caller(&v, &state)?;
    let outcome = (|| {
        caller.permit(Operation::RevokeApiKey)?;
        let id = form
            .get("key")
            .and_then(|k| k.parse::<Uuid>().ok())
            .ok_or_else(|| ApiError::InvalidRequest("key: not a key id".into()))?;
        let key = form.idempotency_key()?;
        let print = form.fingerprint("app/office/keys/revoke");
        service::api_keys::revoke(&state, &caller, &key, print, id)
    })();
    let said = Said::of(&v.t, outcome, |_| v.t.get("office-key-revoked"));
    Ok(office_page(&v, &state, &caller, said))
}

/// `GET /app/office/export.ndjson`: the signed export of the whole ledger, for auditors (the
/// API's `GET /v1/ledger/export`, as a download).
pub async fn office_export(v: Visitor, state: web::Data<AppState>) -> Page {
    let caller = office_caller(&v, &state)?;
    caller
        .permit(Operation::Export)
        .map_err(|_| not_allowed(&v, &caller))?;
    let range = ExportRange {
        from: 0,
        size: None,
    };
    let mut response = crate::api::log::export_response(state, range)
        .map_err(|e| failed(&v, &caller, ("/app/office", "office-title"), &e))?;
    response.headers_mut().insert(
        actix_web::http::header::CONTENT_DISPOSITION,
        actix_web::http::header::HeaderValue::from_static(
            "attachment; filename=\"timecredits-export.ndjson\"",
        ),
    );
    Ok(response)
}

/// The partner a form chose.
fn chosen_partner(form: &Form) -> Result<Uuid, ApiError> {
    form.get("partner")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| ApiError::InvalidRequest("partner: choose a partner".into()))
}
