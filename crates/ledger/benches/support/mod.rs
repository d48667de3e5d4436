//! What the two benchmark programs share: where their data lives, the ledger settings they
//! measure, and a scheme with many member accounts.
#![allow(dead_code)] // Each benchmark program uses a different subset.

use std::path::PathBuf;

use timecredits_domain::{AccountId, AccountKind, EntryBody, Intent, MovementKind};
use timecredits_ledger::{Ledger, LedgerConfig, Request};
use uuid::Uuid;

use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::Scheme;

/// The directory benchmark data lives in: `bench-data/` in Cargo's target directory, so that it
/// is on the disk builds use (not a tmpfs `/tmp`, where `fdatasync` costs nothing) and never in
/// the repository. `TIMECREDITS_BENCH_DIR` overrides it.
pub fn data_dir() -> PathBuf {
    let dir = match std::env::var_os("TIMECREDITS_BENCH_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => target_dir().join("bench-data"),
    };
    std::fs::create_dir_all(&dir).expect("create the benchmark data directory");
    dir
}

/// Cargo's target directory: the nearest ancestor of this executable that Cargo tagged with
/// `CACHEDIR.TAG` (benchmarks run from `<target>/release/deps/`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the benchmark knows its own path");
    exe.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or_else(|| exe.parent().expect("an executable is in a directory"))
        .to_path_buf()
}

/// A fresh, empty directory for one ledger, deleted when dropped.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("scratch-")
        .tempdir_in(data_dir())
        .expect("create a scratch directory")
}

/// The settings measured: the defaults a server would use.
pub fn config() -> LedgerConfig {
    LedgerConfig {
        origin: "bench.example/ledger".into(),
        ..LedgerConfig::default()
    }
}

/// Opens `count` member accounts, as few requests as the part limit allows.
pub fn open_members(ledger: &Ledger, count: usize) -> Vec<AccountId> {
    let open = Intent::Open {
        account_kind: AccountKind::Member,
        owner: None,
    };
    let mut members = Vec::with_capacity(count);
    while members.len() < count {
        let parts = (count - members.len()).min(Intent::MAX_PARTS);
        let request = Request {
            actor: Uuid::now_v7(),
            key: fresh(),
            intents: vec![open.clone(); parts],
        };
        let committed = ledger.submit_blocking(request).expect("members open");
        members.extend(committed.entries.iter().map(|e| match e.body {
            EntryBody::Open { account, .. } => account,
            _ => unreachable!("an open request makes open entries"),
        }));
    }
    members
}

/// A request earning `minutes` for `member` from the scheme's budget.
pub fn earn(scheme: &Scheme, member: AccountId, minutes: u64) -> Request {
    Request::single(
        scheme.admin,
        fresh(),
        transfer(MovementKind::Earn, scheme.budget, member, minutes),
    )
}
