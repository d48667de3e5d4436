//! The pages' handlers and their templates: each turns a form into domain values, calls the
//! service layer and renders the outcome; none holds a rule of its own. One module per page
//! (sign-in, desk, till, wallet, office); this one holds what they share: the chrome around
//! every page, refusals, history rows and the receipt download.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use timecredits_domain::{AccountId, Entry, EntryBody, EntryKind};
use uuid::Uuid;

use crate::auth::Caller;
use crate::cards::{CardNumber, Pin};
use crate::pages::i18n::Text;
use crate::pages::session::Person;
use crate::pages::{problem_message, render_with, see_other, Form, Visitor};
use crate::problem::ApiError;
use crate::registry::{Principal, Scope};
use crate::service;
use crate::AppState;

mod desk;
mod office;
mod reports;
mod sign_in;
mod till;
mod wallet;

pub use desk::{
    desk, desk_card, desk_card_act, desk_card_svg, desk_credential_act, desk_earn, desk_register,
    desk_reverse, desk_sheet,
};
pub use office::{
    office, office_allocate, office_export, office_login, office_partner, office_revoke,
    office_settle,
};
pub use reports::report_csv;
pub use sign_in::{home, member_sign_in, sign_in, sign_out, sign_out_everywhere};
pub use till::{till, till_redeem, till_review, till_settle};
pub use wallet::{wallet, wallet_gift, wallet_spend_code};

/// An amount of minutes as people read hours: `2:30`.
fn format_minutes(minutes: u64) -> String {
    format!("{}:{:02}", minutes / 60, minutes % 60)
}

/// A link in the navigation.
pub struct NavLink {
    href: &'static str,
    label: String,
    current: bool,
}

/// What every page shows around its content.
pub struct Chrome {
    t: Text,
    title: String,
    nav: Vec<NavLink>,
    csrf: String,
    signed_in: Option<String>,
    notice: Option<String>,
    errors: Vec<PageError>,
    here: String,
    languages: Vec<(&'static str, String)>,
}

/// A reason a form was refused, with the form field it is about when there is one: the page
/// shows it beside that field (which it marks invalid) and links to it from the summary.
pub struct PageError {
    message: String,
    field: Option<String>,
}

/// The form field a refusal is about: the service words a bad field's refusal as
/// `invalid_request` with a detail starting `field: `.
fn field_of(error: &ApiError) -> Option<String> {
    let ApiError::InvalidRequest(detail) = error else {
        return None;
    };
    let (field, _) = detail.split_once(": ")?;
    let is_name = !field.is_empty() && field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    is_name.then(|| field.to_owned())
}

/// What a page says about the form just sent.
enum Said {
    /// Nothing: the page as asked for.
    Nothing,
    /// It went through.
    Notice(String),
    /// It was refused, for each of these reasons (the page answers 422).
    Refused(Vec<PageError>),
}

impl Said {
    /// What `outcome` says: `notice` of its value, or the refusal in the visitor's words.
    fn of<T>(t: &Text, outcome: Result<T, ApiError>, notice: impl FnOnce(T) -> String) -> Said {
        match outcome {
            Ok(value) => Said::Notice(notice(value)),
            Err(e) => Said::refused(t, &e),
        }
    }

    /// Refused for `error`, shown by its field if it names one of the form's.
    fn refused(t: &Text, error: &ApiError) -> Said {
        Said::Refused(vec![PageError {
            message: problem_message(t, error),
            field: field_of(error),
        }])
    }

    /// Refused with `message`, about no one field.
    fn error(message: String) -> Said {
        Said::Refused(vec![PageError {
            message,
            field: None,
        }])
    }

    /// Refused with `message`, about the form's field `field`.
    fn error_at(field: &str, message: String) -> Said {
        Said::Refused(vec![PageError {
            message,
            field: Some(field.to_owned()),
        }])
    }

    fn status(&self) -> StatusCode {
        match self {
            Said::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Said::Nothing | Said::Notice(_) => StatusCode::OK,
        }
    }
}

impl Chrome {
    fn say(self, said: Said) -> Chrome {
        match said {
            Said::Nothing => self,
            Said::Notice(message) => self.notice(message),
            Said::Refused(errors) => Chrome { errors, ..self },
        }
    }

