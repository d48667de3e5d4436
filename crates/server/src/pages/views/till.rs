//! The venue till: a venue takes credits with a spend code or a card and PIN, and settles.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::Utc;
use timecredits_domain::{AccountId, Details, EntryKind};
use timecredits_ledger::HistoryQuery;

use crate::auth::{Caller, Operation};
use crate::pages::{render, render_with, Form, Visitor};
use crate::problem::ApiError;
use crate::registry::Scope;
use crate::service;
use crate::service::redemptions::{Consent, Redemption};
use crate::service::settlements::Settled;
use crate::spend_codes::Attempt;
use crate::AppState;

use super::{
    card_and_pin, checked, entry_rows, form_key, format_minutes, partner_caller, Chrome, EntryRow,
    Page, Said,
};

#[derive(Template)]
#[template(path = "app/till.html")]
struct TillPage {
    c: Chrome,
    received: String,
    today: Vec<EntryRow>,
    idempotency_key: String,
    settle_key: String,
}

#[derive(Template)]
#[template(path = "app/till_receipt.html")]
struct TillReceipt {
    c: Chrome,
    entry: EntryRow,
    seq: u64,
}

fn till_page(
    v: &Visitor,
    state: &AppState,
    caller: &Caller,
    venue: AccountId,
    said: Said,
) -> HttpResponse {
    let status = said.status();
    let today = Utc::now().date_naive();
    let query = HistoryQuery {
        before: None,
        limit: 100,
        kinds: vec![EntryKind::Spend],
        from: Some(today),
        to: Some(today),
    };
    let (received, rows) = match service::accounts::history(state, caller, venue.0, &query) {
        Ok(history) => {
            let balance = state
                .ledger
                .account(venue)
                .ok()
                .flatten()
                .map_or(0, |a| a.balance);
            let rows = entry_rows(&v.t, &history.entries, &history.partners, venue);
            (format_minutes(balance.unsigned_abs()), rows)
        }
        Err(_) => (String::new(), Vec::new()),
    };
    render_with(
        status,
        &TillPage {
            c: Chrome::new(v, Some(caller), "/app/till", "till-title").say(said),
            received,
            today: rows,
            idempotency_key: form_key(),
            settle_key: form_key(),
        },
    )
}

/// `GET /app/till`.
pub async fn till(v: Visitor, state: web::Data<AppState>) -> Page {
    let (caller, _, venue) = partner_caller(&v, &state, Scope::Spend)?;
    Ok(till_page(&v, &state, &caller, venue, Said::Nothing))
}

/// `POST /app/till/redeem`: takes credits with a member's spend code.
pub async fn till_redeem(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, partner, venue) = partner_caller(&v, &state, Scope::Spend)?;
    let outcome = async {
        caller.permit(Operation::Redeem)?;
        let count = |name: &str| -> Result<u32, ApiError> {
            form.get(name).map_or(Ok(0), |n| {
                n.parse().map_err(|_| {
                    ApiError::InvalidRequest(format!("{name}: {n:?} is not a whole number"))
                })
            })
        };
        let details = Details {
            activity: Some(form.text("activity")?.ok_or_else(|| {
                ApiError::InvalidRequest("activity: say what the credits are spent on".into())
            })?),
            reference: form.text("reference")?,
            adults: Some(count("adults")?),
            children: Some(count("children")?),
            ..Details::default()
        };
        let who = Attempt {
            api_key: caller
                .api_key_id()
                .ok_or_else(|| ApiError::Internal("a partner caller has an API key".into()))?,
            partner,
            address: v.address.map(crate::spend_codes::source),
        };
        let card = card_and_pin(&form)?;
        let consent = match &card {
            Some((number, pin)) => Consent::Card { number, pin },
            None => Consent::SpendCode(form.get("code").unwrap_or("")),
        };
        // The fingerprint holds a keyed digest of the PIN, never the PIN itself.
        let pin_print = card.as_ref().map(|(_, pin)| state.registry.pin_print(pin));
        let redemption = Redemption {
            consent,
            minutes: form.amount()?,
            details,
            fingerprint: form.fingerprint_with("app/till/redeem", "pin", pin_print),
        };
        let key = form.idempotency_key()?;
        let committed =
            service::redemptions::redeem(&state, &caller, &key, venue, &who, redemption).await?;
        crate::api::only_entry(&committed).cloned()
    }
    .await;
    Ok(match outcome {
        Ok(entry) => {
            let no_partners = std::collections::BTreeMap::new();
            let row = entry_rows(&v.t, std::slice::from_ref(&entry), &no_partners, venue)
                .pop()
                .expect("one entry makes one row");
            render(&TillReceipt {
                c: Chrome::new(&v, Some(&caller), "/app/till", "receipt")
                    .notice(v.t.get("till-taken")),
                entry: row,
                seq: entry.seq,
            })
        }
        Err(e) => till_page(&v, &state, &caller, venue, Said::refused(&v.t, &e)),
    })
}

/// `POST /app/till/settle`: retires every credit the venue holds.
pub async fn till_settle(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, partner, venue) = partner_caller(&v, &state, Scope::Spend)?;
    let outcome = async {
        let key = form.idempotency_key()?;
        service::settlements::settle(&state, &caller, &key, partner, Settled::Venue, None, None)
            .await
    }
    .await;
    Ok(till_page(
        &v,
        &state,
        &caller,
        venue,
        Said::of(&v.t, outcome, |_| v.t.get("till-settled")),
    ))
}
