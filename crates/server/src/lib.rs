//! The timecredits REST service: thin actix-web handlers over the ledger
//! ([`timecredits_ledger`]) and the credential [`registry`].
//!
//! - [`api`]: the handlers, one module per resource, and the request/response types;
//! - [`auth`]: credentials and the permission matrix;
//! - [`backup`]: backups taken while the service runs, and their restore;
//! - [`data_dir`]: the data directory's lock and on-disk format;
//! - [`drain`]: the graceful stop;
//! - [`idempotency`]: the `Idempotency-Key` header;
//! - [`problem`]: every error and its one mapping to RFC 9457 problem+json;
//! - [`registry`]: partners, API keys and member credentials (the service's own small store);
//! - [`service`]: what the writes do, without HTTP (the handlers' orchestration);
//! - [`spend_codes`]: one-time codes with which members consent to a spend;
//! - [`throttle`]: sliding-window counters for throttling;
//! - [`openapi`]: the generated OpenAPI document;
//! - [`pages`]: the pages under `/app/` for the people of a scheme, over the same service layer, and
//!   the receipt verifier a member downloads.
//!
//! Handlers only translate: they check the caller, turn the body into ledger intents or a
//! [`service`] call, and turn the result into JSON. Rules live in `timecredits-domain`, storage in the ledger.

pub mod api;
pub mod auth;
pub mod backup;
pub mod cards;
pub mod config;
pub mod data_dir;
pub mod drain;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod pages;
pub mod problem;
pub mod profiles;
pub mod qr;
pub mod registry;
pub mod security;
pub mod service;
pub mod spend_codes;
pub mod throttle;

#[cfg(test)]
mod fault_tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};
use timecredits_ledger::{Ledger, LedgerConfig};

use crate::drain::Drain;
use crate::idempotency::InFlight;
use crate::registry::Registry;
use crate::spend_codes::SpendCodes;
use timecredits_domain::IdempotencyKey;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The largest body of `POST /v1/earn/batch` and `POST /v1/members/batch`: 1,000 items (the most a batch takes) of maximal
/// size, about 1.5 KiB each in compact JSON even with every text field's 200 characters 4 bytes
/// long, fit with room to spare; so do 1,000 rows of a CSV sheet (under 0.9 KiB each, a text
/// of 200 quotation marks being the longest field).
pub const MAX_BATCH_BODY_BYTES: usize = 2 * 1024 * 1024;

/// How the service is configured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the ledger, the registry and the keys live.
    pub data_dir: PathBuf,
    /// The address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The ledger's checkpoint origin.
    pub origin: String,
    /// How long after recording a partner may reverse its own entry.
    pub reversal_window: chrono::Duration,
    /// HTTP worker threads (0: one per core).
    pub workers: usize,
    /// How long after a key rotation the previous key also signs checkpoints.
    pub key_overlap: chrono::Duration,
    /// How often the journal is scrubbed (re-read and checked against the signed tree) while
    /// the service runs, the first time right after start; `None`: never.
    pub scrub_interval: Option<std::time::Duration>,
    /// How long a repeat of a member registration (or credential reissue) may show the
    /// credential again; after it, a repeat answers without the credential.
    pub credential_replay_window: chrono::Duration,
    /// How long a stop waits for the requests already received to be answered.
    pub drain_timeout: Duration,
    /// Whether SIGTERM and SIGINT stop the service (gracefully, see [`drain`]). Off for servers
    /// embedded in a process that handles its own signals (the tests).
    pub handle_signals: bool,
    /// Spend codes: lifetime, codes per member, guess limits.
    pub spend_codes: spend_codes::Config,
    /// Member cards: the name printed on them, the wrong PINs that lock one.
    pub cards: cards::Config,
    /// Request rates, timeouts and the connection cap.
    pub limits: limits::Limits,
    /// Bytes of memory for the ledger state's page cache.
    pub state_cache_bytes: u64,
    /// Browser origins allowed to call the API (CORS); empty: none, and no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// The expiry policy: `None` (the default), nothing ever expires.
    pub expiry: Option<service::expiries::Policy>,
    /// The clock that stamps entries and decides what expiry is due: the system's. No setting
    /// reaches it (the configuration file, flags and environment cannot change it); only a
    /// program that builds its `Settings` itself, as the black-box tests do to let months pass,
    /// can give another.
    pub clock: timecredits_ledger::Clock,
}