    fn new(v: &Visitor, caller: Option<&Caller>, here: &str, title: &str) -> Chrome {
        let t = v.t;
        let nav = caller.map_or_else(Vec::new, |c| {
            homes(c)
                .into_iter()
                .map(|(href, id)| NavLink {
                    href,
                    label: t.get(id),
                    current: href == here,
                })
                .collect()
        });
        let signed_in = v.session.as_ref().map(|(_, s)| match &s.person {
            Person::Staff { username, .. } => username.clone(),
            Person::Member { account, .. } => account.to_string(),
        });
        Chrome {
            t,
            title: t.get(title),
            nav,
            csrf: v.csrf().to_owned(),
            signed_in: caller.and(signed_in),
            notice: None,
            errors: Vec::new(),
            here: here.to_owned(),
            languages: super::i18n::Lang::ALL
                .into_iter()
                .map(|l| (l.tag(), t.get(&format!("lang-{}", l.tag()))))
                .collect(),
        }
    }

    fn notice(mut self, message: String) -> Chrome {
        self.notice = Some(message);
        self
    }

    fn error(mut self, message: String) -> Chrome {
        self.errors.push(PageError {
            message,
            field: None,
        });
        self
    }

    /// The refusal about form field `name`, if there is one (the templates' `field` macros).
    fn field_error(&self, name: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field.as_deref() == Some(name))
            .map(|e| e.message.as_str())
    }
}

/// The pages a caller may use, as (path, message id), the first being their home.
fn homes(caller: &Caller) -> Vec<(&'static str, &'static str)> {
    let mut homes = Vec::new();
    match caller {
        Caller::Member(_) => homes.push(("/app/wallet", "nav-wallet")),
        Caller::ApiKey { api_key, .. } => {
            if caller.partner_account(Scope::Earn).is_ok() {
                homes.push(("/app/desk", "nav-desk"));
            }
            if caller.partner_account(Scope::Spend).is_ok() {
                homes.push(("/app/till", "nav-till"));
            }
            if matches!(
                api_key.principal,
                Principal::Administrator | Principal::Auditor { .. }
            ) {
                homes.push(("/app/office", "nav-office"));
            }
        }
    }
    homes
}

/// A new idempotency key for a form.
fn form_key() -> String {
    format!("app-{}", Uuid::now_v7())
}

/// A page shown instead of the one asked for (sign in first, not allowed, a forged form): an
/// error whose response is that page.
type Refusal = actix_web::Error;

/// The outcome of a page: rendered, or a refusal to show.
type Page = Result<HttpResponse, Refusal>;

/// Shows `page` instead of the one asked for.
fn refuse(page: HttpResponse) -> Refusal {
    actix_web::error::InternalError::from_response("refused", page).into()
}

/// The caller of a page that needs one; else back to sign-in.
fn signed_in(v: &Visitor, state: &AppState) -> Result<Caller, Refusal> {
    v.caller(state)
        .ok_or_else(|| refuse(see_other("/app/?session=ended")))
}

/// A 403 page: signed in, but not as someone who may use this page.
fn not_allowed(v: &Visitor, caller: &Caller) -> Refusal {
    let c = Chrome::new(v, Some(caller), "", "not-allowed");
    refuse(render_with(StatusCode::FORBIDDEN, &MessagePage { c }))
}

/// A page saying why `error` stopped what was asked, with its status (a download that could
/// not be made): on the page `here`, titled by message `title`.
fn failed(v: &Visitor, caller: &Caller, (here, title): (&str, &str), error: &ApiError) -> Refusal {
    let c = Chrome::new(v, Some(caller), here, title).error(problem_message(&v.t, error));
    refuse(render_with(error.status(), &MessagePage { c }))
}

/// Checks the form's CSRF token against the session's.
fn checked(v: &Visitor, form: &Form) -> Result<(), Refusal> {
    if form.carries(v.csrf()) {
        Ok(())
    } else {
        Err(csrf_refused(v))
    }
}

fn csrf_refused(v: &Visitor) -> Refusal {
    let c = Chrome::new(v, None, "", "csrf-refused");
    refuse(render_with(StatusCode::FORBIDDEN, &MessagePage { c }))
}

