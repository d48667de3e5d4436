//! The partner desk: an earn partner records hours, registers members and sees its budget.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use chrono::{NaiveDate, Utc};
use timecredits_domain::{
    AccountId, Details, EntryBody, EntryKind, IdempotencyKey, Intent, MovementKind, Transfer,
};
use timecredits_ledger::HistoryQuery;
use uuid::Uuid;

use crate::auth::{Caller, Operation};
use crate::cards::Pin;
use crate::pages::{problem_message, render, render_with, Form, Visitor};
use crate::problem::ApiError;
use crate::registry::Scope;
use crate::service;
use crate::AppState;

use super::{
    checked, entry_rows, form_key, format_minutes, partner_caller, refuse, Chrome, MessagePage,
    Page, PageError, Refusal, Said, SecretPage,
};

/// Members listed on one desk page; the next are a link away.
const MEMBERS_PER_PAGE: usize = 50;

/// The budget's latest earns the desk lists, each reversible while the window is open.
const RECENT_EARNS: usize = 10;

/// A member in the desk's list.
pub struct MemberRow {
    id: Uuid,
    reference: String,
    balance: String,
    last_activity: String,
}

/// One of the budget's latest earns, with a reverse button while the partner may reverse it.
pub struct RecentRow {
    id: Uuid,
    when: String,
    member: Uuid,
    what: String,
    amount: String,
    reversible: bool,
    reversed: bool,
}

#[derive(Template)]
#[template(path = "app/desk.html")]
struct DeskPage {
    c: Chrome,
    budget: String,
    members: Vec<MemberRow>,
    next: Option<Uuid>,
    recent: Vec<RecentRow>,
    idempotency_key: String,
    today: String,
}

/// Which page of the member list: the members after `after` (the first page without it; a
/// value that is not a member number is the first page too).
fn page_after(query: &HashMap<String, String>) -> Option<Uuid> {
    query.get("after").and_then(|a| a.parse().ok())
}

fn desk_page(
    v: &Visitor,
    state: &AppState,
    caller: &Caller,
    (partner, budget): (Uuid, AccountId),
    after: Option<Uuid>,
    said: Said,
) -> HttpResponse {
    let status = said.status();
    let budget_left = state
        .ledger
        .account(budget)
        .ok()
        .flatten()
        .map_or(0, |a| a.balance);
    let (listed, more) = service::members::registered_by(state, partner, after, MEMBERS_PER_PAGE)
        .unwrap_or_default();
    let next = if more {
        listed.last().map(|l| l.member.account)
    } else {
        None
    };
    let members = listed
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
        next,
        recent: recent_earns(v, state, caller, budget),
        idempotency_key: form_key(),
        today: Utc::now().date_naive().to_string(),
    };
    render_with(status, &page)
}

/// The budget's latest earns, newest first, each marked reversible if `caller` may still
/// reverse it (the rule is `Caller::may_reverse`, the API's) and it is not reversed already.
fn recent_earns(
    v: &Visitor,
    state: &AppState,
    caller: &Caller,
    budget: AccountId,
) -> Vec<RecentRow> {
    let query = HistoryQuery {
        before: None,
        limit: RECENT_EARNS,
        kinds: vec![EntryKind::Earn],
        from: None,
        to: None,
    };
    let Ok(history) = service::accounts::history(state, caller, budget.0, &query) else {
        return Vec::new();
    };
    let now = Utc::now();
    let rows = entry_rows(&v.t, &history.entries, &history.partners, budget);
    history
        .entries
        .iter()
        .zip(rows)
        .filter_map(|(entry, row)| {
            let EntryBody::Move(m) = &entry.body else {
                return None;
            };
            let reversed = state.ledger.reversed_by(entry.seq).ok().flatten().is_some();
            let reversible = !reversed
                && caller
                    .may_reverse(entry, state.reversal_window, now)
                    .is_ok();
            Some(RecentRow {
                id: entry.id,
                when: row.when,
                member: m.credit.0,
                what: row.what,
                amount: format_minutes(m.minutes.get()),
                reversible,
                reversed,
            })
        })
        .collect()
}

/// The desk's first page again, saying what became of the form just sent.
fn after_form(
    v: &Visitor,
    state: &AppState,
    caller: &Caller,
    desk: (Uuid, AccountId),
    said: Said,
) -> HttpResponse {
    desk_page(v, state, caller, desk, None, said)
}

