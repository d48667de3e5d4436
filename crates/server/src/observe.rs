//! Every request's id, access-log line and figures, in one middleware (the outermost, so that
//! what it sees is what the client got: a 429 from the limits, a problem from an extractor).
//!
//! - **Request id**: the client's `X-Request-Id` when it is a plain token (at most
//!   [`MAX_REQUEST_ID`] characters of `A-Z a-z 0-9 - _ . :`), otherwise a new UUIDv7; always
//!   returned in the answer's `X-Request-Id`, and in the access log, so a partner's support
//!   question can be matched to the log line.
//! - **Access log**: one INFO line per request on the `timecredits::access` target: id, peer
//!   address, method, path (never the query or a header: no credential can reach the log),
//!   route, status, problem code, microseconds. `RUST_LOG=info,timecredits::access=off` turns
//!   it off.
//! - **Figures**: [`crate::metrics::Metrics::observe_request`] by route pattern (`/v1/accounts/{id}`, so ids
//!   do not become labels; `unmatched` for a path no route knows).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use crate::problem::Code;
use crate::AppState;

/// The request id header, accepted and returned.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client request id kept; a longer one is replaced by a new id.
pub const MAX_REQUEST_ID: usize = 128;

/// The id of the request being served (in the request's extensions, for handlers that log).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Whether a client's request id is kept: a plain token, so that it can neither break a log
/// line nor carry markup into a log viewer.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The middleware (see the module documentation).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let peer = req.peer_addr().map(|a| a.ip());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut res = next.call(req).await?;
    let seconds = started.elapsed().as_secs_f64();
    let request = res.request();
    let route = request.match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    let status = res.status();
    let problem = res
        .response()
        .extensions()
        .get::<Code>()
        .map(|c| c.as_str());
    if let Some(state) = &state {
        let method = request.method().as_str();
        (state.metrics).observe_request(route, method, status.as_str(), problem, seconds);
    }
    tracing::info!(
        target: "timecredits::access",
        request_id = %id,
        peer = %peer.map_or_else(String::new, |ip| ip.to_string()),
        method = %request.method(),
        path = request.path(),
        route,
        status = status.as_u16(),
        code = problem.unwrap_or(""),
        micros = (seconds * 1e6) as u64,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tokens_are_kept_as_request_ids() {
        for id in ["abc", "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e11", "req:42.a_b"] {
            assert!(acceptable(id), "{id}");
        }
        let long = "a".repeat(MAX_REQUEST_ID + 1);
        for id in ["", "a b", "a\"b", "<script>", "é", long.as_str()] {
            assert!(!acceptable(id), "{id}");
        }
    }
}
