//! `timecredits`: the service and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Write;
use std::path::Path;

use clap::{Parser, Subcommand};
use timecredits_domain::IdempotencyKey;
use timecredits_ledger::{ExportRange, Ledger, LedgerConfig, LedgerError};
use timecredits_server::backup::BackupError;
use timecredits_server::config::{self, Config, ConfigError, LogFormat};
use timecredits_server::data_dir::{self, DataDirError, DirLock};
use timecredits_server::registry::Registry;
use timecredits_server::{bind, openapi, Settings};
use uuid::Uuid;

/// mimalloc rather than the system allocator: every commit allocates and frees many small
/// buffers (entries, sled nodes, JSON bodies) across threads, and glibc's malloc spent about a
/// sixth of the ledger applier's time in a profile of the earn benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The version `--version` prints: the crate's, and the git commit it was built from (see
/// `build.rs`; "unknown" when built outside a git checkout).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TIMECREDITS_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "timecredits",
    version = VERSION,
    about = "A verifiable ledger service for time-credit schemes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the REST service (creates the data directory, keys and an administrator API key on
    /// first run). Every setting can come from a flag, an environment variable or the file named
    /// by --config, in that order of precedence (docs/configuration.md).
    Serve {
        #[command(flatten)]
        flags: config::Flags,
    },
    /// Check a configuration and print the effective one (every setting, with where it could
    /// be set), without starting anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check a stopped ledger: every journal record against its checksum and the signed Merkle
    /// tree, and the state against a replay of every entry. Exit status 0: sound; 1: damage
    /// found (listed); 2: the check could not run.
    Check {
        /// The data directory of the ledger.
        #[arg(long, env = "TIMECREDITS_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Write an auditor's export of the ledger (run it while the service is stopped: the data
    /// directory is locked by a running service, whose `GET /v1/ledger/export` gives the same
    /// export). Verify it with `timecredits-audit verify`.
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
    /// Hand checkpoint signing over to a new key (run it while the service is stopped). The
    /// ledger records a `key` entry naming the new key, endorsed by the current one; from then
    /// on checkpoints are signed by the new key, and for the overlap (`serve
    /// --key-overlap-days`) by the previous key too. Give auditors the new verifier key.
    /// Refused while the last rotation's overlap runs: one rotation per overlap.
    RotateKey {
        /// The data directory of the ledger.
        #[arg(long, env = "TIMECREDITS_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The overlap the service runs with (`serve --key-overlap-days`): a rotation is refused
        /// until the last one's overlap has ended.
        #[arg(long, env = "TIMECREDITS_KEY_OVERLAP_DAYS", default_value_t = 30)]
        key_overlap_days: u32,
    },
    /// Replace the server secret credentials are derived with (run it while the service is
    /// stopped). Credentials already handed out keep working; repeats of earlier registrations
    /// no longer show them; new and reissued credentials use the new secret. After a leak of the
    /// secret, also reissue every member credential and replace every API key (see SECURITY.md).
    RotateServerSecret {
        /// The data directory of the service.
        #[arg(long, env = "TIMECREDITS_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Write a backup of the data directory while the service runs (or not): one compressed
    /// archive with the journal up to a consistent point, the registry, the keys and secrets,
    /// and a manifest of checksums. The state is left out (a restore rebuilds it). Keep
    /// backups as safe as the server: they hold the signing key and the server secret.
    Backup {
        /// The data directory of the service.
        #[arg(long, env = "TIMECREDITS_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// The archive to write (replaced atomically when complete), e.g. backup.tar.gz.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into a new or empty data directory (never over an existing one): checks
    /// every file against the manifest, rebuilds the state from the journal and opens the result
    /// as `serve` would, before it puts the directory in place.
    Restore {
        /// The archive written by `timecredits backup`.
        #[arg(long)]
        from: PathBuf,
        /// The data directory to create.
        #[arg(long, env = "TIMECREDITS_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Print the OpenAPI document (the content of openapi/openapi.json).
    Openapi,
}

/// `timecredits config …`.
#[derive(Subcommand)]
enum ConfigCommand {
    /// Read the configuration as `serve` would (file, environment, flags), check every value,
    /// and print the effective configuration as a TOML file. Exit status 0: valid; 1: refused.
    Check {
        #[command(flatten)]
        flags: config::Flags,
    },
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    // The service logs in the format its configuration chooses, once that is read; operator
    // commands log for the person running them.
    let _operator_log =
        (!matches!(command, Command::Serve { .. })).then(|| init_logging(LogFormat::Text));
    match command {
        Command::Serve { flags } => match Config::load(flags) {
            Ok(config) => {
                let _log = init_logging(config.log_format);
                match config.settings() {
                    Ok(settings) => serve(&settings),
                    Err(e) => refuse_config(&e),
                }
            }
            Err(e) => refuse_config(&e),
        },
        Command::Config(ConfigCommand::Check { flags }) => match Config::load(flags) {
            Ok(config) => {
                print!("{}", config.to_toml());
                eprintln!("the configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => refuse_config(&e),
        },
        Command::Check { data_dir } => check(&data_dir),
        Command::Export {
            data_dir,
            out,
            from,
            size,
        } => report(
            "export",
            export(&data_dir, &out, ExportRange { from, size })
                .map_err(|e| e.or_while_running("use GET /v1/ledger/export")),
        ),
        Command::RotateKey {
            data_dir,
            key_overlap_days,
        } => report(
            "rotate-key",
            rotate_key(&data_dir, chrono::Duration::days(key_overlap_days.into()))
                .map_err(|e| e.or_while_running("use POST /v1/key-rotations")),
        ),
        Command::RotateServerSecret { data_dir } => {
            report("rotate-server-secret", rotate_server_secret(&data_dir))
        }
        Command::Backup { data_dir, out } => report("backup", backup(&data_dir, &out)),
        Command::Restore { from, data_dir } => report("restore", restore(&from, &data_dir)),
        Command::Openapi => {
            print!("{}", openapi::document());
            ExitCode::SUCCESS
        }
    }
}

/// Sends the log to stderr in `format`, filtered by `RUST_LOG` (default `info`). Colour only on a
/// terminal, and never when `NO_COLOR` is set (no-color.org): a log file or collector gets plain
/// text.
///
/// Lines are formatted where they happen but written by a thread of their own, through a buffer
/// it flushes whenever it has caught up: with an access-log line per request, one `write` per
/// line on the HTTP workers cost a fifth of the earn throughput. Nothing is dropped (a full
/// queue makes the logger wait), and the returned guard flushes what is left when dropped.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 << 10,
            std::io::stderr(),
        ));
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(timecredits_server::security::ClientErrorsBelowError);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(writer)
                        .with_ansi(colour),
                )
                .init();
        }
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(writer),
            )
            .init(),
    }
    guard
}

