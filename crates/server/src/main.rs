//! `timecredits`: the service and its operator commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;
use std::path::Path;

use clap::{Parser, Subcommand};
use timecredits_ledger::{ExportRange, Ledger, LedgerConfig, LedgerError};
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
    /// Write an auditor's export of the ledger (run it while the service is stopped: the data
    /// directory is locked by a running service). Verify it with `timecredits-audit verify`.
    Export {
        /// The data directory of the ledger.
        #[arg(long, env = "TIMECREDITS_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The file to write (replaced atomically when complete).
        #[arg(long)]
        out: PathBuf,
        /// The first entry to include (default 0: a full export).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Export up to this tree size, which must have a signed checkpoint (default: latest).
        #[arg(long)]
        size: Option<u64>,
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
        Command::Export {
            data_dir,
            out,
            from,
            size,
        } => match export(&data_dir, &out, ExportRange { from, size }) {
            Ok(summary) => {
                eprintln!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("timecredits export: {e}");
                ExitCode::FAILURE
            }
        },
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

/// Writes an export to a temporary file beside `out`, syncs it, and renames it into place, so
/// `out` is either the previous file or the complete new export.
fn export(data_dir: &Path, out: &Path, range: ExportRange) -> Result<String, LedgerError> {
    // The origin was fixed when the ledger was created; a directory without it holds no ledger.
    let origin = std::fs::read_to_string(data_dir.join(timecredits_ledger::layout::ORIGIN))
        .map_err(|e| {
            LedgerError::Io(std::io::Error::new(
                e.kind(),
                format!("{} holds no ledger: {e}", data_dir.display()),
            ))
        })?;
    let config = LedgerConfig {
        origin: origin.trim_end().to_owned(),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(data_dir, config)?;
    let export = ledger.export(range)?;
    let header = export.header().clone();
    let tmp = out.with_extension("partial");
    let file = std::fs::File::create(&tmp)?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let bytes = export.write_to(&ledger, &mut writer)?;
    writer.flush()?;
    writer.get_ref().sync_all()?;
    drop(writer);
    std::fs::rename(&tmp, out)?;
    Ok(format!(
        "wrote {} entries ({}..{}), {bytes} bytes, to {}; verify with: timecredits-audit verify --key '{}' {}",
        header.size - header.from,
        header.from,
        header.size,
        out.display(),
        ledger.verifier_key(),
        out.display()
    ))
}