impl Settings {
    /// The embedded defaults: `./data`, `127.0.0.1:8080`, 30-day reversal window.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Settings {
        Settings {
            data_dir: data_dir.into(),
            listen,
            origin: LedgerConfig::default().origin,
            reversal_window: chrono::Duration::days(30),
            workers: 0,
            key_overlap: LedgerConfig::default().key_overlap,
            scrub_interval: Some(std::time::Duration::from_secs(24 * 3600)),
            credential_replay_window: chrono::Duration::hours(24),
            drain_timeout: Duration::from_secs(30),
            handle_signals: true,
            spend_codes: spend_codes::Config::default(),
            cards: cards::Config::default(),
            limits: limits::Limits::default(),
            state_cache_bytes: LedgerConfig::default().cache_bytes,
            cors_allowed_origins: Vec::new(),
            expiry: None,
            clock: timecredits_ledger::Clock::system(),
        }
    }
}

/// A startup failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be created or made private to the service's user.
    #[error("cannot create the data directory {path} or make it private: {source}")]
    DataDir {
        /// The data directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory is in use, or in a format this binary does not read.
    #[error(transparent)]
    DataDirRefused(#[from] data_dir::DataDirError),
    /// The ledger refused to open (see the error for the file and what to restore).
    #[error(transparent)]
    Ledger(#[from] timecredits_ledger::LedgerError),
    /// The registry refused to open.
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    /// The spend-code store refused to open.
    #[error(transparent)]
    SpendCodes(#[from] spend_codes::StoreError),
    /// The listening socket cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What every handler shares.
pub struct AppState {
    /// The ledger every write goes to and every read comes from.
    pub ledger: Ledger,
    /// Partners, API keys and members: who an actor is.
    pub registry: Registry,
    /// Live spend codes and the redemption throttle.
    pub spend_codes: SpendCodes,
    /// Members' profiles: the personal data, apart from the ledger and the registry.
    pub profiles: profiles::ProfileStore,
    /// The idempotency keys of requests being processed, so a concurrent repeat gets 409.
    pub in_flight: InFlight,
    /// How long a partner may reverse its own entries.
    pub reversal_window: chrono::Duration,
    /// How long a repeated registration or reissue may show the credential again.
    pub credential_replay_window: chrono::Duration,
    /// Member cards: the name printed on them, the wrong PINs that lock one.
    pub cards: cards::Config,
    /// The graceful stop's state: whether it began, and the requests it waits for.
    pub drain: Arc<Drain>,
    /// The service's figures, served at `/metrics`.
    pub metrics: metrics::Metrics,
    /// The data directory (for the figures read from it).
    pub data_dir: PathBuf,
    /// The programme office's report, kept up to date with the ledger.
    pub reports: service::reports::ReportCache,
    /// The expiry policy, if there is one, and the sweep's own state (see
    /// [`service::expiries`]).
    pub expiry: service::expiries::Expiry,
    /// The data directory's lock, held while the state lives; declared last, so that it is
    /// released only after the ledger and the registry are closed.
    _lock: data_dir::DirLock,
}

impl AppState {
    /// Opens the ledger and the registry in `settings.data_dir`, creating them on first use.
    pub fn open(settings: &Settings) -> Result<AppState, StartError> {
        let dir: &Path = &settings.data_dir;
        security::private_data_dir(dir).map_err(|source| StartError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
        let metrics = metrics::Metrics::new();
        let lock = data_dir::claim(dir)?;
        let config = LedgerConfig {
            origin: settings.origin.clone(),
            key_overlap: settings.key_overlap,
            cache_bytes: settings.state_cache_bytes,
            observer: Some(metrics.ledger_observer()),
            clock: settings.clock.clone(),
            ..LedgerConfig::default()
        };
        let ledger = Ledger::open(dir, config)?;
        // More than the genesis entry: partners, members or movements that the registry names.
        let ledger_has_entries = ledger.size()? > 1;
        let registry = Registry::open(dir, ledger_has_entries)?;
        // A reservation whose outcome a crash lost is settled by what the ledger committed.
        let committed = |actor, key: &str| {
            let key = IdempotencyKey::new(key).map_err(|e| e.to_string())?;
            ledger
                .previous_request(actor, &key)
                .map(|p| p.is_some())
                .map_err(|e| e.to_string())
        };
        let spend_codes = SpendCodes::open(
            dir,
            settings.spend_codes.clone(),
            registry.subkey("spend-codes"),
            committed,
        )?;
        let profiles = profiles::ProfileStore::open(dir, |member| registry.is_erased(member))?;
        Ok(AppState {
            ledger,
            registry,
            spend_codes,
            profiles,
            in_flight: InFlight::default(),
            reversal_window: settings.reversal_window,
            credential_replay_window: settings.credential_replay_window,
            cards: settings.cards.clone(),
            drain: Arc::default(),
            metrics,
            data_dir: dir.to_owned(),
            reports: service::reports::ReportCache::default(),
            expiry: service::expiries::Expiry::new(settings.expiry, settings.clock.clone()),
            _lock: lock,
        })
    }
}

/// Registers the whole API on an actix `App`: routes, extractor error handlers, 404/405
/// problems and the OpenAPI document with its interactive docs.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(problem::json_error),
    )
    .app_data(web::PathConfig::default().error_handler(problem::path_error))
    .app_data(web::QueryConfig::default().error_handler(problem::query_error))
    // The routes' OpenAPI operations, collected on the way, serve `openapi::api_doc` only.
    .configure(|cfg| {
        api::routes(&mut utoipa_actix_web::service_config::ServiceConfig::new(
            cfg,
        ))
    })
    .route("/metrics", web::get().to(metrics_text))
    // A resource, so another method gets 405 (a problem naming GET), not 404.
    .configure(openapi::routes);
}

/// `GET /metrics`: every figure in the Prometheus text format (see [`metrics`]). Not rate
/// limited and needs no credential, like the health checks: keep it from the public at the
/// proxy (deploy/).
async fn metrics_text(state: web::Data<AppState>) -> actix_web::HttpResponse {
    let state = state.into_inner();
    let text = web::block(move || metrics::render(&state, &state.data_dir))
        .await
        .unwrap_or_default();
    actix_web::HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(text)
}

/// A bound service: run it with [`Service::run`].
pub struct Service {
    /// The running server: await it (or [`Service::run`]) to serve; its handle stops it.
    pub server: Server,
    /// The address it listens on.
    pub addr: SocketAddr,
    state: web::Data<AppState>,
}

/// How long [`Service::run`] waits for the HTTP workers to let go of the ledger after they stop.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

impl Service {
    /// Serves until stopped (by a signal, see [`drain`], or by the server's handle), then closes
    /// the ledger: its writer finishes, flushes its state and records the checkpoint signed for
    /// the last batch in `signed-tree`. Waiting for that here, rather than leaving it to the HTTP
    /// workers' threads, keeps the exit from cutting it short. Returns the ledger's size.
    pub async fn run(self) -> Result<u64, StartError> {
        let Service {
            server,
            addr,
            state,
        } = self;
        server
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let mut state = state.into_inner();
        let deadline = std::time::Instant::now() + RELEASE_TIMEOUT;
        loop {
            match Arc::try_unwrap(state) {
                Ok(state) => {
                    let size = state.ledger.size()?;
                    drop(state);
                    tracing::info!(size, "stopped; the ledger is closed and its state flushed");
                    return Ok(size);
                }
                Err(shared) if std::time::Instant::now() < deadline => {
                    state = shared;
                    actix_web::rt::time::sleep(Duration::from_millis(10)).await;
                }
                Err(_) => {
                    tracing::warn!(
                        "stopped; HTTP workers still hold the ledger, which the exit closes"
                    );
                    return Ok(0);
                }
            }
        }
    }
}

/// Binds the service and returns the running server and the address it listens on. The server
/// must be awaited (or spawned) to serve.
pub fn start(settings: &Settings) -> Result<(Server, SocketAddr), StartError> {
    let service = bind(settings)?;
    Ok((service.server, service.addr))
}

/// Binds the listening socket, then opens the data directory, and returns the service. The
/// socket comes first, so that a start that cannot listen (the port is taken) leaves nothing
/// behind: no new data directory, no ledger, no keys.
pub fn bind(settings: &Settings) -> Result<Service, StartError> {
    let listener = listen(settings.listen).map_err(|source| StartError::Listen {
        addr: settings.listen,
        source,
    })?;
    let state = web::Data::new(AppState::open(settings)?);
    if let Some(interval) = settings.scrub_interval {
        spawn_scrub(&state, interval);
    }
    if settings.expiry.is_some() {
        service::expiries::spawn_daily_sweep(&state);
    }
    service::reports::spawn_warm_up(&state);
    let data = state.clone();
    let rate_limits = web::Data::new(limits::RateLimits::new(&settings.limits));
    let pages = web::Data::new(pages::Pages::default());
    let cors_allowed_origins = settings.cors_allowed_origins.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(rate_limits.clone())
            .app_data(pages.clone())
            .wrap(ErrorHandlers::new().default_handler(problem::status_problem))
            .wrap(actix_web::middleware::from_fn(drain::guard))
            .wrap(actix_web::middleware::from_fn(limits::enforce))
            .wrap(actix_web::middleware::from_fn(security::headers))
            // Outermost, so that every answer to an allowed origin carries the CORS headers,
            // a 429 or a problem too (a browser hides an answer without them from the page).
            .wrap(actix_web::middleware::Condition::new(
                !cors_allowed_origins.is_empty(),
                security::cors(&cors_allowed_origins),
            ))
            .wrap(actix_web::middleware::from_fn(observe::observe))
            .configure(configure)
            .configure(pages::configure)
            .default_service(web::to(problem::no_route))
    })
    // After the drain every request received is answered: what remains are idle connections.
    .shutdown_timeout(5)
    .client_request_timeout(settings.limits.head_timeout);
    server = if settings.handle_signals {
        server.shutdown_signal(drain::on_signal(
            state.drain.clone(),
            settings.drain_timeout,
        ))
    } else {
        server.disable_signals()
    };
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    // actix caps connections per worker: share the cap out (rounding up).
    let workers = match settings.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    server = server.max_connections(settings.limits.max_connections.div_ceil(workers).max(1));
    let server = server
        .listen(listener)
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
    let addr = server.addrs()[0];
    tracing::info!(%addr, data_dir = %settings.data_dir.display(), origin = %state.ledger.origin(), "timecredits is listening");
    Ok(Service {
        server: server.run(),
        addr,
        state,
    })
}

/// The listening socket, made as actix-web's own `bind` makes it (address reuse, a backlog of
/// 1024 connections).
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Scrubs the journal now and then every `interval` on a thread of its own (see
/// [`timecredits_ledger::check`]). Damage stops writes, so nothing is appended after it, and
/// `/readyz` reports it. The thread holds the ledger only while it scrubs, and ends once the
/// service is gone.
fn spawn_scrub(state: &web::Data<AppState>, interval: std::time::Duration) {
    let service = std::sync::Arc::downgrade(&state.clone().into_inner());
    let spawned = std::thread::Builder::new()
        .name("journal-scrub".into())
        .spawn(move || {
            while let Some(state) = service.upgrade() {
                match state.ledger.scrub(|_, _| {}) {
                    Ok(report) if report.is_sound() => {
                        state.metrics.scrubs.with_label_values(&["sound"]).inc();
                        (state.metrics)
                            .scrub_last_sound
                            .set(chrono::Utc::now().timestamp() as f64);
                        tracing::info!(
                            entries = report.entries,
                            "the journal scrub found no damage"
                        );
                    }
                    Ok(report) => {
                        state.metrics.scrubs.with_label_values(&["damaged"]).inc();
                        let reason = format!(
                            "the journal scrub found damage, so the ledger takes no more writes \
                             (run `timecredits check` and restore from a backup): {}",
                            report.damage.join("; ")
                        );
                        tracing::error!(%reason, "journal damage");
                        state.ledger.refuse_writes(&reason);
                        return;
                    }
                    Err(e) => {
                        state.metrics.scrubs.with_label_values(&["failed"]).inc();
                        tracing::warn!(error = %e, "the journal scrub could not run");
                    }
                }
                drop(state);
                std::thread::sleep(interval);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the journal scrub could not start");
    }
}
