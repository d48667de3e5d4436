//! The pages' handlers and their templates: each turns a form into domain values, calls the
//! service layer and renders the outcome; none holds a rule of its own.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{Datelike, NaiveDate, Utc};
use timecredits_domain::report::{write_csv, DateBasis, Figure, Period, ReportSpec, Section, Zone};
use timecredits_domain::{
    AccountId, Details, Entry, EntryBody, EntryKind, Intent, MovementKind, Transfer,
};
use timecredits_ledger::HistoryQuery;
use uuid::Uuid;

use super::i18n::Text;
use super::session::{self, Person, SESSION_COOKIE, SIGN_IN_COOKIE};
use super::{problem_message, render, render_with, see_other, Form, Pages, Visitor};
use crate::auth::{Caller, Operation};
use crate::cards::{CardNumber, Pin};
use crate::problem::ApiError;
use crate::registry::staff::Username;
use crate::registry::{Principal, Role, Scope};
use crate::service;
use crate::service::api_keys::KeyHolder;
use crate::service::redemptions::{Consent, Redemption};
use crate::service::settlements::Settled;
use crate::spend_codes::Attempt;
use crate::AppState;

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
    errors: Vec<String>,
    here: String,
    languages: Vec<(&'static str, String)>,
}

/// What a page says about the form just sent.
enum Said {
    /// Nothing: the page as asked for.
    Nothing,
    /// It went through.
    Notice(String),
    /// It was refused (the page answers 422).
    Error(String),
}

