//! Secure defaults that are not any one handler's business: response headers, the permissions
//! of the data directory, and keeping client mistakes out of the ERROR log.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// The content policy of the interactive docs: Swagger UI's own scripts, styles and calls only
/// (so neither a validator nor any other outside service is contacted), and no framing.
/// Swagger UI sets inline styles, hence `'unsafe-inline'` for styles (never for scripts).
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' \
'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Adds the security headers to every response, errors included:
/// - `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` everywhere;
/// - `Cache-Control: no-store` on every `/v1` response: most carry a secret (a key, a
///   credential, a spend code) or a member's data, and one rule for all cannot miss one;
/// - on `/docs`, the [`DOCS_CSP`] content policy and `X-Frame-Options: DENY` (for browsers that
///   ignore `frame-ancestors`);
/// - on the pages (`/app/`), `no-store` but for the stylesheet, and the pages' content policy
///   ([`crate::pages::PAGES_CSP`]) unless the page set its own, with `X-Frame-Options: DENY`.
pub async fn headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path();
    let api = path.starts_with("/v1/");
    let docs = path == "/docs" || path.starts_with("/docs/");
    let pages = path == "/app" || path.starts_with("/app/");
    let page_asset = path.starts_with("/app/static/");
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api || (pages && !page_asset && !headers.contains_key(header::CACHE_CONTROL)) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // A page that sets its own policy (the verifier page's inline script) keeps it.
    if pages && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::pages::PAGES_CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if docs {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Ok(res)
}

/// The CORS policy for the configured browser origins (`cors_allowed_origins`): exactly those
/// origins, the API's methods and request headers, no cookies (the API authenticates with a
/// bearer credential, which a page sends itself), and the response headers a page needs to read
/// (a repeat's marker, a retry delay, a created resource's address). Wrapped only when the list
/// is not empty: the default sends no CORS header at all.
pub fn cors(allowed_origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::Method;
    allowed_origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        })
        .allowed_methods([Method::GET, Method::POST, Method::PUT])
        .allowed_headers([
            header::AUTHORIZATION.as_str(),
            header::CONTENT_TYPE.as_str(),
            header::ACCEPT.as_str(),
            crate::idempotency::HEADER,
        ])
        .expose_headers([
            header::RETRY_AFTER.as_str(),
            header::LOCATION.as_str(),
            crate::api::REPLAYED_HEADER,
        ])
        .max_age(3600)
}

/// Makes the data directory private to the service's user: sets the process's umask to 0077, so
/// that every file and directory created from now on (the journal, the registry, the keys, and
/// sled's files, which it creates with default modes) is 0600 or 0700; creates `dir` with mode
/// 0700 if needed; and tightens whatever already exists in it that others could read (a
/// directory made by an earlier version or by hand), logging a warning for each path changed.
///
/// The umask is process-wide: this binary writes nothing that others should read.
// The one unsafe call of this crate: std has no umask.
#[allow(unsafe_code)]
pub fn private_data_dir(dir: &Path) -> std::io::Result<()> {
    // SAFETY: umask only swaps the process's file creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for (path, from, to) in tighten(dir)? {
        tracing::warn!(
            path = %path.display(),
            "others could read {}: tightened its mode from {from:o} to {to:o}",
            path.display()
        );
    }
    Ok(())
}

/// Removes group and other permissions from `dir` and everything under it (symbolic links are
/// left alone: they are not followed). Returns each path changed, with its old and new modes.
///
/// A path that vanishes during the walk is skipped: the state store of a service stopped a moment
/// ago in the same process may still be removing its temporary files, and a file that is gone
/// needs no tightening.
fn tighten(dir: &Path) -> std::io::Result<Vec<(PathBuf, u32, u32)>> {
    let mut changed = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let Some(meta) = unless_gone(std::fs::symlink_metadata(&path))? else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            if let Some(entries) = unless_gone(std::fs::read_dir(&path))? {
                for entry in entries {
                    if let Some(entry) = unless_gone(entry)? {
                        pending.push(entry.path());
                    }
                }
            }
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            let private = mode & 0o700;
            let set = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(private));
            if unless_gone(set)?.is_some() {
                changed.push((path, mode, private));
            }
        }
    }
    Ok(changed)
}

/// `result`, with "not found" (the path vanished meanwhile) as `None`.
fn unless_gone<T>(result: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A tracing layer that keeps client mistakes out of the ERROR log. actix-http logs every
/// connection it drops for a malformed request or body (`stream error: …`) at ERROR, although
/// the fault is the client's; this layer drops those events and logs them again at DEBUG, so
/// that ERROR means a fault of the service (which `problem` logs for every 5xx answer). DEBUG
/// rather than INFO or WARN: a client can cause as many as it likes.
pub struct ClientErrorsBelowError;

/// Where actix-http logs the connections it drops.
const ACTIX_DISPATCHER: &str = "actix_http::h1::dispatcher";

impl<S: Subscriber> Layer<S> for ClientErrorsBelowError {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || meta.target() != ACTIX_DISPATCHER {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        match message.0.strip_prefix("stream error: ") {
            Some(reason) => {
                tracing::debug!(reason, "dropped a connection: the request was malformed");
                false
            }
            None => true,
        }
    }
}

/// The `message` field of an event.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
