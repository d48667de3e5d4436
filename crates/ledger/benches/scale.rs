//! The ledger's figures at scale, against the performance targets of the core ledger issue:
//!
//! - throughput with 64 concurrent submitters (tokio tasks calling [`Ledger::submit`]);
//! - the latency of one durable commit at low load (one submitter);
//! - the time to open a store of 1,000,000 entries, after a clean close (page cache warm, and
//!   with the store's files evicted from it) and after a `kill -9` in the middle of writes;
//! - a balance read on a small store and on the large one (it must not grow with the log);
//! - disk bytes per entry and resident memory at 1,000,000 entries;
//! - an impact report over the large store as the service computes it (read, decode, tally,
//!   CSV), with the front-to-back scan [`Ledger::entries`] and with [`Ledger::entry`] per entry,
//!   and the programme office's cached report brought forward by one batch.
//!
//! The large store is built once, through the public API by 64 submitters, and kept in
//! `<target>/bench-data/ledger-<entries>/` for later runs; the kill test works on a copy.
//! Opens and the kill test run in child processes (this program, started with `--child-open` or
//! `--child-load`), so that each open is a fresh process and memory is measured alone.
//!
//! Environment: `TIMECREDITS_BENCH_ENTRIES` (default 1000000) sizes the large store, and
//! `TIMECREDITS_BENCH_SECONDS` (default 5) the throughput run; see `benches/README.md`.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use timecredits_domain::report::{write_csv, ReportSpec, Tally};
use timecredits_domain::{AccountId, Entry, Minutes, MovementKind};
use timecredits_ledger::store::LAYOUT;
use timecredits_ledger::{Ledger, LedgerError, Request};
use uuid::Uuid;

use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::Scheme;
use timecredits_testkit::rng::Rng;

/// The allocator the `timecredits` binary uses, so that the figures are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent submitters in the throughput run, the large-store build and the kill test.
const SUBMITTERS: usize = 64;
/// Member accounts in every ledger measured. The same number in the small and the large store,
/// so that comparing their balance reads compares the sizes of the logs alone.
const MEMBERS: usize = 10_000;
/// Opens measured after a clean close, with the page cache warm, and then with the store's files
/// evicted from it.
const OPENS: usize = 4;
const COLD_OPENS: usize = 3;
/// Kill-and-reopen cycles.
const KILLS: usize = 3;
/// Bump when the large store must be rebuilt because the mix changed. (A change of the state's
/// layout rebuilds it too: the version line names [`LAYOUT`].)
const DATA_VERSION: &str = "timecredits-bench-store v1";
/// The file in the large store's directory that says it is complete and lists its accounts.
const SCHEME_FILE: &str = "bench-scheme";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("--child-open"), Some(dir)) => return child_open(Path::new(dir)),
        (Some("--child-load"), Some(dir)) => return child_load(Path::new(dir)),
        _ => {}
    }
    let entries = env_number("TIMECREDITS_BENCH_ENTRIES", 1_000_000);
    let seconds = env_number("TIMECREDITS_BENCH_SECONDS", 5);
    // Like criterion, the first argument that is not an option selects parts by name.
    let filter = args[1..].iter().find(|a| !a.starts_with('-'));
    let selected = |part: &str| filter.is_none_or(|f| part.contains(f.as_str()));
    let load_before = load_average();
    let mut table = Table::default();

    if selected("latency") {
        low_load(&mut table);
    }
    if selected("throughput") {
        throughput(&mut table, seconds);
    }
    if selected("store") {
        large_store(&mut table, entries);
    }
    if selected("report") {
        reports(&mut table, entries);
    }

    println!();
    println!("machine: {}", machine());
    println!(
        "load average (1 min) before: {load_before}, after: {}",
        load_average()
    );
    table.print();
}

