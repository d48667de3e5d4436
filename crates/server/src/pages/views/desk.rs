//! The partner desk: an earn partner records hours, registers members and sees its budget.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{NaiveDate, Utc};
use timecredits_domain::{AccountId, Details, Intent, MovementKind, Transfer};
use uuid::Uuid;

use crate::auth::{Caller, Operation};
use crate::pages::{problem_message, render, render_with, Form, Visitor};
use crate::problem::ApiError;
use crate::registry::Scope;
use crate::service;
use crate::AppState;

use super::{checked, form_key, format_minutes, partner_caller, Chrome, Page, Said, SecretPage};

/// A member in the desk's list.
pub struct MemberRow {
    id: Uuid,
    reference: String,
    balance: String,
    last_activity: String,
}

#[derive(Template)]
#[template(path = "app/desk.html")]
struct DeskPage {
    c: Chrome,
    budget: String,
    members: Vec<MemberRow>,
    idempotency_key: String,
    today: String,
}

fn desk_page(
    v: &Visitor,
    state: &AppState,
    caller: &Caller,
    partner: Uuid,
    budget: AccountId,
    said: Said,
) -> HttpResponse {
    let status = said.status();
    let budget_left = state
        .ledger
        .account(budget)
        .ok()
        .flatten()
        .map_or(0, |a| a.balance);
    let members = service::members::registered_by(state, partner, None, 500)
        .map(|(listed, _)| listed)
        .unwrap_or_default()
        .into_iter()
        .map(|l| MemberRow {
            id: l.member.account,
            reference: l.member.reference.unwrap_or_default(),
            balance: format_minutes(l.wallet.balance.unsigned_abs()),
            last_activity: l.last_entry.recorded.format("%Y-%m-%d").to_string(),
        })
        .collect();
    let page = DeskPage {
        c: Chrome::new(v, Some(caller), "/app/desk", "desk-title").say(said),
        budget: format_minutes(budget_left.unsigned_abs()),
        members,
        idempotency_key: form_key(),
        today: Utc::now().date_naive().to_string(),
    };
    render_with(status, &page)
}

/// `GET /app/desk`.
pub async fn desk(v: Visitor, state: web::Data<AppState>) -> Page {
    let (caller, partner, budget) = partner_caller(&v, &state, Scope::Earn)?;
    Ok(desk_page(
        &v,
        &state,
        &caller,
        partner,
        budget,
        Said::Nothing,
    ))
}

/// `POST /app/desk/earn`: hours for the members ticked (and one typed), all or nothing.
pub async fn desk_earn(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, partner, budget) = partner_caller(&v, &state, Scope::Earn)?;
    let outcome = async {
        caller.permit(Operation::Earn)?;
        let mut members: Vec<&str> = form.all("member");
        members.extend(form.get("member_id"));
        if members.is_empty() {
            return Err(None);
        }
        let minutes = form.amount()?;
        let activity = form.text("activity")?.ok_or_else(|| {
            ApiError::InvalidRequest("activity: say what the time was given to".into())
        })?;
        let effective = form
            .get("date_given")
            .map(|d| d.parse::<NaiveDate>())
            .transpose()
            .map_err(|_| ApiError::InvalidRequest("date_given: not a date".into()))?;
        let reference = form.text("reference")?;
        let intents = members
            .iter()
            .map(|m| {
                let member = m.parse::<Uuid>().map_err(|_| {
                    ApiError::InvalidRequest(format!("member: {m:?} is not a member number"))
                })?;
                Ok(Intent::Transfer(Transfer {
                    kind: MovementKind::Earn,
                    debit: budget,
                    credit: AccountId(member),
                    minutes,
                    effective,
                    details: Details {
                        activity: Some(activity.clone()),
                        reference: reference.clone(),
                        ..Details::default()
                    },
                }))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let key = form.idempotency_key()?;
        let committed = service::submit(&state, &caller, &key, intents).await?;
        Ok(committed.entries.len())
    }
    .await;
    let said = match outcome {
        Ok(count) => Said::Notice(v.t.with("desk-recorded", "count", &count)),
        Err(None) => Said::Error(v.t.get("desk-no-member")),
        Err(Some(e)) => Said::Error(problem_message(&v.t, &e)),
    };
    Ok(desk_page(&v, &state, &caller, partner, budget, said))
}

/// `POST /app/desk/members`: registers a member and shows their credential, once.
pub async fn desk_register(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, partner, budget) = partner_caller(&v, &state, Scope::Earn)?;
    let outcome = async {
        caller.permit(Operation::RegisterMember)?;
        let reference = form.text("reference")?;
        let key = form.idempotency_key()?;
        let (registered, _) = service::members::register(&state, &caller, &key, reference).await?;
        Ok::<_, ApiError>(registered)
    }
    .await;
    Ok(match outcome {
        Ok(registered) => {
            let c = Chrome::new(&v, Some(&caller), "/app/desk", "desk-register")
                .notice(v.t.get("desk-registered"));
            render(&SecretPage {
                c,
                label: format!("{} · {}", v.t.get("member-id"), registered.member_id),
                secret: registered.credential.unwrap_or_default(),
                back: "/app/desk",
            })
        }
        Err(e) => desk_page(
            &v,
            &state,
            &caller,
            partner,
            budget,
            Said::Error(problem_message(&v.t, &e)),
        ),
    })
}
