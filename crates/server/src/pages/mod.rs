//! The pages under `/app/`: the partner desk, the venue till, the member wallet and the
//! programme office, rendered on the server from templates (`templates/app/`, compiled into
//! the binary by askama), every word from the message catalogues ([`i18n`]). No page needs a
//! script: the one script there is (`app.js`) shows Print buttons and fills the member sign-in
//! field from a scanned credential QR.
//!
//! Pages are handlers like the API's: they find the caller (here from a session, [`session`]),
//! turn a form into the same domain values and call the same [`crate::service`] functions and
//! permission checks, so a rule holds in one place for both. Every form carries the session's
//! CSRF token (checked before anything else) and an idempotency key made when the form was
//! shown, so a form sent twice (a double click, a reload) records once.

pub mod i18n;
pub mod session;
pub mod verifier;
mod views;

use std::collections::HashMap;
use std::net::IpAddr;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use timecredits_domain::{IdempotencyKey, Minutes, ShortText};

use self::i18n::{Lang, Text, LANG_COOKIE};
use self::session::{Person, Session, SessionRef, Sessions, SignInThrottle};
use crate::auth::{caller_with_key, Caller};
use crate::problem::ApiError;
use crate::AppState;

/// The largest form accepted (a group's hours with a thousand members ticked fits).
pub const MAX_FORM_BYTES: usize = 256 * 1024;

/// What the pages keep beside the service's state: sessions and the sign-in throttle.
#[derive(Default)]
pub struct Pages {
    /// The live sessions.
    pub sessions: Sessions,
    /// Failed sign-ins, per name and per address.
    pub sign_in: SignInThrottle,
}

/// The content policy of the pages: their own stylesheet, images (QR codes are inline SVG) and
/// one script (`app.js`), forms posting to this origin only, no framing.
pub const PAGES_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Registers the pages under `/app`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/app")
            .app_data(web::PayloadConfig::new(MAX_FORM_BYTES))
            .route("", web::get().to(views::home))
            .route("/", web::get().to(views::home))
            .route("/static/app.css", web::get().to(stylesheet))
            .route("/static/app.js", web::get().to(script))
            // A resource, so that another method is answered 405.
            .service(web::resource("/verifier.html").get(verifier::page))
            .route("/lang/{tag}", web::get().to(switch_language))
            .route("/sign-in", web::post().to(views::sign_in))
            .route("/member-sign-in", web::post().to(views::member_sign_in))
            .route("/sign-out", web::post().to(views::sign_out))
            .route(
                "/sign-out-everywhere",
                web::post().to(views::sign_out_everywhere),
            )
            .route("/desk", web::get().to(views::desk))
            .route("/desk/earn", web::post().to(views::desk_earn))
            .route("/desk/members", web::post().to(views::desk_register))
            .route("/desk/reverse", web::post().to(views::desk_reverse))
            .service(
                // A sheet may be as large as the API's batch body.
                web::resource("/desk/sheet")
                    .app_data(web::PayloadConfig::new(crate::MAX_BATCH_BODY_BYTES))
                    .route(web::post().to(views::desk_sheet)),
            )
            .route("/desk/members/{id}/card", web::get().to(views::desk_card))
            .route(
                "/desk/members/{id}/card",
                web::post().to(views::desk_card_act),
            )
            .route(
                "/desk/members/{id}/credential",
                web::post().to(views::desk_credential_act),
            )
            .route(
                "/desk/members/{id}/card.svg",
                web::get().to(views::desk_card_svg),
            )
            .route("/till", web::get().to(views::till))
            .route("/till/review", web::post().to(views::till_review))
            .route("/till/redeem", web::post().to(views::till_redeem))
            .route("/till/settle", web::post().to(views::till_settle))
            .route("/wallet", web::get().to(views::wallet))
            .route(
                "/wallet/spend-code",
                web::post().to(views::wallet_spend_code),
            )
            .route("/wallet/gift", web::post().to(views::wallet_gift))
            .route("/receipts/{id}", web::get().to(views::receipt))
            .route("/office", web::get().to(views::office))
            .route("/office/logins", web::post().to(views::office_login))
            .route("/office/partners", web::post().to(views::office_partner))
            .route(
                "/office/allocations",
                web::post().to(views::office_allocate),
            )
            .route("/office/settlements", web::post().to(views::office_settle))
            .route("/office/keys/revoke", web::post().to(views::office_revoke))
            .route("/office/export.ndjson", web::get().to(views::office_export))
            .route("/reports/impact.csv", web::get().to(views::report_csv))
            .default_service(web::to(views::not_found)),
    );
}

