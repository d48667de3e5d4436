//! The programme office: partners, staff logins, this year's figures and the ledger's checkpoint.

use actix_web::{web, HttpResponse};
use askama::Template;
use timecredits_domain::report::{Figure, Section};
use uuid::Uuid;

use crate::auth::{Caller, Operation};
use crate::pages::{render, render_with, Form, Visitor};
use crate::problem::ApiError;
use crate::registry::staff::Username;
use crate::registry::Role;
use crate::service;
use crate::service::api_keys::KeyHolder;
use crate::AppState;

use super::reports::this_year;
use super::{
    checked, form_key, format_minutes, not_allowed, signed_in, Chrome, Page, Refusal, Said,
    SecretPage,
};

/// A partner in the office's list.
pub struct PartnerRow {
    id: Uuid,
    name: String,
    roles: String,
}

/// A staff login in the office's list.
pub struct LoginRow {
    username: String,
    label: String,
    revoked: bool,
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
    logins: Vec<LoginRow>,
    hours_given: String,
    hours_redeemed: String,
    bars: Vec<Bar>,
    report_size: u64,
    size: u64,
    verifier_key: String,
    checkpoint: String,
    login_key: String,
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
    let partners = state
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
            name: p.name,
        })
        .collect();
    let logins = if caller.permit(Operation::ListApiKeys).is_ok() {
        state
            .registry
            .staff_logins()
            .into_iter()
            .filter_map(|l| {
                let key = state.registry.api_key(l.key)?;
                Some(LoginRow {
                    username: l.username,
                    label: key.label,
                    revoked: key.revoked.is_some(),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let (report, report_size) = service::reports::cached_report(state, this_year(None))
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
            logins,
            hours_given: format_minutes(total(Section::Earn, Figure::GivenMinutes).unsigned_abs()),
            hours_redeemed: format_minutes(
                total(Section::Spend, Figure::RedeemedMinutes).unsigned_abs(),
            ),
            bars,
            report_size,
            size: state.ledger.size().unwrap_or(0),
            verifier_key: state.ledger.verifier_key(),
            checkpoint,
            login_key: form_key(),
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
            back: "/app/office",
        }),
        Err(e) => office_page(&v, &state, &caller, Said::refused(&v.t, &e)),
    })
}
