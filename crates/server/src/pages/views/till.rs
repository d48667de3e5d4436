//! The venue till: a venue takes credits with a spend code or a card and PIN, and settles.

use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::Utc;
use timecredits_domain::{AccountId, Details, EntryKind, Minutes};
use timecredits_ledger::HistoryQuery;

use crate::auth::{Caller, Operation};
use crate::cards::CardNumber;
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
        let (minutes, details) = what_is_taken(&form)?;
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
            minutes,
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

/// What a till form takes and for what: its amount, activity, reference, adults and children
/// (the review and the redemption read the form the same way).
fn what_is_taken(form: &Form) -> Result<(Minutes, Details), ApiError> {
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
    Ok((form.amount()?, details))
}

/// The till's confirmation: what is about to be taken, for the member to see; a card's PIN is
/// typed here, by the member.
#[derive(Template)]
#[template(path = "app/till_confirm.html")]
struct TillConfirm {
    c: Chrome,
    amount: String,
    activity: String,
    adults: u32,
    children: u32,
    /// The form's fields, carried to the redemption unchanged (never a PIN).
    fields: Vec<(String, String)>,
    /// The card's number, grouped, when the consent is a card (then the PIN is asked for).
    card: Option<String>,
    code: Option<String>,
}

/// `POST /app/till/review`: checks the till's form and shows what will be taken, to confirm
/// (nothing is taken yet; a mistake goes back to the till with the field marked).
pub async fn till_review(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, _, venue) = partner_caller(&v, &state, Scope::Spend)?;
    let reviewed = (|| {
        caller.permit(Operation::Redeem)?;
        let (minutes, details) = what_is_taken(&form)?;
        let card = form
            .get("card_number")
            .map(|n| {
                CardNumber::parse(n)
                    .map(|n| n.grouped())
                    .map_err(|e| ApiError::InvalidRequest(format!("card_number: {e}")))
            })
            .transpose()?;
        // A card, when one is given, is the consent; a code beside it is not used.
        let code = match card {
            Some(_) => None,
            None => form.get("code").map(str::to_uppercase),
        };
        if card.is_none() && code.is_none() {
            return Err(ApiError::InvalidRequest(
                "code: type the member's spend code, or their card number".into(),
            ));
        }
        Ok((minutes, details, card, code))
    })();
    let (minutes, details, card, code) = match reviewed {
        Ok(reviewed) => reviewed,
        Err(e) => {
            return Ok(till_page(
                &v,
                &state,
                &caller,
                venue,
                Said::refused(&v.t, &e),
            ))
        }
    };
    // Everything the till's form sent goes on to the redemption as it was, but its CSRF token
    // (the confirmation carries its own) and a PIN (typed on the confirmation, never carried).
    let fields = form.fields_except(&["csrf", "pin"]);
    Ok(render(&TillConfirm {
        c: Chrome::new(&v, Some(&caller), "/app/till", "till-confirm-title"),
        amount: format_minutes(minutes.get()),
        activity: details
            .activity
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        adults: details.adults.unwrap_or(0),
        children: details.children.unwrap_or(0),
        fields,
        card,
        code,
    }))
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