/// `GET /app/static/app.css`: the one stylesheet, from the binary.
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("app.css"))
}

/// `GET /app/static/app.js`: the one script, from the binary: Print buttons on receipts and
/// cards, and a scanned credential QR's fragment into the sign-in field. No page needs it.
async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("app.js"))
}

/// `GET /app/lang/{tag}?back=/app/...`: keeps the language chosen in a cookie and goes back to
/// the page it was chosen on (only ever a page under `/app/`: no open redirect).
async fn switch_language(
    req: HttpRequest,
    tag: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let back = query
        .get("back")
        .filter(|b| b.starts_with("/app/") && !b.starts_with("/app//") && !b.contains('\\'))
        .map_or("/app/", String::as_str);
    let mut response = see_other(back);
    if let Some(lang) = Lang::from_tag(&tag) {
        let cookie = Cookie::build(LANG_COOKIE, lang.tag())
            .path("/app")
            .same_site(SameSite::Lax)
            .secure(over_tls(&req))
            .max_age(actix_web::cookie::time::Duration::days(365))
            .finish();
        let _ = response.add_cookie(&cookie);
    }
    response
}

/// A 303 to `to`.
fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// Whether the request came over TLS (directly, or as a proxy in front says).
fn over_tls(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// What a request brings: its language, its session (if it has a live one) and where it comes
/// from.
pub struct Visitor {
    /// The words, in the visitor's language.
    pub t: Text,
    /// The session, with its cookie token.
    pub session: Option<(String, Session)>,
    /// The source address.
    pub address: Option<IpAddr>,
    /// Whether cookies must be `Secure`.
    pub tls: bool,
    /// Where the visitor reached the service, `scheme://host` (behind a proxy, as it forwarded
    /// the request): the start of the links printed for others, such as a credential's QR code.
    pub origin: String,
}

impl actix_web::FromRequest for Visitor {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Visitor, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            req.app_data::<web::Data<Pages>>()
                .map(|pages| Visitor::of(req, pages))
                .ok_or_else(|| {
                    actix_web::error::ErrorInternalServerError("the pages' state is missing")
                }),
        )
    }
}

impl actix_web::FromRequest for Form {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Form, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        // A form with a file (the desk's sheet upload) comes as `multipart/form-data`.
        let boundary = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|t| t.to_str().ok())
            .filter(|t| t.starts_with("multipart/form-data"))
            .map(multer::parse_boundary);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = body.await?;
            match boundary {
                None => Ok(Form::parse(&body)),
                Some(boundary) => {
                    let unreadable = |e: multer::Error| {
                        actix_web::error::ErrorBadRequest(format!(
                            "the form could not be read: {e}"
                        ))
                    };
                    Form::parse_multipart(body, boundary.map_err(unreadable)?)
                        .await
                        .map_err(unreadable)
                }
            }
        })
    }
}

impl Visitor {
    /// Reads the visitor from `req`.
    pub fn of(req: &HttpRequest, pages: &Pages) -> Visitor {
        let lang = Lang::choose(
            req.cookie(LANG_COOKIE).as_ref().map(Cookie::value),
            req.headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        );
        let session = req.cookie(session::SESSION_COOKIE).and_then(|c| {
            let token = c.value().to_owned();
            pages.sessions.find(&token).map(|s| (token, s))
        });
        Visitor {
            t: Text { lang },
            session,
            address: req.peer_addr().map(|a| a.ip()),
            tls: over_tls(req),
            origin: {
                let info = req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            },
        }
    }

    /// The signed-in caller, as the API would see it with the same key or credential: `None`
    /// when no session, or when what it stood for was revoked since.
    pub fn caller(&self, state: &AppState) -> Option<Caller> {
        let (_, session) = self.session.as_ref()?;
        match &session.person {
            Person::Staff { key, .. } => {
                let key = state.registry.api_key(*key)?;
                caller_with_key(state, key).ok()
            }
            Person::Member {
                account,
                generation,
            } => {
                let status = state.registry.credential_status(*account)?;
                if status.generation != *generation || status.revoked.is_some() {
                    return None;
                }
                state.registry.member(*account).map(Caller::Member)
            }
        }
    }