impl Said {
    /// What `outcome` says: `notice` of its value, or the refusal in the visitor's words.
    fn of<T>(t: &Text, outcome: Result<T, ApiError>, notice: impl FnOnce(T) -> String) -> Said {
        match outcome {
            Ok(value) => Said::Notice(notice(value)),
            Err(e) => Said::Error(problem_message(t, &e)),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Said::Error(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Said::Nothing | Said::Notice(_) => StatusCode::OK,
        }
    }
}

impl Chrome {
    fn say(self, said: Said) -> Chrome {
        match said {
            Said::Nothing => self,
            Said::Notice(message) => self.notice(message),
            Said::Error(message) => self.error(message),
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
        self.errors.push(message);
        self
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

// ---------------------------------------------------------------------------------------------
// Signing in and out

#[derive(Template)]
#[template(path = "app/sign_in.html")]
struct SignInPage {
    c: Chrome,
    sign_in_csrf: String,
}

/// `GET /app/`: the signed-in person's home, or the sign-in forms.
pub async fn home(
    v: Visitor,
    state: web::Data<AppState>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    if let Some(caller) = v.caller(&state) {
        if let Some((home, _)) = homes(&caller).first() {
            return see_other(home);
        }
    }
    let mut c = Chrome::new(&v, None, "/app/", "sign-in-title");
    if query.contains_key("signed-out") {
        c = c.notice(v.t.get("signed-out"));
    } else if query.contains_key("session") {
        c = c.notice(v.t.get("session-ended"));
    }
    sign_in_page(&v, c, StatusCode::OK)
}

/// The sign-in forms, with a new CSRF token in their cookie (there is no session yet).
fn sign_in_page(v: &Visitor, c: Chrome, status: StatusCode) -> HttpResponse {
    let token = session::random_token();
    let mut response = render_with(
        status,
        &SignInPage {
            c,
            sign_in_csrf: token.clone(),
        },
    );
    let cookie = Cookie::build(SIGN_IN_COOKIE, token)
        .path("/app")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(v.tls)
        .finish();
    let _ = response.add_cookie(&cookie);
    response
}

/// Answers a sign-in: a new session in its cookie and the person's home, or the forms again.
fn start_session(v: &Visitor, pages: &Pages, person: Person) -> HttpResponse {
    let token = pages.sessions.start(person);
    let mut response = see_other("/app/");
    let cookie = Cookie::build(SESSION_COOKIE, token)
        .path("/app")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(v.tls)
        .finish();
    let _ = response.add_cookie(&cookie);
    let mut gone = Cookie::build(SIGN_IN_COOKIE, "").path("/app").finish();
    gone.make_removal();
    let _ = response.add_cookie(&gone);
    response
}

/// Checks a sign-in form's CSRF token against its cookie.
fn sign_in_checked(req: &HttpRequest, v: &Visitor, form: &Form) -> Result<(), Refusal> {
    let cookie = req.cookie(SIGN_IN_COOKIE);
    let token = cookie.as_ref().map_or("", |c| c.value());
    if form.carries(token) {
        Ok(())
    } else {
        Err(csrf_refused(v))
    }
}

/// Refuses a throttled sign-in with 429 and the wait in minutes.
fn throttled(v: &Visitor, wait: std::time::Duration) -> HttpResponse {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let c = Chrome::new(v, None, "/app/", "sign-in-title").error(v.t.with(
        "sign-in-throttled",
        "minutes",
        &minutes,
    ));
    sign_in_page(v, c, StatusCode::TOO_MANY_REQUESTS)
}

/// `POST /app/sign-in`: a staff login's username and password.
pub async fn sign_in(
    req: HttpRequest,
    v: Visitor,
    state: web::Data<AppState>,
    pages: web::Data<Pages>,
    form: Form,
) -> Page {
    sign_in_checked(&req, &v, &form)?;
    let username = form
        .get("username")
        .and_then(|u| Username::from_input(u).ok());
    let name = username.as_ref().map_or("", Username::as_str).to_owned();
    if let Some(wait) = pages.sign_in.blocked(&name, v.address) {
        return Err(refuse(throttled(&v, wait)));
    }
    let password = form.get("password").unwrap_or("").to_owned();
    let checking = state.clone().into_inner();
    let lookup = name.clone();
    let key = web::block(move || checking.registry.check_staff_password(&lookup, &password))
        .await
        .ok()
        .flatten();
    match key {
        Some(key) => Ok(start_session(
            &v,
            &pages,
            Person::Staff {
                key: key.id,
                username: name,
            },
        )),
        None => {
            pages.sign_in.failed(&name, v.address);
            tracing::info!(target: "timecredits::sign_in", username = %name, "a staff sign-in failed");
            let c =
                Chrome::new(&v, None, "/app/", "sign-in-title").error(v.t.get("sign-in-failed"));
            Err(refuse(sign_in_page(&v, c, StatusCode::UNAUTHORIZED)))
        }
    }
}

/// `POST /app/member-sign-in`: a member's credential.
pub async fn member_sign_in(
    req: HttpRequest,
    v: Visitor,
    state: web::Data<AppState>,
    pages: web::Data<Pages>,
    form: Form,
) -> Page {
    sign_in_checked(&req, &v, &form)?;
    if form.get("card_number").is_some() {
        return Ok(card_sign_in(&v, &state, &pages, &form));
    }
    let credential = form.get("credential").unwrap_or("");
    // Credentials are 256-bit: the throttle that matters is the address's. Each credential
    // tried counts under its own hash, so one person's typo never locks out another.
    let name = format!(
        "credential:{}",
        crate::registry::credential_hash(credential)
    );
    if let Some(wait) = pages.sign_in.blocked(&name, v.address) {
        return Err(refuse(throttled(&v, wait)));
    }
    let member = state.registry.member_by_credential(credential);
    let status = member
        .as_ref()
        .and_then(|m| state.registry.credential_status(m.account));
    match (member, status) {
        (Some(member), Some(status)) if status.revoked.is_none() => Ok(start_session(
            &v,
            &pages,
            Person::Member {
                account: member.account,
                generation: status.generation,
            },
        )),
        _ => {
            pages.sign_in.failed(&name, v.address);
            let c = Chrome::new(&v, None, "/app/", "sign-in-title")
                .error(v.t.get("member-sign-in-failed"));
            Err(refuse(sign_in_page(&v, c, StatusCode::UNAUTHORIZED)))
        }
    }
}

/// Signs a member in with their card number and PIN: the card's own throttle and lockout (the
/// same as at a venue's till) apply.
fn card_sign_in(v: &Visitor, state: &AppState, pages: &Pages, form: &Form) -> HttpResponse {
    let who = Attempt {
        api_key: Uuid::nil(),
        partner: Uuid::nil(),
        address: v.address.map(crate::spend_codes::source),
    };
    let member = card_and_pin(form).and_then(|card| {
        let (number, pin) = card.ok_or_else(|| ApiError::InvalidRequest("card_number".into()))?;
        service::cards::sign_in(state, &who, &number, &pin)
    });
    let generation = member
        .as_ref()
        .ok()
        .and_then(|m| state.registry.credential_status(m.account))
        .map(|s| s.generation);
    match (member, generation) {
        (Ok(member), Some(generation)) => start_session(
            v,
            pages,
            Person::Member {
                account: member.account,
                generation,
            },
        ),
        (outcome, _) => {
            let message = match outcome {
                Err(e) => problem_message(&v.t, &e),
                Ok(_) => v.t.get("member-sign-in-failed"),
            };
            let c = Chrome::new(v, None, "/app/", "sign-in-title").error(message);
            sign_in_page(v, c, StatusCode::UNAUTHORIZED)
        }
    }
}

/// Ends the request's session (or every session of its person) and clears its cookie.
fn end_session(v: &Visitor, pages: &Pages, form: &Form, everywhere: bool) -> Page {
    checked(v, form)?;
    if let Some(session) = v.session_ref() {
        if everywhere {
            pages.sessions.end_all(session.person);
        } else {
            pages.sessions.end(session.token);
        }
    }
    let mut response = see_other("/app/?signed-out");
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/app").finish();
    gone.make_removal();
    let _ = response.add_cookie(&gone);
    Ok(response)
}

/// `POST /app/sign-out`.
pub async fn sign_out(v: Visitor, pages: web::Data<Pages>, form: Form) -> Page {
    end_session(&v, &pages, &form, false)
}

/// `POST /app/sign-out-everywhere`: ends every session of the signed-in person.
pub async fn sign_out_everywhere(v: Visitor, pages: web::Data<Pages>, form: Form) -> Page {
    end_session(&v, &pages, &form, true)
}

// ---------------------------------------------------------------------------------------------
// Shared views of entries

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

// ---------------------------------------------------------------------------------------------
// The partner desk

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

#[derive(Template)]
#[template(path = "app/secret.html")]
struct SecretPage {
    c: Chrome,
    label: String,
    secret: String,
    back: &'static str,
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

/// `GET /app/reports/impact.csv`: this year's impact report, the rows the caller may read.
pub async fn report_csv(v: Visitor, state: web::Data<AppState>) -> Page {
    let caller = signed_in(&v, &state)?;
    let partner = caller
        .report_partner(None)
        .map_err(|_| not_allowed(&v, &caller))?;
    let spec = this_year(partner);
    let state = state.into_inner();
    let (report, size) = web::block(move || service::reports::impact_report(&state, spec))
        .await
        .map_err(|_| not_allowed(&v, &caller))?
        .map_err(|_| not_allowed(&v, &caller))?;
    let mut body = Vec::new();
    write_csv(&report, &mut body).map_err(|_| not_allowed(&v, &caller))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"impact-report-{size}.csv\""),
        ))
        .body(body))
}

/// This year's report, by month, of `partner`'s rows (all with `None`).
fn this_year(partner: Option<Uuid>) -> ReportSpec {
    let year = Utc::now().year();
    ReportSpec {
        period: Period::Month,
        basis: DateBasis::default(),
        zone: Zone::default(),
        from: NaiveDate::from_ymd_opt(year, 1, 1),
        to: None,
        partner,
        activity: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The venue till

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
        Err(e) => till_page(
            &v,
            &state,
            &caller,
            venue,
            Said::Error(problem_message(&v.t, &e)),
        ),
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

// ---------------------------------------------------------------------------------------------
// The member wallet

#[derive(Template)]
#[template(path = "app/wallet.html")]
struct WalletPage {
    c: Chrome,
    member_id: Uuid,
    balance: String,
    history: Vec<EntryRow>,
    earn_at: Vec<String>,
    spend_at: Vec<String>,
    code_key: String,
    gift_key: String,
}

#[derive(Template)]
#[template(path = "app/spend_code.html")]
struct SpendCodePage {
    c: Chrome,
    code: String,
    expires: String,
}

fn wallet_caller(v: &Visitor, state: &AppState) -> Result<(Caller, AccountId), Refusal> {
    let caller = signed_in(v, state)?;
    match &caller {
        Caller::Member(m) => {
            let account = AccountId(m.account);
            Ok((caller, account))
        }
        Caller::ApiKey { .. } => Err(not_allowed(v, &caller)),
    }
}

fn wallet_page(
    v: &Visitor,
    state: &AppState,
    caller: &Caller,
    account: AccountId,
    said: Said,
) -> HttpResponse {
    let status = said.status();
    let query = HistoryQuery {
        before: None,
        limit: 50,
        kinds: vec![],
        from: None,
        to: None,
    };
    let balance =
        service::accounts::visible_account(state, caller, account.0).map_or(0, |a| a.balance);
    let history = service::accounts::history(state, caller, account.0, &query)
        .map(|h| entry_rows(&v.t, &h.entries, &h.partners, account))
        .unwrap_or_default();
    let partners = state.registry.partners();
    let named = |role: Role| -> Vec<String> {
        partners
            .iter()
            .filter(|p| p.roles.contains(&role) && p.suspended.is_none())
            .map(|p| p.name.clone())
            .collect()
    };
    render_with(
        status,
        &WalletPage {
            c: Chrome::new(v, Some(caller), "/app/wallet", "wallet-title").say(said),
            member_id: account.0,
            balance: format_minutes(balance.unsigned_abs()),
            history,
            earn_at: named(Role::Earn),
            spend_at: named(Role::Spend),
            code_key: form_key(),
            gift_key: form_key(),
        },
    )
}

/// `GET /app/wallet`.
pub async fn wallet(v: Visitor, state: web::Data<AppState>) -> Page {
    let (caller, account) = wallet_caller(&v, &state)?;
    Ok(wallet_page(&v, &state, &caller, account, Said::Nothing))
}

/// `POST /app/wallet/spend-code`: a one-time code, shown large.
pub async fn wallet_spend_code(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, account) = wallet_caller(&v, &state)?;
    let outcome = (|| {
        caller.permit(Operation::CreateSpendCode)?;
        let key = form.idempotency_key()?;
        let print = form.fingerprint("app/wallet/spend-code");
        service::spend_codes::issue(&state, &caller, &key, account, print, None)
    })();
    Ok(match outcome {
        Ok((issued, _)) => render(&SpendCodePage {
            c: Chrome::new(&v, Some(&caller), "/app/wallet", "wallet-your-code"),
            expires: v.t.with(
                "wallet-code-expires",
                "time",
                &issued.expires.format("%H:%M UTC"),
            ),
            code: issued.code,
        }),
        Err(e) => wallet_page(
            &v,
            &state,
            &caller,
            account,
            Said::Error(problem_message(&v.t, &e)),
        ),
    })
}

/// `POST /app/wallet/gift`: credits to another member.
pub async fn wallet_gift(v: Visitor, state: web::Data<AppState>, form: Form) -> Page {
    checked(&v, &form)?;
    let (caller, account) = wallet_caller(&v, &state)?;
    let outcome = async {
        caller.permit(Operation::Gift)?;
        let to = form
            .get("to_member_id")
            .and_then(|m| m.parse::<Uuid>().ok())
            .ok_or_else(|| ApiError::InvalidRequest("to_member_id: not a member number".into()))?;
        let intent = Intent::Transfer(Transfer {
            kind: MovementKind::Gift,
            debit: account,
            credit: AccountId(to),
            minutes: form.amount()?,
            effective: None,
            details: Details {
                reference: form.text("reference")?,
                ..Details::default()
            },
        });
        let key = form.idempotency_key()?;
        service::submit(&state, &caller, &key, vec![intent]).await
    }
    .await;
    Ok(wallet_page(
        &v,
        &state,
        &caller,
        account,
        Said::of(&v.t, outcome, |_| v.t.get("wallet-gifted")),
    ))
}

// ---------------------------------------------------------------------------------------------
// The programme office

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
        Err(e) => office_page(&v, &state, &caller, Said::Error(problem_message(&v.t, &e))),
    })
}
