//! Limits that keep one client from taking the service from the others: request rates per
//! credential and per source address, a deadline for reading a request body (slow clients
//! trickling a body cannot hold a connection and a worker's memory for long), and no body at
//! all on the POSTs that take none. The connection cap and the request-head timeout are set on
//! the HTTP server itself (see [`crate::start`]).

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{Bytes, Data};
use actix_web::{HttpMessage, ResponseError};
use futures_util::Stream;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::problem::ApiError;

/// The limits, all configurable (`timecredits serve --help`). A rate of 0 turns that limit off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sustained requests per second one credential (API key or member credential) may make.
    /// Every request with an `Authorization` header counts, whether the credential is valid or
    /// not (so guessing is throttled too).
    pub per_key_per_second: u32,
    /// Requests one credential may make at once above its rate (the token bucket's size).
    pub per_key_burst: u32,
    /// Sustained requests per second from one source IP address (an IPv6 address's /64), with
    /// or without credential.
    pub per_address_per_second: u32,
    /// Requests one address may make at once above its rate.
    pub per_address_burst: u32,
    /// How long a client has to send a request body, from the end of its head.
    pub body_timeout: Duration,
    /// How long a client has to send a request head (actix's client request timeout).
    pub head_timeout: Duration,
    /// Open connections the service accepts at once; more wait in the listen queue.
    pub max_connections: usize,
}

impl Default for Limits {
    /// Generous for a scheme's partners and members, tight enough that one client cannot
    /// saturate a small server: 100 requests/s per credential (bursts of 200), 200 per address
    /// (bursts of 400), 10 s to send a body, 5 s to send a head, 512 connections (below the
    /// usual limit of 1,024 open files).
    fn default() -> Self {
        Limits {
            per_key_per_second: 100,
            per_key_burst: 200,
            per_address_per_second: 200,
            per_address_burst: 400,
            body_timeout: Duration::from_secs(10),
            head_timeout: Duration::from_secs(5),
            max_connections: 512,
        }
    }
}

impl Limits {
    /// No rate limits (for benchmarks and tests that send many requests from one client); the
    /// timeouts and the connection cap stay.
    pub fn unthrottled() -> Limits {
        Limits {
            per_key_per_second: 0,
            per_address_per_second: 0,
            ..Limits::default()
        }
    }
}

/// How many checks between two sweeps of the limiters' idle entries.
const SWEEP_EVERY: u64 = 16_384;

/// The rate limiters, shared by every worker.
pub struct RateLimits {
    per_key: Option<DefaultKeyedRateLimiter<u64>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Keys credentials by a keyed hash: the limiter never holds a secret, and a client cannot
    /// choose credentials that collide.
    hasher: RandomState,
    body_timeout: Duration,
    checks: AtomicU64,
}

/// A keyed limiter for `per_second` with bursts of `burst`, or none when `per_second` is 0.
fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_second: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl RateLimits {
    /// Limiters for `limits`.
    pub fn new(limits: &Limits) -> RateLimits {
        RateLimits {
            per_key: limiter(limits.per_key_per_second, limits.per_key_burst),
            per_address: limiter(limits.per_address_per_second, limits.per_address_burst),
            hasher: RandomState::new(),
            body_timeout: limits.body_timeout,
            checks: AtomicU64::new(0),
        }
    }

    /// Counts a request from `address` with the `Authorization` header `credential`; on
    /// refusal, says how long to wait (whole seconds, at least 1).
    fn check(&self, address: Option<IpAddr>, credential: Option<&[u8]>) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let wait = |not_until: governor::NotUntil<_>| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        };
        if let (Some(limiter), Some(address)) = (&self.per_address, address) {
            limiter.check_key(&client(address)).map_err(wait)?;
        }
        if let (Some(limiter), Some(credential)) = (&self.per_key, credential) {
            limiter
                .check_key(&self.hasher.hash_one(token(credential)))
                .map_err(wait)?;
        }
        Ok(())
    }

    /// Forgets the clients whose buckets are full again, so that the limiters' memory follows
    /// the clients active in the last seconds, not every client ever seen.
    fn sweep(&self) {
        if let Some(limiter) = &self.per_key {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_address {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The client an address stands for: an IPv4 address, or an IPv6 address's /64 network (one
/// host commonly has a whole /64, and could otherwise take a new address per request).
fn client(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
    }
}

/// The credential in an `Authorization` header value, without its scheme name and spaces, so
/// that `Bearer X` and `bearer  X` share a bucket.
fn token(header: &[u8]) -> &[u8] {
    let token = match header.iter().position(|&b| b == b' ') {
        Some(space) => &header[space..],
        None => header,
    };
    token.trim_ascii()
}

/// Paths that are never limited: health checks and metrics, which orchestrators and monitors
/// call on their own schedule.
fn exempt(path: &str) -> bool {
    path == "/healthz" || path == "/readyz" || path == "/metrics"
}

/// Whether the request announces a body (a length that is not 0, or one sent in chunks).
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    match headers.get(header::CONTENT_LENGTH) {
        None => false,
        Some(length) => length.to_str().map_or(true, |v| v.trim() != "0"),
    }
}

/// The middleware: refuses a request over its rates with 429 `rate_limited` and `Retry-After`,
/// and gives a request body [`Limits::body_timeout`] to arrive (after which reading it fails and
/// the request is answered 408 `request_timeout`).
pub async fn enforce(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(limits) = req.app_data::<Data<RateLimits>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    if !exempt(req.path()) {
        let address = req.peer_addr().map(|a| a.ip());
        let credential = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if let Err(retry_after) = limits.check(address, credential) {
            tracing::debug!(?address, retry_after, "rate limited");
            let response = ApiError::RateLimited { retry_after }.error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    if has_body(&req) {
        let payload = req.take_payload();
        let deadline = Box::pin(actix_web::rt::time::sleep(limits.body_timeout));
        req.set_payload(Payload::Stream {
            payload: Box::pin(Deadline {
                payload,
                deadline,
                expired: false,
            }),
        });
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// A request body that fails with a timed-out read once its deadline passes.
struct Deadline {
    payload: Payload,
    deadline: Pin<Box<actix_web::rt::time::Sleep>>,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.payload).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body was not received in time",
            )))));
        }
        Poll::Pending
    }
}

/// Whether a body read failed because its deadline passed.
pub fn timed_out(err: &PayloadError) -> bool {
    matches!(err, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

/// Route middleware for the POSTs that take no body: a request that announces one is refused
/// with 413 `body_not_allowed`, before anything reads it (so a client cannot make the service
/// read, and wait for, a body it ignores).
pub async fn no_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if has_body(&req) {
        let response = ApiError::BodyNotAllowed.error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_is_counted_whatever_its_scheme_is_spelt() {
        assert_eq!(token(b"Bearer tck_1"), b"tck_1");
        assert_eq!(token(b"bearer   tck_1 "), b"tck_1");
        assert_eq!(token(b"tck_1"), b"tck_1");
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client(a), client(b));
        assert_ne!(client(a), client(other));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client(v4), v4);
    }
}
