//! The `timecredits-audit` command: argument parsing, the progress bar and exit codes around the
//! library. Exit 0: valid; 1: invalid (the first failure is printed); 2: unusable input or
//! arguments.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use timecredits_audit::report::{report_file, Derived};
use timecredits_audit::{
    proofs, render, verify_file, Trust, UsageError, VerifyOptions, EXIT_INVALID, EXIT_UNUSABLE,
    EXIT_VALID,
};
use timecredits_domain::report::{write_csv, write_json, DateBasis, Period, ReportSpec, Zone};
use uuid::Uuid;

/// Verifies a timecredits ledger's exports, receipts and consistency proofs offline.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The keys and origin to trust.
#[derive(Args)]
struct TrustArgs {
    /// A verifier key of the ledger (C2SP `name+keyid+base64`), obtained out of band. Repeat it
    /// to accept several keys (during a key rotation).
    #[arg(long = "key", value_name = "VKEY", required = true)]
    keys: Vec<String>,
    /// The log's origin; by default the first key's name.
    #[arg(long)]
    origin: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Verify an export: signature, every entry, the Merkle root, and a replay of the rules.
    Verify {
        #[command(flatten)]
        trust: TrustArgs,
        /// A checkpoint kept from before (signed note file): prove that this export extends it.
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        since: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// The export file.
        export: PathBuf,
    },
    /// Verify a full export as `verify` does, then print the ledger's impact report computed from
    /// it (docs/reports.md defines every figure). Nothing is printed unless the export verifies.
    Report {
        #[command(flatten)]
        trust: TrustArgs,
        /// The length of the periods: day, week (ISO, from Monday), month, quarter or year.
        #[arg(long, default_value = "month")]
        period: Period,
        /// Which date places a movement in a period: effective (the day the time was given or
        /// used) or recorded (the local day, in --tz, of the time the ledger wrote it).
        #[arg(long, default_value = "effective")]
        date: DateBasis,
        /// The time zone of local days for --date recorded: an IANA name, UTC, or +HH:MM.
        #[arg(long, default_value = "UTC")]
        tz: Zone,
        /// The first day to report on (YYYY-MM-DD, inclusive).
        #[arg(long)]
        from: Option<NaiveDate>,
        /// The last day to report on (YYYY-MM-DD, inclusive).
        #[arg(long)]
        to: Option<NaiveDate>,
        /// Only this partner's rows (its earn, budget and spend figures).
        #[arg(long, value_name = "UUID")]
        partner: Option<Uuid>,
        /// Only the earn and spend rows of this activity.
        #[arg(long)]
        activity: Option<String>,
        /// csv (RFC 4180) or json.
        #[arg(long, default_value = "csv")]
        format: Format,
        /// The export file.
        export: PathBuf,
    },
    /// Verify a receipt (a c2sp.org/tlog-proof@v1 carrying the entry) and print the entry.
    Receipt {
        #[command(flatten)]
        trust: TrustArgs,
        /// The receipt file.
        file: PathBuf,
    },
    /// Verify a consistency proof between two signed checkpoints.
    Consistency {
        #[command(flatten)]
        trust: TrustArgs,
        /// The older checkpoint (signed note file).
        old_checkpoint: PathBuf,
        /// The newer checkpoint (signed note file).
        new_checkpoint: PathBuf,
        /// The proof: one base64 hash per line, or the JSON {"from":M,"to":N,"proof":[…]}.
        proof_file: PathBuf,
    },
}

/// mimalloc rather than the system allocator: a verification allocates and frees a few short
/// strings per entry on several threads, in batches that glibc's per-thread caches do not hold,
/// and mimalloc does it with about a fifth less CPU on a 10-million-entry export.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok((text, valid)) => {
            print!("{text}");
            ExitCode::from(if valid { EXIT_VALID } else { EXIT_INVALID } as u8)
        }
        Err(e) => {
            eprintln!("timecredits-audit: {e}");
            ExitCode::from(EXIT_UNUSABLE as u8)
        }
    }
}

/// Runs a command and returns what to print and whether the evidence is valid.
fn run(command: Command) -> Result<(String, bool), UsageError> {
    match command {
        Command::Verify {
            trust,
            since,
            json,
            export,
        } => {
            let trust = trust.trust()?;
            let kept = since.map(|path| trust.open_file(&path)).transpose()?;
            let bar = progress_bar();
            let progress = progress_of(&bar);
            let options = VerifyOptions {
                since: kept.as_ref(),
                threads: 0,
                progress: Some(&progress),
                each_entry: None,
            };
            let report = verify_file(&export, &trust, &options)?;
            bar.finish_and_clear();
            let text = if json {
                let mut text = serde_json::to_string_pretty(&report.to_json())
                    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
                text.push('\n');
                text
            } else {
                render::report(&report)
            };
            Ok((text, report.is_valid()))
        }
        Command::Report {
            trust,
            period,
            date,
            tz,
            from,
            to,
            partner,
            activity,
            format,
            export,
        } => {
            let spec = ReportSpec {
                period,
                basis: date,
                zone: tz,
                from,
                to,
                partner,
                activity,
            };
            let bar = progress_bar();
            let progress = progress_of(&bar);
            let derived = report_file(&export, &trust.trust()?, &spec, Some(&progress))?;
            bar.finish_and_clear();
            match derived {
                Derived::Invalid(verified) => Ok((render::report(&verified), false)),
                Derived::Report(report) => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    match format {
                        Format::Csv => write_csv(&report, &mut out),
                        Format::Json => write_json(&report, &mut out),
                    }
                    .and_then(|()| out.flush())
                    .map_err(|source| UsageError::Io {
                        path: "standard output".into(),
                        source,
                    })?;
                    Ok((String::new(), true))
                }
            }
        }
        Command::Receipt { trust, file } => {
            let result = proofs::verify_receipt(&file, &trust.trust()?)?;
            Ok((render::receipt(&result), result.is_ok()))
        }
        Command::Consistency {
            trust,
            old_checkpoint,
            new_checkpoint,
            proof_file,
        } => {
            let result = proofs::verify_consistency(
                &trust.trust()?,
                &old_checkpoint,
                &new_checkpoint,
                &proof_file,
            )?;
            Ok((render::consistency(&result), result.is_ok()))
        }
    }
}

/// How to write a report.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Json,
}

impl TrustArgs {
    fn trust(&self) -> Result<Trust, UsageError> {
        Trust::new(&self.keys, self.origin.as_deref())
    }
}

/// What updates `bar` with the entries checked and the entries to check.
fn progress_of(bar: &ProgressBar) -> impl Fn(u64, u64) + Sync + '_ {
    |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal. Its length (the entries to
/// check) comes with each update.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {human_pos}/{human_len} entries checked [{bar:30}] eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}