/// A page with a title and the chrome's notice or errors only.
#[derive(Template)]
#[template(path = "app/message.html")]
struct MessagePage {
    c: Chrome,
}

/// `GET /app/*` for no page.
pub async fn not_found(v: Visitor) -> HttpResponse {
    let c = Chrome::new(&v, None, "", "page-not-found");
    render_with(StatusCode::NOT_FOUND, &MessagePage { c })
}

/// An entry as a history row shows it.
pub struct EntryRow {
    id: Uuid,
    when: String,
    what: String,
    with: String,
    amount: String,
}

fn kind_message(kind: EntryKind) -> String {
    format!("kind-{}", kind.as_str())
}

fn entry_rows(
    t: &Text,
    entries: &[Entry],
    partners: &std::collections::BTreeMap<Uuid, crate::registry::Partner>,
    own: AccountId,
) -> Vec<EntryRow> {
    entries
        .iter()
        .map(|e| {
            let (amount, with) = match &e.body {
                EntryBody::Move(m) => {
                    let sign = if m.debit == own { "−" } else { "+" };
                    let other = if m.debit == own { m.credit } else { m.debit };
                    let with = partners
                        .get(&other.0)
                        .map_or_else(String::new, |p| p.name.clone());
                    (format!("{sign}{}", format_minutes(m.minutes.get())), with)
                }
                _ => (String::new(), String::new()),
            };
            let activity = match &e.body {
                EntryBody::Move(m) => m
                    .details
                    .activity
                    .as_ref()
                    .map(|a| format!(" · {}", a.as_str()))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            EntryRow {
                id: e.id,
                when: e.recorded.format("%Y-%m-%d %H:%M").to_string(),
                what: format!("{}{activity}", t.get(&kind_message(e.body.kind()))),
                with,
                amount,
            }
        })
        .collect()
}

/// The card number and PIN of a form, if it gives a card number (a typo in the number is
/// caught by its check character and counts as no guess).
fn card_and_pin(form: &Form) -> Result<Option<(CardNumber, Pin)>, ApiError> {
    let Some(number) = form.get("card_number") else {
        return Ok(None);
    };
    let typo =
        |field: &str, e: &dyn std::fmt::Display| ApiError::InvalidRequest(format!("{field}: {e}"));
    let number = CardNumber::parse(number).map_err(|e| typo("card_number", &e))?;
    let pin = Pin::parse(form.get("pin").unwrap_or("")).map_err(|e| typo("pin", &e))?;
    Ok(Some((number, pin)))
}

/// `GET /app/receipts/{id}`: the receipt of an entry the signed-in person may see, to keep or
/// to check with the verifier page.
pub async fn receipt(v: Visitor, state: web::Data<AppState>, id: web::Path<Uuid>) -> Page {
    let caller = signed_in(&v, &state)?;
    let id = id.into_inner();
    match service::accounts::receipt(&state, &caller, id) {
        Ok(text) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"receipt-{id}.txt\""),
            ))
            .body(text)),
        Err(e) => {
            let c = Chrome::new(&v, Some(&caller), "", "receipt").error(problem_message(&v.t, &e));
            Err(refuse(render_with(
                StatusCode::NOT_FOUND,
                &MessagePage { c },
            )))
        }
    }
}

/// The signed-in partner's account for `scope` (the desk's budget, the till's venue account):
/// (caller, partner, account); a caller without it is not allowed.
fn partner_caller(
    v: &Visitor,
    state: &AppState,
    scope: Scope,
) -> Result<(Caller, Uuid, AccountId), Refusal> {
    let caller = signed_in(v, state)?;
    match caller.partner_account(scope) {
        Ok((partner, account)) => Ok((caller, partner, account)),
        Err(_) => Err(not_allowed(v, &caller)),
    }
}

/// A secret shown once: a member's credential (with its QR code, to print and hand over; the
/// member's phone reads it instead of typing it) or a staff login's password.
#[derive(Template)]
#[template(path = "app/secret.html")]
struct SecretPage {
    c: Chrome,
    label: String,
    secret: String,
    qr: Option<String>,
    back: &'static str,
}
