//! The verifier's throughput on a large export, against `sha256sum` reading the same file.
//!
//! `cargo bench -p timecredits-audit` builds a synthetic export of 10,000,000 entries once (set
//! `AUDIT_BENCH_ENTRIES` for another size) under `target/audit-bench/`, then times a full
//! verification (signature, decoding, Merkle root, rules replay) and `sha256sum` over the same
//! file, alternately, several rounds, and prints each run, the best and the median, and the
//! ratio. The file stays in the page cache between runs, so both read from memory.
//! `AUDIT_BENCH_THREADS` sets the number of decoding threads (default: one per core).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use timecredits_audit::{verify_file, Trust, VerifyOptions};
use timecredits_domain::Entry;
use timecredits_testkit::synthetic::{write_export, History};
use timecredits_tlog::note::NoteSigner;

const ROUNDS: usize = 3;

/// The allocator of the `timecredits-audit` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let entries: u64 = std::env::var("AUDIT_BENCH_ENTRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000);
    let signer = NoteSigner::new("bench.example/ledger", SigningKey::from_bytes(&[9; 32]))
        .expect("valid key name");
    let path = export_path(entries);
    if !path.exists() {
        let started = Instant::now();
        eprintln!("building {} ({entries} entries) once…", path.display());
        let lines = History::new(1)
            .take(entries as usize)
            .map(|e: Entry| e.encode());
        write_export(&path, &signer, lines).expect("export written");
        eprintln!("built in {:.1} s", started.elapsed().as_secs_f64());
    }
    let bytes = std::fs::metadata(&path).expect("export exists").len();
    let trust = Trust::new(&[signer.verifier().to_vkey()], None).expect("valid key");
    println!(
        "export: {entries} entries, {:.2} GB, {} cores; load average before: {}",
        bytes as f64 / 1e9,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average()
    );
    let options = VerifyOptions {
        threads: std::env::var("AUDIT_BENCH_THREADS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        ..VerifyOptions::default()
    };
    // Warm the page cache so that neither side pays for the disk.
    sha256sum(&path);
    let (mut verify, mut sha) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let started = Instant::now();
        let cpu = process_cpu();
        let report = verify_file(&path, &trust, &options).expect("usable");
        let v = started.elapsed();
        let cpu = process_cpu() - cpu;
        assert!(report.is_valid(), "{:?}", report.failure);
        assert_eq!(report.checked, entries);
        let s = sha256sum(&path);
        println!(
            "round {round}: verify {:.2} s ({:.2} M entries/s, {:.2} µs of CPU per entry), sha256sum {:.2} s, ratio {:.2}; load average {}",
            v.as_secs_f64(),
            entries as f64 / v.as_secs_f64() / 1e6,
            cpu * 1e6 / entries as f64,
            s.as_secs_f64(),
            v.as_secs_f64() / s.as_secs_f64(),
            load_average()
        );
        verify.push(v);
        sha.push(s);
    }
    for (name, runs) in [("verify", &mut verify), ("sha256sum", &mut sha)] {
        runs.sort();
        println!(
            "{name}: best {:.2} s, median {:.2} s",
            runs[0].as_secs_f64(),
            runs[runs.len() / 2].as_secs_f64()
        );
    }
    let (v, s) = (verify[ROUNDS / 2], sha[ROUNDS / 2]);
    println!(
        "median: {:.2} M entries/s (target >= 1.00), {:.2} x sha256sum (target <= 3.00)",
        entries as f64 / v.as_secs_f64() / 1e6,
        v.as_secs_f64() / s.as_secs_f64()
    );
}

/// `target/audit-bench/export-N.jsonl`, next to this benchmark's executable.
fn export_path(entries: u64) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/<profile>/deps/verify-… → target/
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the bench runs from target/<profile>/deps");
    let dir = target.join("audit-bench");
    std::fs::create_dir_all(&dir).expect("bench directory");
    dir.join(format!("export-{entries}.jsonl"))
}

fn sha256sum(path: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new("sha256sum")
        .arg(path)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("sha256sum runs");
    assert!(status.success());
    started.elapsed()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU seconds this process used so far (user and system, all threads), from /proc: what the
/// verification costs whatever else the machine is doing.
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and
    // 13th, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}