/// Commit latency with one submitter, then balance reads, on a small ledger.
fn low_load(table: &mut Table) {
    const WARM_UP: usize = 200;
    const COMMITS: usize = 2_000;
    eprintln!("scale: {COMMITS} commits from one submitter");
    let dir = support::scratch();
    let ledger = Ledger::open(dir.path(), support::config()).expect("ledger opens");
    let scheme = Scheme::new(&ledger, Minutes::MAX);
    let members = support::open_members(&ledger, MEMBERS);
    let mut rng = Rng::new(7);
    let mut latencies = Vec::with_capacity(COMMITS);
    for i in 0..WARM_UP + COMMITS {
        let request = support::earn(&scheme, *rng.pick(&members), 1);
        let start = Instant::now();
        ledger.submit_blocking(request).expect("commits");
        if i >= WARM_UP {
            latencies.push(start.elapsed());
        }
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    table.row(
        "one commit at low load (1 submitter), median",
        format!(
            "{} (p90 {}, p99 {})",
            ms(at(0.5)),
            ms(at(0.9)),
            ms(at(0.99))
        ),
        "≤ 1 ms",
        Some(at(0.5) <= Duration::from_millis(1)),
    );
    let size = ledger.size().expect("size");
    let read = balance_read_ns(&ledger, &members);
    table.row(
        &format!("balance read, {size}-entry store"),
        format!("{read:.0} ns"),
        "O(1)",
        None,
    );
    eprintln!("scale: balance read at {size} entries: {read:.0} ns");
}

/// Entries per second committed by [`SUBMITTERS`] concurrent submitters on a fresh ledger.
fn throughput(table: &mut Table, seconds: u64) {
    eprintln!("scale: {SUBMITTERS} submitters for {seconds} s");
    let dir = support::scratch();
    let ledger = Arc::new(Ledger::open(dir.path(), support::config()).expect("ledger opens"));
    let scheme = Arc::new(Scheme::new(&ledger, Minutes::MAX));
    let members: Arc<[AccountId]> = support::open_members(&ledger, MEMBERS).into();
    let load = Load::start(Arc::clone(&ledger), move |rng| {
        support::earn(&scheme, *rng.pick(&members), 1)
    });
    std::thread::sleep(Duration::from_secs(1)); // warm-up
    let mut rates = Vec::new();
    let mut last = (Instant::now(), load.committed());
    let (start, cpu_start) = (last, cpu_time());
    for _ in 0..seconds.max(1) {
        std::thread::sleep(Duration::from_secs(1));
        let now = (Instant::now(), load.committed());
        rates.push((now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64());
        last = now;
    }
    let cpu = cpu_time() - cpu_start;
    let (wall, entries) = (last.0 - start.0, last.1 - start.1);
    load.stop();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    table.row(
        &format!("throughput, {SUBMITTERS} submitters, median of 1-s windows"),
        format!(
            "{median:.0} entries/s (windows {:.0}..{:.0})",
            rates[0],
            rates[rates.len() - 1]
        ),
        "≥ 30000 entries/s",
        Some(median >= 30_000.0),
    );
    table.row(
        "  CPU of this process per entry in that run (all threads)",
        format!(
            "{:.0} µs ({:.2} cores busy)",
            cpu.as_secs_f64() * 1e6 / entries.max(1) as f64,
            cpu.as_secs_f64() / wall.as_secs_f64()
        ),
        "",
        None,
    );
}

/// Opens, reads, disk and memory on the large store, and opens after `kill -9`.
fn large_store(table: &mut Table, entries: u64) {
    let dir = data_dir_for(entries);
    let label = if entries == 1_000_000 {
        "1M".to_owned()
    } else {
        entries.to_string()
    };
    let opens: Vec<Report> = (0..OPENS)
        .map(|_| run_child("--child-open", &dir))
        .collect();
    let cold: Vec<Report> = (0..COLD_OPENS)
        .map(|_| {
            evict_from_page_cache(&dir);
            run_child("--child-open", &dir)
        })
        .collect();
    let size = opens[0].get("size");
    let open_warm = median(opens.iter().map(|r| r.get("open_us")).collect());
    let open_cold = median(cold.iter().map(|r| r.get("open_us")).collect());
    table.row(
        &format!("open {label} store after a clean close, page cache warm, median of {OPENS}"),
        us(open_warm),
        "≤ 1 s",
        Some(open_warm <= 1_000_000),
    );
    table.row(
        &format!(
            "open {label} store after a clean close, files evicted from the page cache, \
             median of {COLD_OPENS}"
        ),
        us(open_cold),
        "≤ 1 s",
        Some(open_cold <= 1_000_000),
    );
    let last = &opens[opens.len() - 1];
    table.row(
        &format!("balance read, {size}-entry store"),
        format!("{} ns", last.get("read_ns")),
        "O(1)",
        None,
    );
    let (journal, state) = (last.get("journal_bytes"), last.get("state_bytes"));
    table.row(
        &format!("disk per entry at {size} entries (journal + state)"),
        format!(
            "{:.0} B ({:.0} + {:.0}; {:.0} MB in all)",
            (journal + state) as f64 / size as f64,
            journal as f64 / size as f64,
            state as f64 / size as f64,
            (journal + state) as f64 / 1e6
        ),
        "report",
        None,
    );
    table.row(
        &format!("memory (RSS) at {size} entries, open and after the reads"),
        format!(
            "{} MB (peak {} MB)",
            last.get("rss_kb") / 1024,
            last.get("hwm_kb") / 1024
        ),
        "report",
        None,
    );
    table.row(
        &format!("close {label} store (flushes the state)"),
        us(median(opens.iter().map(|r| r.get("close_us")).collect())),
        "",
        None,
    );

    // The kill test changes the store: it runs on a copy.
    let copy = support::scratch();
    let killed = copy.path().join("ledger");
    copy_dir(&dir, &killed);
    let mut reopen = Vec::new();
    let mut writing = Vec::new();
    for cycle in 0..KILLS {
        eprintln!("scale: kill -9 cycle {}/{KILLS}", cycle + 1);
        writing.push(load_then_kill(&killed));
        reopen.push(run_child("--child-open", &killed));
    }
    let open_killed = median(reopen.iter().map(|r| r.get("open_us")).collect());
    let worst = reopen.iter().map(|r| r.get("open_us")).max().unwrap_or(0);
    table.row(
        &format!("open {label} store after kill -9 during writes, median of {KILLS}"),
        format!("{} (worst {})", us(open_killed), us(worst)),
        "≤ 1 s",
        Some(worst <= 1_000_000),
    );
    let rate = median(writing.iter().map(|w| w.rate).collect());
    table.row(
        &format!("throughput on the {label} store, {SUBMITTERS} submitters, first seconds"),
        format!("{rate} entries/s"),
        "",
        None,
    );
    let rss = writing.iter().map(|w| w.rss_kb).max().unwrap_or(0);
    table.row(
        &format!("memory (RSS) at {label} entries while committing"),
        format!("{} MB", rss / 1024),
        "report",
        None,
    );
}

/// Reports over the large store, of each kind.
const REPORTS: usize = 5;
/// Office reports brought forward.
const OFFICE_REPORTS: usize = 20;
/// Entries added to the office's tally each time: a busy second's batch.
const OFFICE_NEW_ENTRIES: u64 = 1_000;

/// Impact reports over the large store, as `service::reports` computes them: the entries read
/// and decoded, tallied by the domain's report code, the report written as CSV.
fn reports(table: &mut Table, entries: u64) {
    let dir = data_dir_for(entries);
    let ledger = Ledger::open(&dir, support::config()).expect("ledger opens");
    let size = ledger.size().expect("size");
    let label = if entries == 1_000_000 {
        "1M".to_owned()
    } else {
        entries.to_string()
    };
    // By month over all time: every entry the store holds is in the report.
    let spec = ReportSpec::default();
    let report = |read: &mut dyn Iterator<Item = Entry>| {
        let mut tally = Tally::new(spec.clone());
        read.for_each(|entry| tally.add(&entry));
        let report = tally.finish().expect("a ledger's entries make a report");
        let mut csv = Vec::new();
        write_csv(&report, &mut csv).expect("CSV to memory");
        report.rows.len()
    };
    let scan = |from: u64, to: u64| {
        ledger
            .entries(from..to)
            .expect("the scan begins")
            .map(|read| read.expect("the entry reads"))
    };
    let one_by_one = || {
        (0..size).map(|seq| {
            ledger
                .entry(seq)
                .expect("the entry reads")
                .expect("the entry exists")
        })
    };
    let mut rows = 0;
    /// A way to make the report, its name and its times.
    type Variant<'a> = (&'a str, &'a mut dyn FnMut() -> usize, Vec<u64>);
    let mut variants: [Variant; 3] = [
        ("read and decode", &mut || scan(0, size).count(), Vec::new()),
        (
            "report, front-to-back scan",
            &mut || report(&mut scan(0, size)),
            Vec::new(),
        ),
        (
            "report, one entry at a time",
            &mut || report(&mut one_by_one()),
            Vec::new(),
        ),
    ];
    // Round by round, so that a change in the machine's load falls on every variant alike.
    for round in 1..=REPORTS {
        for (what, run, times) in &mut variants {
            eprintln!("scale: {what} {round}/{REPORTS}");
            let start = Instant::now();
            let made = std::hint::black_box(run());
            times.push(start.elapsed().as_micros() as u64);
            if what.starts_with("report") {
                rows = made;
            }
        }
    }
    let [read_only, scanned, per_entry] = variants.map(|(_, _, times)| median(times));
    let within = |micros: u64| Some(micros <= 2_000_000);
    table.row(
        &format!(
            "report over the {label} store (read + decode + tally + CSV, {rows} rows), \
             front-to-back scan, median of {REPORTS}"
        ),
        us(scanned),
        "≤ 2 s",
        within(scanned),
    );
    table.row(
        &format!("the same, each entry read with `Ledger::entry`, median of {REPORTS}"),
        us(per_entry),
        "≤ 2 s",
        within(per_entry),
    );
    table.row(
        &format!("of which reading and decoding the {label} entries, front-to-back scan"),
        us(read_only),
        "",
        None,
    );

    // The office's cached report: the tally kept at some size, brought forward by the entries
    // committed since, and its report so far, as `service::reports::cached_report` does.
    let mut kept_at = size.saturating_sub(OFFICE_NEW_ENTRIES * OFFICE_REPORTS as u64);
    let mut kept = Tally::new(spec.clone());
    scan(0, kept_at).for_each(|entry| kept.add(&entry));
    let forward: Vec<u64> = (0..OFFICE_REPORTS)
        .map(|_| {
            let start = Instant::now();
            let to = (kept_at + OFFICE_NEW_ENTRIES).min(size);
            scan(kept_at, to).for_each(|entry| kept.add(&entry));
            std::hint::black_box(kept.report().expect("a report"));
            kept_at = to;
            start.elapsed().as_micros() as u64
        })
        .collect();
    table.row(
        &format!(
            "office report near {label} entries, brought forward by {OFFICE_NEW_ENTRIES} \
             entries, median of {OFFICE_REPORTS}"
        ),
        us(median(forward)),
        "report",
        None,
    );
}

/// The accounts of the large store, saved next to it.
struct LargeScheme {
    scheme: Scheme,
    members: Vec<AccountId>,
}

impl LargeScheme {
    fn save(&self, dir: &Path) {
        let s = &self.scheme;
        let mut text = format!("{}\n{}\n", version_line(), s.admin);
        for id in [s.programme, s.budget, s.venue, s.alice, s.bob]
            .iter()
            .chain(&self.members)
        {
            text.push_str(&format!("{}\n", id.0));
        }
        std::fs::write(dir.join(SCHEME_FILE), text).expect("save the scheme");
    }

    fn load(dir: &Path) -> Option<LargeScheme> {
        let text = std::fs::read_to_string(dir.join(SCHEME_FILE)).ok()?;
        let mut lines = text.lines();
        if lines.next() != Some(version_line().as_str()) {
            return None;
        }
        let ids: Vec<Uuid> = lines.map(|l| l.parse().ok()).collect::<Option<_>>()?;
        let account = |i: usize| ids.get(i).copied().map(AccountId);
        Some(LargeScheme {
            scheme: Scheme {
                admin: *ids.first()?,
                programme: account(1)?,
                budget: account(2)?,
                venue: account(3)?,
                alice: account(4)?,
                bob: account(5)?,
            },
            members: ids.get(6..)?.iter().copied().map(AccountId).collect(),
        })
    }

    /// One request of the large store's mix: half earns, a quarter gifts between members, a
    /// quarter spends at the venue; single entries, each with its own idempotency key.
    fn request(&self, rng: &mut Rng) -> Request {
        let s = &self.scheme;
        let n = self.members.len() as u64;
        let i = rng.below(n);
        let member = self.members[i as usize];
        let intent = match rng.below(4) {
            0 | 1 => transfer(MovementKind::Earn, s.budget, member, 2),
            2 => {
                // Any other member.
                let other = self.members[((i + 1 + rng.below(n - 1)) % n) as usize];
                transfer(MovementKind::Gift, member, other, 1)
            }
            _ => transfer(MovementKind::Spend, member, s.venue, 1),
        };
        Request::single(s.admin, fresh(), intent)
    }
}

/// The first line of [`SCHEME_FILE`]: a store built by another version is built again.
fn version_line() -> String {
    format!("{DATA_VERSION}, state layout {LAYOUT}")
}

/// The large store's directory, built first if it is not there yet.
fn data_dir_for(entries: u64) -> PathBuf {
    let dir = support::data_dir().join(format!("ledger-{entries}"));
    if LargeScheme::load(&dir).is_some() {
        return dir;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("remove an incomplete store");
    }
    eprintln!(
        "scale: building a {entries}-entry store in {} (once; later runs reuse it)",
        dir.display()
    );
    let start = Instant::now();
    let ledger = Arc::new(Ledger::open(&dir, support::config()).expect("ledger opens"));
    let scheme = Scheme::new(&ledger, Minutes::MAX);
    let members = support::open_members(&ledger, MEMBERS);
    // Every member starts with some credit, so that gifts and spends mostly succeed.
    for chunk in members.chunks(timecredits_domain::Intent::MAX_PARTS) {
        let intents = chunk
            .iter()
            .map(|m| transfer(MovementKind::Earn, scheme.budget, *m, 600))
            .collect();
        let request = Request {
            actor: scheme.admin,
            key: fresh(),
            intents,
        };
        ledger.submit_blocking(request).expect("seed credits");
    }
    let large = Arc::new(LargeScheme { scheme, members });
    let mix = Arc::clone(&large);
    let load = Load::start(Arc::clone(&ledger), move |rng| mix.request(rng));
    let mut reported = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let size = ledger.size().expect("size");
        if size >= entries {
            break;
        }
        if reported.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "scale: {size} entries, {:.0} entries/s",
                size as f64 / start.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
    }
    load.stop();
    let ledger = Arc::into_inner(ledger).expect("the load has stopped");
    drop(ledger); // a clean close
    large.save(&dir);
    eprintln!("scale: built in {:.0} s", start.elapsed().as_secs_f64());
    dir
}

/// `--child-open DIR`: opens the ledger, reads balances, reports, closes cleanly.
fn child_open(dir: &Path) {
    let scheme = LargeScheme::load(dir).expect("the store lists its accounts");
    let start = Instant::now();
    let ledger = Ledger::open(dir, support::config()).expect("ledger opens");
    let open = start.elapsed();
    let read = balance_read_ns(&ledger, &scheme.members);
    let (journal, state) = ledger.disk_usage(dir).expect("disk usage");
    let size = ledger.size().expect("size");
    let (rss, hwm) = memory_kb();
    let start = Instant::now();
    drop(ledger);
    let close = start.elapsed();
    println!(
        "open_us={} close_us={} size={size} read_ns={read:.0} journal_bytes={journal} \
         state_bytes={state} rss_kb={rss} hwm_kb={hwm}",
        open.as_micros(),
        close.as_micros()
    );
}

/// `--child-load DIR`: opens the ledger and commits from [`SUBMITTERS`] tasks until killed,
/// reporting progress and memory four times a second.
fn child_load(dir: &Path) {
    let scheme = Arc::new(LargeScheme::load(dir).expect("the store lists its accounts"));
    let ledger = Arc::new(Ledger::open(dir, support::config()).expect("ledger opens"));
    let load = Load::start(ledger, move |rng| scheme.request(rng));
    let start = Instant::now();
    let mut out = std::io::stdout();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        writeln!(
            out,
            "elapsed_us={} committed={} rss_kb={}",
            start.elapsed().as_micros(),
            load.committed(),
            memory_kb().0
        )
        .and_then(|()| out.flush())
        .expect("the parent reads the reports");
    }
}