/// `GET /app/desk[?after=MEMBER]`.
pub async fn desk(
    v: Visitor,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Page {
    let (caller, partner, budget) = partner_caller(&v, &state, Scope::Earn)?;
    let after = page_after(&query);
    Ok(desk_page(
        &v,
        &state,
        &caller,
        (partner, budget),
        after,
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
                    ApiError::InvalidRequest(format!("member_id: {m:?} is not a member number"))
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
        Err(None) => Said::error_at("member_id", v.t.get("desk-no-member")),
        Err(Some(e)) => Said::refused(&v.t, &e),
    };
    Ok(after_form(&v, &state, &caller, (partner, budget), said))
}

/// `POST /app/desk/sheet`: a spreadsheet of hours (CSV with the API's earn sheet columns,
/// uploaded as a file), recorded all or nothing; every mistake is listed with its line.
pub async fn desk_sheet(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, partner, budget) = partner_caller(&v, &state, Scope::Earn)?;
    let outcome = async {
        caller.permit(Operation::Earn)?;
        let sheet = form.get("sheet").unwrap_or("");
        let intents = service::sheets::earn_intents(sheet.as_bytes(), budget)?;
        if intents.is_empty() {
            return Err(ApiError::InvalidRequest(
                "sheet: choose a CSV file with at least one row of hours".into(),
            ));
        }
        let key = form.idempotency_key()?;
        let committed = service::submit(&state, &caller, &key, intents).await?;
        Ok(committed.entries.len())
    }
    .await;
    let said = match outcome {
        Ok(count) => Said::Notice(v.t.with("desk-recorded", "count", &count)),
        Err(ApiError::InvalidRows(rows)) => Said::Refused(
            rows.iter()
                .map(|row| {
                    let detail = format!(
                        "{}{}",
                        row.field
                            .as_deref()
                            .map_or(String::new(), |f| format!("{f}: ")),
                        row.detail
                    );
                    // A row's mistakes are the sheet's: shown by the file field.
                    PageError {
                        message: v.t.with_args(
                            "desk-sheet-line",
                            &[("line", &row.line), ("detail", &detail)],
                        ),
                        field: Some("sheet".into()),
                    }
                })
                .collect(),
        ),
        Err(e) => Said::refused(&v.t, &e),
    };
    Ok(after_form(&v, &state, &caller, (partner, budget), said))
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
                qr: registered
                    .credential
                    .as_deref()
                    .map(|credential| credential_qr(&v, credential)),
                secret: registered.credential.unwrap_or_default(),
                back: "/app/desk",
            })
        }
        // The register form's one field shares its name with the record form's: no field named.
        Err(e) => after_form(
            &v,
            &state,
            &caller,
            (partner, budget),
            Said::error(problem_message(&v.t, &e)),
        ),
    })
}

/// A member's credential as a QR code (a data URI) holding the sign-in page's link with the
/// credential in the fragment (which the browser never sends: the page's script puts it in the
/// sign-in field).
fn credential_qr(v: &Visitor, credential: &str) -> String {
    crate::qr::data_uri(&format!("{}/app/#credential={credential}", v.origin), 240)
}

/// `POST /app/desk/reverse`: reverses one of the budget's earns, within the window.
pub async fn desk_reverse(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, partner, budget) = partner_caller(&v, &state, Scope::Earn)?;
    let outcome = async {
        let entry = form
            .get("entry")
            .and_then(|e| e.parse::<Uuid>().ok())
            .ok_or_else(|| ApiError::InvalidRequest("entry: not an entry number".into()))?;
        let key = form.idempotency_key()?;
        service::reversals::reverse(&state, &caller, &key, entry, None).await
    }
    .await;
    let said = Said::of(&v.t, outcome, |_| v.t.get("desk-reversed"));
    Ok(after_form(&v, &state, &caller, (partner, budget), said))
}

/// A member's card as the card page shows it.
pub struct CardView {
    number: String,
    issued: String,
    state: String,
    blocked: bool,
}

#[derive(Template)]
#[template(path = "app/desk_card.html")]
struct CardPage {
    c: Chrome,
    member: Uuid,
    card: Option<CardView>,
    pin: Option<String>,
    /// When the member's current credential was issued, and revoked if it was.
    credential_issued: String,
    credential_revoked: Option<String>,
    idempotency_key: String,
}

/// The card page of member `id`: their card, if any, to print, and the forms to issue a new
/// one or block it; `pin` is a PIN just generated, shown this once; their sign-in credential,
/// with the forms to reissue or revoke it. A member the partner did not register is not found,
/// as in the API.
fn card_page(
    v: &Visitor,
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    pin: Option<Pin>,
    said: Said,
) -> Page {
    let t = &v.t;
    let card = service::cards::current(state, caller, id).map_err(|e| {
        let c = Chrome::new(v, Some(caller), "/app/desk", "desk-card-title")
            .error(problem_message(t, &e));
        refuse(render_with(StatusCode::NOT_FOUND, &MessagePage { c }))
    })?;
    let card = card.map(|(number, status)| {
        let state = if status.blocked.is_some() {
            t.get("desk-card-blocked")
        } else if status.locked.is_some() {
            t.get("desk-card-locked")
        } else {
            t.get("desk-card-in-use")
        };
        CardView {
            number: number.grouped(),
            issued: status.issued.format("%Y-%m-%d").to_string(),
            state,
            blocked: status.blocked.is_some(),
        }
    });
    let credential = state.registry.credential_status(id);
    let day = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d").to_string();
    Ok(render_with(
        said.status(),
        &CardPage {
            c: Chrome::new(v, Some(caller), "/app/desk", "desk-card-title").say(said),
            member: id,
            card,
            pin: pin.map(|p| p.as_str().to_owned()),
            credential_issued: credential
                .as_ref()
                .map(|s| day(s.issued))
                .unwrap_or_default(),
            credential_revoked: credential.and_then(|s| s.revoked).map(day),
            idempotency_key: form_key(),
        },
    ))
}

