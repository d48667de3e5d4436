//! `timecredits-loadgen`: drives a running timecredits service over HTTP and reports
//! throughput and latency percentiles.
//!
//! It sets up what a real scheme would have (a new earn partner with its own API key, a large
//! allocation to its budget, and `--members` members), then, for each scenario, holds
//! `--connections` keep-alive connections busy for `--warmup` + `--duration` seconds, one request
//! outstanding per connection (a closed loop, like wrk and pgbench):
//! - `earn`: `POST /v1/earn` of one minute to a member, each with a new `Idempotency-Key`;
//! - `balance`: `GET /v1/accounts/{id}` by members reading their own wallet with their credential;
//! - `receipt`: `GET /v1/entries/{id}/receipt` by members fetching the receipt (inclusion proof and
//!   signed checkpoint) of the entry that opened their wallet.
//!
//! Only requests started after the warm-up count. The summary gives requests/s, latency
//! percentiles, and the CPU the generator, the server (`--server-pid`) and everything else used
//! during the window, because on a small machine the generator competes with the server.

mod conn;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use crate::conn::{bearer, Conn};
use crate::stats::{CpuSnapshot, CpuUse, Latency};

/// Any failure of the generator itself (not of a measured request).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug)]
#[command(
    name = "timecredits-loadgen",
    version,
    about = "Load generator for the timecredits REST service"
)]
struct Cli {
    /// The service's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// A file holding an administrator API key (the service writes one to
    /// `<data dir>/admin-api-key` on first run).
    #[arg(long)]
    admin_key_file: PathBuf,
    /// Concurrent keep-alive connections, each with one request outstanding.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (connections warm, caches filled).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Members registered at setup; the load spreads over them.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Requests per second in all, spread evenly over the connections (default: as fast as the
    /// service answers). A steady rate is what a soak needs: memory is watched, not speed.
    #[arg(long)]
    rate: Option<f64>,
    /// Generator threads. One is the least CPU taken from the server on a 2-core machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How many times to run the scenarios, in order, on the one setup. A soak uses many
    /// rounds so that its members, partner and key are registered once, not once per round.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// The scenarios to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "earn,balance,receipt"
    )]
    scenario: Vec<Scenario>,
    /// The server's process id, to report the CPU it used during each window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write one member's account path and credential (JSON) to this file, so that another
    /// tool (wrk) can read the same balance.
    #[arg(long)]
    member_out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Scenario {
    /// `POST /v1/earn`, a new idempotency key each time.
    Earn,
    /// `GET /v1/accounts/{id}` with the member's own credential.
    Balance,
    /// `GET /v1/entries/{id}/receipt` of the entry that opened the member's wallet, with the
    /// member's own credential: an inclusion proof and the signed checkpoint.
    Receipt,
}

impl Scenario {
    fn expected(self) -> StatusCode {
        match self {
            Scenario::Earn => StatusCode::CREATED,
            Scenario::Balance | Scenario::Receipt => StatusCode::OK,
        }
    }
}

/// What setup created.
struct Fixture {
    /// A unique prefix for this run's idempotency keys.
    run: String,
    /// Earns sent so far, in every round: each gets the next number in its idempotency key, so
    /// a later round's earns are new requests, not repeats of the first round's.
    earns: std::sync::atomic::AtomicU64,
    partner_auth: HeaderValue,
    members: Vec<MemberFixture>,
}

struct MemberFixture {
    id: String,
    credential: String,
    auth: HeaderValue,
    account_path: String,
    receipt_path: String,
}

/// The results of one scenario.
#[derive(Debug, Serialize)]
struct Report {
    scenario: Scenario,
    connections: usize,
    duration_s: f64,
    requests: u64,
    /// Responses with another status than expected, or transport failures.
    errors: u64,
    requests_per_s: f64,
    #[serde(flatten)]
    latency: Latency,
    #[serde(flatten)]
    cpu: CpuUse,
    /// Up to a few unexpected responses, for diagnosis.
    error_samples: Vec<String>,
}