/// Prints why the configuration was refused.
fn refuse_config(error: &ConfigError) -> ExitCode {
    eprintln!("timecredits: the configuration is refused: {error}");
    ExitCode::FAILURE
}

/// Prints an operator command's summary, or its error.
fn report<E: std::fmt::Display>(command: &str, result: Result<String, E>) -> ExitCode {
    match result {
        Ok(summary) => {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("timecredits {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: &Settings) -> ExitCode {
    let system = actix_web::rt::System::new();
    let result = system.block_on(async { bind(settings)?.run().await });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timecredits: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
enum OperatorError {
    /// The data directory is in use by the service, or in a newer format.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The ledger refused to open, or the operation failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Writing the command's output failed.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// The file being written.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl OperatorError {
    /// The message, and for a directory in use by the service, what does the same while it runs.
    fn or_while_running(&self, alternative: &str) -> String {
        match self {
            OperatorError::DataDir(DataDirError::InUse { .. }) => {
                format!("{self}, or {alternative}")
            }
            _ => self.to_string(),
        }
    }
}

/// The existing ledger of a data directory, opened by an operator command, and the directory's
/// lock; the ledger is declared first, so that it is closed before the lock is released.
struct Opened {
    ledger: Ledger,
    _lock: DirLock,
}

/// Opens the existing ledger in `data_dir` for an operator command; refuses while the service
/// (or another command) holds the directory, naming its process.
fn open_existing(data_dir: &Path, key_overlap: chrono::Duration) -> Result<Opened, OperatorError> {
    let origin_path = data_dir.join(timecredits_ledger::layout::ORIGIN);
    // The origin was fixed when the ledger was created; a directory without it (or a format
    // file, in case a later format moves it) holds no ledger, and is left as it is.
    if !origin_path.exists() && !data_dir.join(data_dir::layout::FORMAT).exists() {
        return Err(LedgerError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} holds no ledger (there is no {})",
                data_dir.display(),
                origin_path.display()
            ),
        ))
        .into());
    }
    // Files the ledger creates (sled's) are private, as when the service runs.
    timecredits_server::security::private_data_dir(data_dir).map_err(LedgerError::Io)?;
    let lock = data_dir::claim(data_dir)?;
    let origin = std::fs::read_to_string(&origin_path).map_err(|e| {
        LedgerError::Io(std::io::Error::new(
            e.kind(),
            format!("{} holds no ledger: {e}", data_dir.display()),
        ))
    })?;
    let config = LedgerConfig {
        origin: origin.trim_end().to_owned(),
        key_overlap,
        ..LedgerConfig::default()
    };
    Ok(Opened {
        ledger: Ledger::open(data_dir, config)?,
        _lock: lock,
    })
}