    /// The session's CSRF token, or "" without a session.
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |(_, s)| s.csrf.as_str())
    }

    /// The session's reference, to end it.
    pub fn session_ref(&self) -> Option<SessionRef<'_>> {
        self.session.as_ref().map(|(token, s)| SessionRef {
            token,
            person: &s.person,
        })
    }
}

/// A form's fields, in order (a field may repeat: the members ticked).
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Parses a `multipart/form-data` body: each part's name and its text (a file's content).
    async fn parse_multipart(body: web::Bytes, boundary: String) -> Result<Form, multer::Error> {
        let whole = futures_util::stream::once(async { Ok::<_, std::convert::Infallible>(body) });
        let mut parts = multer::Multipart::new(whole, boundary);
        let mut fields = Vec::new();
        while let Some(part) = parts.next_field().await? {
            let name = part.name().unwrap_or_default().to_owned();
            fields.push((name, part.text().await?));
        }
        Ok(Form(fields))
    }

    /// The first value of `name`, trimmed; `None` if absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Every non-empty field but those named in `except`, in order: a form carried on to its
    /// next step in hidden fields.
    pub fn fields_except(&self, except: &[&str]) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(k, v)| !except.contains(&k.as_str()) && !v.trim().is_empty())
            .cloned()
            .collect()
    }

    /// Whether the form carries `csrf`, the token of the session (or of the sign-in cookie).
    pub fn carries(&self, csrf: &str) -> bool {
        !csrf.is_empty()
            && self
                .get("csrf")
                .is_some_and(|c| session::same_token(c, csrf))
    }

    /// The idempotency key the form was shown with.
    pub fn idempotency_key(&self) -> Result<IdempotencyKey, ApiError> {
        crate::idempotency::client_key(self.get("idempotency_key").unwrap_or(""))
    }

    /// The amount of the form's `hours` and `minutes` fields (either may be left empty).
    pub fn amount(&self) -> Result<Minutes, ApiError> {
        let number = |name: &str| -> Result<Option<u64>, ApiError> {
            self.get(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        ApiError::InvalidRequest(format!("{name}: {v:?} is not a whole number"))
                    })
                })
                .transpose()
        };
        let hours = number("hours")?;
        let minutes = number("minutes")?;
        Ok(match (hours, minutes) {
            (None, None) => {
                return Err(ApiError::InvalidRequest(
                    "give the hours, the minutes, or both".into(),
                ))
            }
            (None, Some(m)) => Minutes::new(m)?,
            (Some(h), m) => Minutes::from_hours_and_minutes(h, m.unwrap_or(0))?,
        })
    }

    /// The text field `name` as the domain takes it, if given.
    pub fn text(&self, name: &'static str) -> Result<Option<ShortText>, ApiError> {
        Ok(self
            .get(name)
            .map(|v| ShortText::from_input(name, v))
            .transpose()?)
    }

    /// The fingerprint of the form (every field but the CSRF token), to tell a repeat from
    /// another request under the same idempotency key.
    pub fn fingerprint(&self, route: &str) -> String {
        self.fingerprint_with(route, "", None)
    }

    /// [`Form::fingerprint`] with field `secret`'s value replaced by `print` (a keyed digest:
    /// a fingerprint is kept, and a PIN inside a plain hash would be found by trying them all).
    pub fn fingerprint_with(&self, route: &str, secret: &str, print: Option<String>) -> String {
        let fields: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "csrf")
            .map(|(k, v)| match (&print, k == secret) {
                (Some(print), true) => (k.as_str(), print.as_str()),
                (None, true) => (k.as_str(), ""),
                _ => (k.as_str(), v.as_str()),
            })
            .collect();
        crate::idempotency::fingerprint(route, &fields)
    }
}

/// An HTML answer with `status`.
fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(body)
}

/// Renders `page` with 200.
fn render(page: &impl Template) -> HttpResponse {
    render_with(StatusCode::OK, page)
}

/// Renders `page` with `status`.
fn render_with(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>500</title>".into(),
            )
        }
    }
}

/// The message for a refusal, in the visitor's words: the catalogue's for the problem's code
/// where it has one, else the generic one with the service's detail.
fn problem_message(t: &Text, error: &ApiError) -> String {
    let code = error.code().as_str();
    let id = format!("problem-{code}");
    let message = t.with(&id, "detail", &error);
    if message == id {
        t.with("problem-generic", "detail", &error)
    } else {
        message
    }
}