/// What one connection's task measured.
#[derive(Default)]
struct TaskResult {
    micros: Vec<u32>,
    errors: u64,
    samples: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    };
    let result = runtime
        .map_err(Error::from)
        .and_then(|rt| rt.block_on(run(&cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timecredits-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<(), Error> {
    let admin_key = std::fs::read_to_string(&cli.admin_key_file)
        .map_err(|e| format!("reading {}: {e}", cli.admin_key_file.display()))?;
    let started = Instant::now();
    let fixture = Arc::new(setup(cli, admin_key.trim()).await?);
    eprintln!(
        "setup: partner, key, allocation and {} members in {:.1} s",
        fixture.members.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &cli.member_out {
        let member = &fixture.members[0];
        let out = json!({"account_path": member.account_path, "credential": member.credential});
        std::fs::write(path, out.to_string())?;
    }
    let mut reports = Vec::new();
    for _ in 0..cli.rounds {
        for &scenario in &cli.scenario {
            let report = measure(cli, &fixture, scenario).await?;
            print_report(&report);
            reports.push(report);
        }
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&reports)?)?;
    }
    Ok(())
}

/// POSTs JSON (or nothing) and returns the parsed answer, which must be a 201.
async fn create(
    conn: &mut Conn,
    path: &str,
    auth: &HeaderValue,
    key: &str,
    body: Option<Value>,
) -> Result<Value, Error> {
    let body = body.map(|b| Bytes::from(b.to_string()));
    let (status, answer) = conn.send(Method::POST, path, auth, Some(key), body).await?;
    if status != StatusCode::CREATED {
        return Err(format!(
            "POST {path} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        )
        .into());
    }
    Ok(serde_json::from_slice(&answer)?)
}

fn field<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, Error> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the answer has no {pointer}: {value}").into())
}

/// Creates the partner, its key, its budget and the members.
async fn setup(cli: &Cli, admin_key: &str) -> Result<Fixture, Error> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let run = format!("loadgen-{nanos:x}");
    let admin = bearer(admin_key)?;
    let mut conn = Conn::open(cli.addr).await?;
    let partner = create(
        &mut conn,
        "/v1/partners",
        &admin,
        &format!("{run}-partner"),
        Some(json!({"name": format!("load generator {run}"), "roles": ["earn"]})),
    )
    .await?;
    let partner_id = field(&partner, "/partner/id")?.to_owned();
    let key = create(
        &mut conn,
        "/v1/api-keys",
        &admin,
        &format!("{run}-key"),
        Some(json!({"label": run, "holder": {"kind": "partner", "id": partner_id}})),
    )
    .await?;
    let partner_auth = bearer(field(&key, "/secret")?)?;
    // The most one movement may carry (1,000,000 credits): enough for 60 million one-minute
    // earns, far more than any run makes.
    create(
        &mut conn,
        "/v1/allocations",
        &admin,
        &format!("{run}-allocation"),
        Some(json!({"partner_id": partner_id, "hours": 1_000_000})),
    )
    .await?;
    // Registration is itself a durable write; doing it over many connections lets the ledger's
    // group commit share the syncs, as under real load.
    let workers = cli.connections.clamp(1, 64);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (addr, run, auth) = (cli.addr, run.clone(), partner_auth.clone());
        let count = (cli.members + workers - 1 - w) / workers;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut members = Vec::with_capacity(count);
            for i in 0..count {
                let key = format!("{run}-member-{w}-{i}");
                let member = create(&mut conn, "/v1/members", &auth, &key, None).await?;
                let id = field(&member, "/member_id")?.to_owned();
                let credential = field(&member, "/credential")?.to_owned();
                let opened = field(&member, "/entry/id")?;
                members.push(MemberFixture {
                    account_path: format!("/v1/accounts/{id}"),
                    receipt_path: format!("/v1/entries/{opened}/receipt"),
                    auth: bearer(&credential)?,
                    credential,
                    id,
                });
            }
            Ok::<_, Error>(members)
        }));
    }
    let mut members = Vec::with_capacity(cli.members);
    for task in tasks {
        members.extend(task.await??);
    }
    if members.is_empty() {
        return Err("--members must be at least 1".into());
    }
    Ok(Fixture {
        run,
        earns: Default::default(),
        partner_auth,
        members,
    })
}

/// Runs one scenario over all connections and summarises the measured window.
async fn measure(cli: &Cli, fixture: &Arc<Fixture>, scenario: Scenario) -> Result<Report, Error> {
    // Connect everything first, so connection setup is not part of the measurement.
    let mut conns = Vec::with_capacity(cli.connections);
    for _ in 0..cli.connections {
        conns.push(Conn::open(cli.addr).await?);
    }
    let warmup = Duration::from_secs_f64(cli.warmup);
    let window = Duration::from_secs_f64(cli.duration);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let mut tasks = Vec::with_capacity(conns.len());
    // Each connection's share of the rate: one request every `pace`.
    let pace = cli
        .rate
        .filter(|r| *r > 0.0)
        .map(|rate| Duration::from_secs_f64(cli.connections as f64 / rate));
    for (c, conn) in conns.into_iter().enumerate() {
        let fixture = Arc::clone(fixture);
        let connections = cli.connections;
        tasks.push(tokio::spawn(async move {
            let span = Span {
                measure_from,
                end,
                pace,
            };
            drive(conn, &fixture, scenario, c, connections, span).await
        }));
    }
    let pid = cli.server_pid;
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_start = CpuSnapshot::take(pid);
    tokio::time::sleep_until(end.into()).await;
    let cpu_end = CpuSnapshot::take(pid);
    let mut all = TaskResult::default();
    for task in tasks {
        let mut result = task.await?;
        all.micros.append(&mut result.micros);
        all.errors += result.errors;
        if all.samples.len() < 5 {
            all.samples.extend(result.samples);
        }
    }
    all.samples.truncate(5);
    let requests = all.micros.len() as u64;
    Ok(Report {
        scenario,
        connections: cli.connections,
        duration_s: window.as_secs_f64(),
        requests,
        errors: all.errors,
        requests_per_s: requests as f64 / window.as_secs_f64(),
        latency: Latency::of(&mut all.micros),
        cpu: CpuUse::between(cpu_start, cpu_end, window),
        error_samples: all.samples,
    })
}

