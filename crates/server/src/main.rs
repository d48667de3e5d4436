//! `timecredits`: the service and its operator commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use timecredits_server::{openapi, start, Settings};

#[derive(Parser)]
#[command(
    name = "timecredits",
    version,
    about = "A verifiable ledger service for time-credit schemes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the REST service (creates the data directory, keys and an administrator API key on
    /// first run).
    Serve {
        /// Where the ledger, the registry and the keys live.
        #[arg(long, env = "TIMECREDITS_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The address to listen on.
        #[arg(long, env = "TIMECREDITS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The checkpoint origin, fixed when the ledger is created (e.g. your domain + path).
        #[arg(
            long,
            env = "TIMECREDITS_ORIGIN",
            default_value = "localhost/timecredits"
        )]
        origin: String,
        /// Days during which a partner may reverse its own entries.
        #[arg(long, env = "TIMECREDITS_REVERSAL_WINDOW_DAYS", default_value_t = 30)]
        reversal_window_days: u32,
        /// HTTP worker threads (default: one per core).
        #[arg(long, env = "TIMECREDITS_WORKERS", default_value_t = 0)]
        workers: usize,
    },
    /// Print the OpenAPI document (the content of openapi/openapi.json).
    Openapi,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            data_dir,
            listen,
            origin,
            reversal_window_days,
            workers,
        } => {
            let mut settings = Settings::new(data_dir, listen);
            settings.origin = origin;
            settings.reversal_window = chrono::Duration::days(reversal_window_days.into());
            settings.workers = workers;
            serve(&settings)
        }
        Command::Openapi => {
            print!("{}", openapi::document());
            ExitCode::SUCCESS
        }
    }
}

fn serve(settings: &Settings) -> ExitCode {
    let system = actix_web::rt::System::new();
    let result = system.block_on(async {
        let (server, _) = start(settings)?;
        server
            .await
            .map_err(|e| timecredits_server::StartError::Listen {
                addr: settings.listen,
                source: e,
            })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timecredits: {e}");
            ExitCode::FAILURE
        }
    }
}
