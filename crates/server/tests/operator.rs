//! The operator commands of the `timecredits` binary, end to end on a data directory: key
//! rotation and export while the service is stopped.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use std::path::Path;
use std::process::Command;

use common::run;
use timecredits_domain::EntryBody;
use timecredits_ledger::{layout, Ledger, LedgerConfig};

fn open(dir: &Path) -> Ledger {
    Ledger::open(dir, LedgerConfig::default()).unwrap()
}

#[test]
fn rotate_key_hands_signing_over_and_the_export_names_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old = open(&data).verifier_key();
    let data_arg = data.to_str().unwrap();

    let (ok, text) = run(&["rotate-key", "--data-dir", data_arg]);
    assert!(ok, "{text}");
    let ledger = open(&data);
    let new = ledger.verifier_key();
    assert_ne!(new, old);
    assert!(text.contains(&format!("previous key: {old}")), "{text}");
    assert!(text.contains(&format!("new key:      {new}")), "{text}");
    let last = ledger.entry(ledger.size().unwrap() - 1).unwrap().unwrap();
    assert!(matches!(&last.body, EntryBody::Key(r) if r.vkey() == new));
    assert!(data.join(layout::PREVIOUS_SIGNING_KEY).exists());
    drop(ledger);

    let out = dir.path().join("export.jsonl");
    let (ok, text) = run(&[
        "export",
        "--data-dir",
        data_arg,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&new),
        "the export names the current key: {text}"
    );
}

#[test]
fn operator_commands_refuse_a_directory_without_a_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().to_str().unwrap();
    let (ok, text) = run(&["rotate-key", "--data-dir", empty]);
    assert!(!ok);
    assert!(text.contains("holds no ledger"), "{text}");
    assert!(
        !dir.path().join(layout::SIGNING_KEY).exists(),
        "nothing was created"
    );
}

/// Flips one bit of the journal at `at` (a fraction of its length).
fn flip_journal_bit(data: &Path, at: f64) {
    let path = data.join(layout::JOURNAL);
    let mut bytes = std::fs::read(&path).unwrap();
    let offset = (bytes.len() as f64 * at) as usize;
    bytes[offset] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn check_says_sound_then_lists_a_flipped_bit_in_the_middle_of_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ledger = open(&data);
    for _ in 0..6 {
        let key = timecredits_domain::IdempotencyKey::new(uuid::Uuid::now_v7().to_string());
        let intent = timecredits_domain::Intent::Open {
            account_kind: timecredits_domain::AccountKind::Member,
            owner: None,
        };
        let request = timecredits_ledger::Request::single(uuid::Uuid::nil(), key.unwrap(), intent);
        ledger.submit_blocking(request).unwrap();
    }
    let size = ledger.size().unwrap();
    drop(ledger);
    let data_arg = data.to_str().unwrap();

    let check = || {
        let output = Command::new(env!("CARGO_BIN_EXE_timecredits"))
            .args(["check", "--data-dir", data_arg])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, text) = check();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("sound: {size} entries")), "{text}");

    // The middle of the journal is read neither at open nor by any write: only a check sees it.
    flip_journal_bit(&data, 0.5);
    let (code, text) = check();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("DAMAGED") && text.contains("entry "),
        "{text}"
    );
}

#[test]
fn version_names_the_crate_version_and_the_commit() {
    let (ok, text) = run(&["--version"]);
    assert!(ok, "{text}");
    let expected = format!("timecredits {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&expected), "{text}");
}