/// Writes an export to a temporary file beside `out`, syncs it, and renames it into place, so
/// `out` is either the previous file or the complete new export.
fn export(data_dir: &Path, out: &Path, range: ExportRange) -> Result<String, OperatorError> {
    let opened = open_existing(data_dir, LedgerConfig::default().key_overlap)?;
    let ledger = &opened.ledger;
    let export = ledger.export(range)?;
    let header = export.header().clone();
    let tmp = out.with_extension("partial");
    let output = |source| OperatorError::Output {
        path: tmp.clone(),
        source,
    };
    let file = std::fs::File::create(&tmp).map_err(output)?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let bytes = export.write_to(ledger, &mut writer)?;
    writer.flush().map_err(output)?;
    writer.get_ref().sync_all().map_err(output)?;
    drop(writer);
    std::fs::rename(&tmp, out).map_err(|source| OperatorError::Output {
        path: out.to_owned(),
        source,
    })?;
    Ok(format!(
        "wrote {} entries ({}..{}), {bytes} bytes, to {}; verify with: timecredits-audit verify --key '{}' {}",
        header.size - header.from,
        header.from,
        header.size,
        out.display(),
        header.verifier_key,
        out.display()
    ))
}

/// Runs the full integrity check of the ledger in `data_dir`, with a progress bar on a terminal.
fn check(data_dir: &Path) -> ExitCode {
    let opened = match open_existing(data_dir, LedgerConfig::default().key_overlap) {
        Ok(opened) => opened,
        Err(OperatorError::Ledger(e)) => {
            // Opening already refuses a journal damaged at its end, a lost tail, another
            // ledger's key or journal: that is damage, not a failure to run.
            eprintln!("timecredits check: the ledger does not open: {e}");
            return match e {
                LedgerError::Corrupt(_)
                | LedgerError::Journal(_)
                | LedgerError::LostTail { .. }
                | LedgerError::Key(_) => ExitCode::from(1),
                _ => ExitCode::from(2),
            };
        }
        Err(e) => {
            eprintln!("timecredits check: {e}");
            return ExitCode::from(2);
        }
    };
    let ledger = &opened.ledger;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} entries {eta}")
            .expect("a valid template"),
    );
    let result = ledger.check(|done, all| {
        bar.set_length(all);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    match result {
        Ok(report) if report.is_sound() => {
            eprintln!(
                "sound: {} entries ({} journal bytes) match the signed tree, and a replay of \
                 them gives the state of all {} accounts",
                report.entries, report.bytes, report.accounts
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            eprintln!(
                "DAMAGED: {} entries checked, {} problems found{}:",
                report.entries,
                report.damage.len(),
                if report.damage.len() == timecredits_ledger::check::MAX_LISTED {
                    " (the first of them)"
                } else {
                    ""
                }
            );
            for problem in &report.damage {
                eprintln!("  {problem}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("timecredits check: {e}");
            ExitCode::from(2)
        }
    }
}

/// Rotates the server secret of the registry in `data_dir`, holding the ledger's lock so that a
/// running service cannot be writing the registry meanwhile.
fn rotate_server_secret(data_dir: &Path) -> Result<String, String> {
    let _opened =
        open_existing(data_dir, LedgerConfig::default().key_overlap).map_err(|e| e.to_string())?;
    Registry::rotate_secret(data_dir).map_err(|e| e.to_string())
}

/// Rotates the signing key of the ledger in `data_dir`.
fn rotate_key(data_dir: &Path, key_overlap: chrono::Duration) -> Result<String, OperatorError> {
    let opened = open_existing(data_dir, key_overlap)?;
    let ledger = &opened.ledger;
    let previous = ledger.verifier_key();
    // The operator acts as the nil actor, as at genesis; each run is a new request.
    let key =
        IdempotencyKey::new(format!("rotate-key-{}", Uuid::now_v7())).map_err(LedgerError::from)?;
    let (vkey, committed) = ledger.rotate_key(Uuid::nil(), key)?;
    Ok(format!(
        "rotated the signing key at entry {seq}\n  previous key: {previous}\n  new key:      {vkey}\n\
         Checkpoints are signed by the new key, and during the overlap (serve --key-overlap-days) \
         by the previous key too.\nGive auditors the new key; `timecredits-audit verify` follows the \
         hand-over from the previous key by itself.",
        seq = committed.entries[0].seq,
    ))
}

/// Writes a backup of `data_dir` to `out`.
fn backup(data_dir: &Path, out: &Path) -> Result<String, BackupError> {
    let written = timecredits_server::backup::create(data_dir, out)?;
    let manifest = &written.manifest;
    Ok(format!(
        "wrote a backup of {} entries (tree root {}; signed-tree at {} entries) and {} files, \
         {} bytes, to {}; restore it with: timecredits restore --from {} --data-dir NEW_DIR",
        manifest.entries,
        manifest.root,
        manifest.signed_size,
        manifest.files.len() + 1,
        written.bytes,
        out.display(),
        out.display()
    ))
}

/// Restores the backup `archive` into `data_dir`.
fn restore(archive: &Path, data_dir: &Path) -> Result<String, BackupError> {
    let restored = timecredits_server::backup::restore(archive, data_dir)?;
    Ok(format!(
        "restored {} entries (origin {}, backup of {}) into {}; its state is rebuilt and it \
         opens: start the service on it",
        restored.size,
        restored.manifest.origin,
        restored.manifest.created.to_rfc3339(),
        data_dir.display()
    ))
}