/// What a `--child-load` process did before it was killed.
struct Writing {
    rate: u64,
    rss_kb: u64,
}

/// Runs a `--child-load` process on `dir` for a little over two seconds (the state is flushed
/// every second, so a tail of up to a second of entries is unapplied), then kills it with SIGKILL.
fn load_then_kill(dir: &Path) -> Writing {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--child-load")
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("piped");
    // Kill at a different moment of the flush cycle each time.
    let run_for = Duration::from_millis(2_000 + Rng::new(nanos()).below(1_000));
    let mut last = Report::default();
    for line in BufReader::new(stdout).lines() {
        last = Report::parse(&line.expect("read the child"));
        if Duration::from_micros(last.get("elapsed_us")) >= run_for {
            break;
        }
    }
    child.kill().expect("kill -9 the child");
    child.wait().expect("reap the child");
    Writing {
        rate: last.get("committed") * 1_000_000 / last.get("elapsed_us").max(1),
        rss_kb: last.get("rss_kb"),
    }
}

/// Runs this program in a child process with `mode` on `dir`, and parses its report.
fn run_child(mode: &str, dir: &Path) -> Report {
    let output = Command::new(std::env::current_exe().expect("own path"))
        .arg(mode)
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    assert!(output.status.success(), "{mode} failed: {}", output.status);
    Report::parse(String::from_utf8_lossy(&output.stdout).trim())
}

