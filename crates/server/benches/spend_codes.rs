//! Spend codes at scale: the latency of creating a code and of redeeming one (reserve, then
//! settle as committed) with no live codes and with 100,000 live codes, on tmpfs (the table's own
//! cost: `fdatasync` is nearly free there) and on the disk of the temporary directory (what a
//! request waits for, each creation and reservation being synced before it is answered).
//!
//! Run: `cargo bench -p timecredits-server --bench spend_codes`. Environment:
//! `TIMECREDITS_BENCH_CODES` (default 100000) live codes, `TIMECREDITS_BENCH_OPS` (default 2000)
//! measured operations of each kind, `TIMECREDITS_BENCH_TMPFS` (default `/dev/shm`).

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use timecredits_server::spend_codes::{Config, SpendCodes, FILE};
use uuid::Uuid;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: [u8; 32] = [42; 32];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(dir: &Path) -> SpendCodes {
    SpendCodes::open(dir, Config::default(), SECRET, |_, _| Ok(false)).expect("the table opens")
}

/// Creates a code for a new member; returns the code.
fn create(codes: &SpendCodes) -> String {
    let now = Utc::now();
    let (issued, _) = codes
        .issue(Uuid::now_v7(), "create", "fingerprint", None, now, None)
        .expect("a code");
    issued.code
}

/// Redeems `code`: reserve, then settle as committed (the ledger's commit and the registry's
/// answer on the member's credential are not measured).
fn redeem(codes: &SpendCodes, code: &str) {
    let by = (Uuid::now_v7(), "redeem".to_owned());
    codes
        .reserve(&by, "fingerprint", code, 60, Utc::now(), |_| None)
        .expect("a live code");
    codes.finish(&by, true);
}

/// p50, p99 and mean of `samples`, in microseconds.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(samples[((samples.len() - 1) as f64 * q) as usize]);
    let mean = us(samples.iter().sum::<Duration>()) / samples.len() as f64;
    format!("{:.1} / {:.1} / {:.1}", at(0.5), at(0.99), mean)
}

/// Measures `ops` creations and `ops` redemptions (of codes from `spare`).
fn measure(codes: &SpendCodes, ops: usize, spare: &mut Vec<String>) -> (String, String) {
    let created: Vec<Duration> = (0..ops)
        .map(|_| {
            let t = Instant::now();
            create(codes);
            t.elapsed()
        })
        .collect();
    let redeemed: Vec<Duration> = (0..ops)
        .map(|_| {
            let code = spare.pop().expect("enough spare codes");
            let t = Instant::now();
            redeem(codes, &code);
            t.elapsed()
        })
        .collect();
    (summary(created), summary(redeemed))
}

/// Creations, then redemptions (of codes from `spare`), per second with `threads` threads at once:
/// what group commit gives when requests wait for the same disk.
fn throughput(codes: &SpendCodes, threads: usize, spare: Vec<String>) -> (f64, f64) {
    let per_thread = spare.len() / threads;
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    create(codes);
                }
            });
        }
    });
    let created = (threads * per_thread) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    std::thread::scope(|scope| {
        for chunk in spare.chunks(per_thread).take(threads) {
            scope.spawn(move || {
                for code in chunk {
                    redeem(codes, code);
                }
            });
        }
    });
    let redeemed = (threads * per_thread) as f64 / t.elapsed().as_secs_f64();
    (created, redeemed)
}

fn main() {
    let live = env("TIMECREDITS_BENCH_CODES", 100_000);
    let ops = env("TIMECREDITS_BENCH_OPS", 2_000);
    let tmpfs = std::env::var("TIMECREDITS_BENCH_TMPFS").unwrap_or_else(|_| "/dev/shm".into());
    let fast = tempfile::tempdir_in(&tmpfs)
        .or_else(|_| tempfile::tempdir())
        .expect("a directory");
    let disk = tempfile::tempdir().expect("a temporary directory");
    let mut rows = Vec::new();

    // No live codes.
    let codes = open(fast.path());
    let mut spare: Vec<String> = (0..ops).map(|_| create(&codes)).collect();
    rows.push(("tmpfs", 0, measure(&codes, ops, &mut spare)));
    drop(codes);
    let _ = std::fs::remove_file(fast.path().join(FILE));

    // `live` live codes, each of its own member, plus the spare ones to redeem.
    let codes = open(fast.path());
    let t = Instant::now();
    let mut spare: Vec<String> = (0..live + 3 * ops).map(|_| create(&codes)).collect();
    eprintln!("filled {} codes in {:.1?}", spare.len(), t.elapsed());
    let spare_concurrent = spare.split_off(spare.len() - ops);
    let mut spare_disk = spare.split_off(spare.len() - ops);
    rows.push(("tmpfs", live, measure(&codes, ops, &mut spare)));
    drop(codes);

    // The same table on disk (opening it compacts it into a fresh file there).
    std::fs::copy(fast.path().join(FILE), disk.path().join(FILE)).expect("a copy");
    let t = Instant::now();
    let codes = open(disk.path());
    let opened = t.elapsed();
    let (live_now, _) = codes.len();
    rows.push(("disk", live_now, measure(&codes, ops, &mut spare_disk)));

    println!("| file system | codes in the table | create p50 / p99 / mean (µs) | redeem p50 / p99 / mean (µs) |");
    println!("|---|---|---|---|");
    for (fs, live, (create, redeem)) in rows {
        println!("| {fs} | {live} | {create} | {redeem} |");
    }
    let threads = 16;
    let (created, redeemed) = throughput(&codes, threads, spare_concurrent);
    println!(
        "\non disk, {threads} threads at once: {created:.0} creations/s, {redeemed:.0} redemptions/s"
    );
    println!(
        "opening the table of {live_now} codes (replay and compaction): {:.1?}",
        opened
    );
}