/// When a connection sends: from the start until `end`, counting from `measure_from`, at most one
/// request every `pace` if set.
#[derive(Clone, Copy)]
struct Span {
    measure_from: Instant,
    end: Instant,
    pace: Option<Duration>,
}

/// One connection's closed loop: send, wait for the whole answer, record, repeat until the end
/// of `span` (paced when it says so).
async fn drive(
    mut conn: Conn,
    fixture: &Fixture,
    scenario: Scenario,
    c: usize,
    connections: usize,
    span: Span,
) -> TaskResult {
    let Span {
        measure_from,
        end,
        pace,
    } = span;
    let first = Instant::now();
    let mut result = TaskResult {
        micros: Vec::with_capacity(1 << 16),
        ..TaskResult::default()
    };
    let members = &fixture.members;
    // Each connection walks the members from its own offset, so concurrent requests touch
    // different members (the earn partner's budget is shared by all, as in a real scheme).
    let mut member = c % members.len();
    let mut n: u64 = 0;
    loop {
        if let Some(pace) = pace {
            // A steady rate: the n-th request is due n paces after the first, whatever the
            // answers took (a late one is sent at once, not skipped).
            let due = first + pace.mul_f64(n as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let m = &members[member];
        member = (member + connections) % members.len();
        n += 1;
        let outcome = match scenario {
            Scenario::Earn => {
                let serial = fixture
                    .earns
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let key = format!("{}-earn-{serial}", fixture.run);
                let body = format!(
                    r#"{{"member_id":"{}","minutes":1,"activity":"load test"}}"#,
                    m.id
                );
                conn.send(
                    Method::POST,
                    "/v1/earn",
                    &fixture.partner_auth,
                    Some(&key),
                    Some(Bytes::from(body)),
                )
                .await
            }
            Scenario::Balance => {
                conn.send(Method::GET, &m.account_path, &m.auth, None, None)
                    .await
            }
            Scenario::Receipt => {
                conn.send(Method::GET, &m.receipt_path, &m.auth, None, None)
                    .await
            }
        };
        let elapsed = sent.elapsed();
        let counted = sent >= measure_from;
        match outcome {
            Ok((status, _)) if status == scenario.expected() => {
                if counted {
                    result
                        .micros
                        .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                }
            }
            Ok((status, body)) => {
                if counted {
                    result.errors += 1;
                }
                if result.samples.len() < 2 {
                    result.samples.push(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ));
                }
            }
            Err(e) => {
                if counted {
                    result.errors += 1;
                }
                if result.samples.len() < 2 {
                    result.samples.push(format!("transport: {e}"));
                }
                // The connection is gone: open another and go on (it counts as an error).
                match Conn::open(conn.addr()).await {
                    Ok(fresh) => conn = fresh,
                    Err(_) => break,
                }
            }
        }
    }
    result
}

fn print_report(r: &Report) {
    let cores = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |c| format!("{c:.2}"));
    println!(
        "{:?}: {} connections, {:.0} s: {} requests, {} errors, {:.0} req/s; latency ms \
         p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} mean {:.2}; CPU cores: loadgen \
         {:.2}, server {}, others {}, machine {}",
        r.scenario,
        r.connections,
        r.duration_s,
        r.requests,
        r.errors,
        r.requests_per_s,
        r.latency.p50_ms,
        r.latency.p90_ms,
        r.latency.p99_ms,
        r.latency.p999_ms,
        r.latency.max_ms,
        r.latency.mean_ms,
        r.cpu.loadgen_cores,
        cores(r.cpu.server_cores),
        cores(r.cpu.other_cores),
        cores(r.cpu.machine_cores),
    );
    for sample in &r.error_samples {
        println!("  unexpected answer: {sample}");
    }
}