/// A child's report: `name=number` pairs on one line.
#[derive(Default)]
struct Report(Vec<(String, u64)>);

impl Report {
    fn parse(line: &str) -> Report {
        Report(
            line.split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> u64 {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("the child reported no {name}"))
    }
}

/// Submitters in a multi-threaded tokio runtime, committing until stopped.
struct Load {
    runtime: tokio::runtime::Runtime,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    committed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Load {
    fn start(
        ledger: Arc<Ledger>,
        request: impl Fn(&mut Rng) -> Request + Send + Sync + 'static,
    ) -> Load {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .build()
            .expect("tokio runtime");
        let request = Arc::new(request);
        let committed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..SUBMITTERS)
            .map(|task| {
                let (ledger, request) = (Arc::clone(&ledger), Arc::clone(&request));
                let (committed, stop) = (Arc::clone(&committed), Arc::clone(&stop));
                runtime.spawn(async move {
                    let mut rng = Rng::new(nanos() ^ task as u64);
                    while !stop.load(Ordering::Relaxed) {
                        match ledger.submit(request(&mut rng)).await {
                            Ok(c) => {
                                committed.fetch_add(c.entries.len() as u64, Ordering::Relaxed);
                            }
                            // A gift or spend from a member the mix left short: not an entry.
                            Err(LedgerError::Rejected { .. }) => {}
                            Err(e) => panic!("commit failed: {e}"),
                        }
                    }
                })
            })
            .collect();
        Load {
            runtime,
            tasks,
            committed,
            stop,
        }
    }

    fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.runtime.block_on(async {
            for task in self.tasks {
                task.await.expect("submitter");
            }
        });
    }
}

/// Median nanoseconds per balance read of random accounts among `accounts`, after reading each
/// of them once (so that the figure is the steady state, not the first touch of the disk).
fn balance_read_ns(ledger: &Ledger, accounts: &[AccountId]) -> f64 {
    const ROUNDS: usize = 21;
    const READS: usize = 10_000;
    for id in accounts {
        ledger.account(*id).expect("reads").expect("exists");
    }
    let mut rng = Rng::new(3);
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let picks: Vec<AccountId> = (0..READS).map(|_| *rng.pick(accounts)).collect();
            let start = Instant::now();
            for id in picks {
                std::hint::black_box(ledger.account(id).expect("reads"));
            }
            start.elapsed().as_nanos() as f64 / READS as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

/// Asks the kernel to drop the store's files from the page cache (after writing back any dirty
/// pages, which it cannot drop), so that the next open reads them from the disk. Unlike
/// `drop_caches` this needs no privilege and leaves other processes' cache alone.
// std has no posix_fadvise.
#[allow(unsafe_code)]
fn evict_from_page_cache(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list the store") {
        let path = entry.expect("list the store").path();
        if path.is_dir() {
            evict_from_page_cache(&path);
        } else if let Ok(file) = std::fs::File::open(&path) {
            use std::os::fd::AsRawFd;
            file.sync_all().expect("write back");
            // SAFETY: a valid open descriptor; the call only advises the kernel.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("list the store") {
        let entry = entry.expect("list the store");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy the store");
        }
    }
}

/// CPU time (user and system) this process has used, all threads.
// std has no getrusage.
#[allow(unsafe_code)]
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Resident and peak resident memory of this process, in KiB.
fn memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {}", kernel.trim())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into())
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(micros: u64) -> String {
    ms(Duration::from_micros(micros))
}

/// The results, printed as a Markdown table.
#[derive(Default)]
struct Table(Vec<[String; 4]>);

impl Table {
    fn row(&mut self, figure: &str, result: String, target: &str, met: Option<bool>) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        self.0
            .push([figure.to_owned(), result, target.to_owned(), met.to_owned()]);
    }

    fn print(&self) {
        let header = ["figure", "result", "target", "met"].map(String::from);
        let widths: Vec<usize> = (0..4)
            .map(|c| {
                std::iter::once(&header)
                    .chain(&self.0)
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |r: &[String; 4]| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(&header);
        println!(
            "|{}|",
            widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("|")
        );
        for r in &self.0 {
            line(r);
        }
    }
}
