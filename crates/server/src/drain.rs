//! Graceful stop: on SIGTERM (or SIGINT) every request already received is answered before the
//! service stops.
//!
//! Closing the listener and the connections at once, as actix does by itself, drops requests that
//! are waiting for the ledger and races with clients sending on kept-alive connections. Instead:
//!
//! 1. the signal starts the drain: requests that arrive from then on are answered at once with
//!    503 `shutting_down` (and `Retry-After`), every response closes its connection, and
//!    `/readyz` says so;
//! 2. the stop waits until every request received before the signal is answered and no request
//!    has arrived for [`QUIET`] (a request a client sent on a kept-alive connection just before
//!    the signal may still be on its way; closing that connection would drop it), for at most
//!    the drain timeout (`serve --drain-timeout-secs`);
//! 3. then actix stops listening and closes what connections remain, and [`crate::Service::run`]
//!    closes the ledger: its writer finishes, flushes its state, and seals the checkpoint it
//!    signed for the last batch in `signed-tree`, before the process exits 0.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::problem::ApiError;
use crate::AppState;

/// How long no request must have arrived before the drain ends.
pub const QUIET: Duration = Duration::from_millis(250);

/// Whether the service is draining, and how many requests received before it are unanswered.
#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    active: AtomicUsize,
    /// When the last request arrived, in milliseconds after `epoch`.
    last_arrival: AtomicU64,
    epoch: Instant,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            last_arrival: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// A request received before the drain began; dropping it marks the request answered.
pub struct Active(Arc<Drain>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drain {
    /// Counts a request in, unless the drain has begun.
    pub fn enter(self: &Arc<Self>) -> Option<Active> {
        // Counted before the flag is read, and the flag set before the count is read: either the
        // request sees the drain, or the drain sees the request.
        self.active.fetch_add(1, Ordering::SeqCst);
        let active = Active(self.clone());
        self.last_arrival
            .fetch_max(self.millis(Instant::now()), Ordering::Relaxed);
        (!self.draining.load(Ordering::SeqCst)).then_some(active)
    }

    /// Starts the drain: no new request is taken.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits until every request received before the drain is answered and none arrived for
    /// [`QUIET`], or `timeout` passes; returns how many were still unanswered (0 when all were).
    pub async fn settled(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let active = self.active.load(Ordering::SeqCst);
            let now = Instant::now();
            let quiet = self.millis(now)
                >= self.last_arrival.load(Ordering::Relaxed) + QUIET.as_millis() as u64;
            if (active == 0 && quiet) || now >= deadline {
                return active;
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Middleware: answers requests that arrive during the drain with 503 `shutting_down`, counts the
/// others until they are answered, and closes every connection once the drain has begun.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let drain = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.drain.clone());
    let Some(drain) = drain else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(active) = drain.enter() else {
        let mut response = ApiError::ShuttingDown.error_response();
        response
            .head_mut()
            .set_connection_type(ConnectionType::Close);
        return Ok(req.into_response(response));
    };
    let mut res = next.call(req).await?.map_into_boxed_body();
    drop(active);
    if drain.is_draining() {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}

/// The stop signal handed to actix: resolves once SIGTERM or SIGINT arrived and the drain is
/// over (or timed out).
pub async fn on_signal(drain: Arc<Drain>, timeout: Duration) {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT; stop the service with SIGKILL");
        return std::future::pending().await;
    };
    let which = futures_util::future::select(Box::pin(term.recv()), Box::pin(int.recv()));
    let name = match which.await {
        futures_util::future::Either::Left(_) => "SIGTERM",
        futures_util::future::Either::Right(_) => "SIGINT",
    };
    drain.begin();
    tracing::info!(
        signal = name,
        timeout_secs = timeout.as_secs_f64(),
        "stopping: answering the requests already received, refusing new ones"
    );
    match drain.settled(timeout).await {
        0 => tracing::info!("every request received was answered"),
        left => tracing::warn!(
            unanswered = left,
            "the drain timed out; these requests are cut off"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn the_drain_waits_for_requests_received_before_it_and_refuses_later_ones() {
        let drain = Arc::new(Drain::default());
        let before = drain.enter().expect("taken before the drain");
        drain.begin();
        assert!(drain.enter().is_none(), "refused during the drain");
        assert_eq!(drain.settled(Duration::from_millis(20)).await, 1);
        drop(before);
        let started = Instant::now();
        assert_eq!(drain.settled(Duration::from_secs(1)).await, 0);
        assert!(started.elapsed() >= QUIET / 2, "waits for a quiet moment");
    }
}