/// `GET /app/desk/members/{id}/card`.
pub async fn desk_card(v: Visitor, state: web::Data<AppState>, id: web::Path<Uuid>) -> Page {
    let (caller, _, _) = partner_caller(&v, &state, Scope::Earn)?;
    card_page(&v, &state, &caller, id.into_inner(), None, Said::Nothing)
}

/// `POST /app/desk/members/{id}/card`: with `act=issue`, a new card with a generated PIN (shown
/// once), any old card refused from now on; with `act=block`, the card refused from now on.
pub async fn desk_card_act(
    v: Visitor,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    form: Form,
) -> Page {
    let id = id.into_inner();
    let (caller, outcome) = member_form(
        &v,
        &state,
        (id, "card"),
        &form,
        Operation::ManageCard,
        |caller, key, print| match form.get("act") {
            Some("issue") => service::cards::issue(&state, caller, key, print, id, None)
                .map(|issued| (issued.generated_pin, "desk-card-issued-notice")),
            Some("block") => service::cards::block(&state, caller, key, print, id)
                .map(|_| (None, "desk-card-blocked-notice")),
            _ => Err(ApiError::InvalidRequest("act: issue or block".into())),
        },
    )?;
    match outcome {
        Ok((pin, notice)) => {
            let said = Said::Notice(v.t.get(notice));
            card_page(&v, &state, &caller, id, pin, said)
        }
        Err(e) => card_page(&v, &state, &caller, id, None, Said::refused(&v.t, &e)),
    }
}

/// What a form of member `id`'s card page starts with: the CSRF token checked and the desk's
/// caller found (else a refusal); then `act` with the form's idempotency key and fingerprint
/// (naming `what` of the member), if the caller may do `operation`: its outcome, shown on the
/// card page.
fn member_form<T>(
    v: &Visitor,
    state: &AppState,
    (id, what): (Uuid, &str),
    form: &Form,
    operation: Operation,
    act: impl FnOnce(&Caller, &IdempotencyKey, String) -> Result<T, ApiError>,
) -> Result<(Caller, Result<T, ApiError>), Refusal> {
    checked(v, form)?;
    let (caller, _, _) = partner_caller(v, state, Scope::Earn)?;
    let outcome = caller.permit(operation).and_then(|()| {
        let key = form.idempotency_key()?;
        act(
            &caller,
            &key,
            form.fingerprint(&format!("app/desk/members/{id}/{what}")),
        )
    });
    Ok((caller, outcome))
}

/// `POST /app/desk/members/{id}/credential`: with `act=reissue`, a new sign-in credential
/// (shown once, with its QR code), the old one and the spend codes made before refused from
/// now on; with `act=revoke`, the credential refused from now on (a lost phone or paper).
/// The API's operations, under the form's idempotency key.
pub async fn desk_credential_act(
    v: Visitor,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    form: Form,
) -> Page {
    let id = id.into_inner();
    let (caller, outcome) = member_form(
        &v,
        &state,
        (id, "credential"),
        &form,
        Operation::ManageCredential,
        |caller, key, print| match form.get("act") {
            // A repeat after the replay window does not show the credential again.
            Some("reissue") => service::members::reissue_credential(&state, caller, key, print, id)
                .map(|reissued| (reissued.credential, "desk-credential-not-shown")),
            Some("revoke") => service::members::revoke_credential(&state, caller, key, print, id)
                .map(|_| (None, "desk-credential-revoked-notice")),
            _ => Err(ApiError::InvalidRequest("act: reissue or revoke".into())),
        },
    )?;
    let t = &v.t;
    match outcome {
        Ok((Some(credential), _)) => Ok(render(&SecretPage {
            c: Chrome::new(&v, Some(&caller), "/app/desk", "desk-card-title")
                .notice(t.get("desk-credential-reissued-notice")),
            label: format!("{} · {id}", t.get("member-id")),
            qr: Some(credential_qr(&v, &credential)),
            secret: credential,
            back: "/app/desk",
        })),
        Ok((None, notice)) => card_page(&v, &state, &caller, id, None, Said::Notice(t.get(notice))),
        Err(e) => card_page(&v, &state, &caller, id, None, Said::refused(t, &e)),
    }
}

/// `GET /app/desk/members/{id}/card.svg`: the printable card (never its PIN).
pub async fn desk_card_svg(v: Visitor, state: web::Data<AppState>, id: web::Path<Uuid>) -> Page {
    let (caller, _, _) = partner_caller(&v, &state, Scope::Earn)?;
    let id = id.into_inner();
    match service::cards::printable(&state, &caller, id) {
        Ok(svg) => Ok(HttpResponse::Ok()
            .content_type("image/svg+xml; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("inline; filename=\"card-{id}.svg\""),
            ))
            .body(svg)),
        Err(_) => Err(refuse(HttpResponse::NotFound().finish())),
    }
}
