//! Signing in and out: staff logins, members' credentials and cards, and ending sessions.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use uuid::Uuid;

use crate::pages::session::{self, Person, SESSION_COOKIE, SIGN_IN_COOKIE};
use crate::pages::{problem_message, render_with, see_other, Form, Pages, Visitor};
use crate::problem::ApiError;
use crate::registry::staff::Username;
use crate::service;
use crate::spend_codes::Attempt;
use crate::AppState;

use super::{card_and_pin, checked, csrf_refused, homes, refuse, Chrome, Page, Refusal};

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
