//! The timecredits REST service: thin actix-web handlers over the ledger
//! ([`timecredits_ledger`]) and the credential [`registry`].
//!
//! - [`api`]: the handlers, one module per resource, and the request/response types;
//! - [`auth`]: credentials and the permission matrix;
//! - [`idempotency`]: the `Idempotency-Key` header;
//! - [`problem`]: every error and its one mapping to RFC 9457 problem+json;
//! - [`registry`]: partners, API keys and member credentials (the service's own small store);
//! - [`spend_codes`]: one-time codes with which members consent to a spend;
//! - [`openapi`]: the generated OpenAPI document.
//!
//! Handlers only translate: they check the caller, turn the body into ledger intents, submit,
//! and turn the result into JSON. Rules live in `timecredits-domain`, storage in the ledger.

pub mod api;
pub mod auth;
pub mod idempotency;
pub mod limits;
pub mod openapi;
pub mod problem;
pub mod registry;
pub mod security;
pub mod spend_codes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use actix_web::dev::Server;
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};
use timecredits_ledger::{Ledger, LedgerConfig};

use crate::idempotency::InFlight;
use crate::registry::Registry;
use crate::spend_codes::SpendCodes;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The largest body of `POST /v1/earn/batch`: 1,000 items (the most a batch takes) of maximal
/// size, about 1.5 KiB each in compact JSON even with every text field's 200 characters 4 bytes
/// long, fit with room to spare.
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
    /// How long a member's spend code is valid.
    pub spend_code_ttl: chrono::Duration,
    /// Request rates, timeouts and the connection cap.
    pub limits: limits::Limits,
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
            spend_code_ttl: SpendCodes::TTL,
            limits: limits::Limits::default(),
        }
    }
}

/// A startup failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path} or make it private: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] timecredits_ledger::LedgerError),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What every handler shares.
pub struct AppState {
    pub ledger: Ledger,
    pub registry: Registry,
    pub spend_codes: SpendCodes,
    pub in_flight: InFlight,
    pub reversal_window: chrono::Duration,
}

impl AppState {
    /// Opens the ledger and the registry in `settings.data_dir`, creating them on first use.
    pub fn open(settings: &Settings) -> Result<AppState, StartError> {
        let dir: &Path = &settings.data_dir;
        security::private_data_dir(dir).map_err(|source| StartError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
        let config = LedgerConfig {
            origin: settings.origin.clone(),
            key_overlap: settings.key_overlap,
            ..LedgerConfig::default()
        };
        let ledger = Ledger::open(dir, config)?;
        let registry = Registry::open(dir)?;
        Ok(AppState {
            ledger,
            registry,
            spend_codes: SpendCodes::new(settings.spend_code_ttl),
            in_flight: InFlight::default(),
            reversal_window: settings.reversal_window,
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
    .configure(api::routes)
    .configure(openapi::routes);
}

/// Binds the service and returns the running server and the address it listens on. The server
/// must be awaited (or spawned) to serve.
pub fn start(settings: &Settings) -> Result<(Server, SocketAddr), StartError> {
    let state = web::Data::new(AppState::open(settings)?);
    let data = state.clone();
    let rate_limits = web::Data::new(limits::RateLimits::new(&settings.limits));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(rate_limits.clone())
            .wrap(ErrorHandlers::new().default_handler(problem::status_problem))
            .wrap(actix_web::middleware::from_fn(limits::enforce))
            .wrap(actix_web::middleware::from_fn(security::headers))
            .configure(configure)
            .default_service(web::to(problem::no_route))
    })
    // Shut down quickly: in-flight ledger writes complete regardless of the connection.
    .shutdown_timeout(5)
    .client_request_timeout(settings.limits.head_timeout);
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
        .bind(settings.listen)
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
    let addr = server.addrs()[0];
    tracing::info!(%addr, data_dir = %settings.data_dir.display(), origin = %state.ledger.origin(), "timecredits is listening");
    Ok((server.run(), addr))
}
