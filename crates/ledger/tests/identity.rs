//! One ledger per data directory: a journal that lost its tail, a journal or a signing key
//! replaced by another ledger's, are refused at open with a message that names the file, instead
//! of signing a second tree of a size already signed or checkpoints under a key no auditor
//! pinned.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::path::Path;

use timecredits_domain::MovementKind;
use timecredits_ledger::{layout, LedgerError};
use timecredits_testkit::intents::transfer;
use timecredits_testkit::ledger::{config, open, submit, Scheme};

/// A ledger with a scheme and `earns` earns in `dir`; returns the journal's length before the
/// last earn.
fn ledger_with(dir: &Path, earns: u64) -> u64 {
    let ledger = open(dir);
    let s = Scheme::new(&ledger, 10_000);
    let mut before_last = 0;
    for _ in 0..earns {
        before_last = std::fs::metadata(dir.join(layout::JOURNAL)).unwrap().len();
        submit(
            &ledger,
            s.admin,
            transfer(MovementKind::Earn, s.budget, s.alice, 1),
        )
        .unwrap();
    }
    before_last
}

fn refusal(dir: &Path) -> LedgerError {
    timecredits_ledger::Ledger::open(dir, config()).expect_err("the ledger is refused")
}

#[test]
fn a_journal_that_lost_its_tail_is_refused_with_how_much() {
    let dir = tempfile::tempdir().unwrap();
    let before_last = ledger_with(dir.path(), 3);
    let journal = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(layout::JOURNAL))
        .unwrap();
    journal.set_len(before_last).unwrap();
    // With the state: it has applied more than the journal holds.
    let with_state = refusal(dir.path()).to_string();
    assert!(with_state.contains("journal"), "{with_state}");
    // Without it (rebuilt from the journal), only the record of the signed tree knows.
    std::fs::remove_dir_all(dir.path().join(layout::STATE)).unwrap();
    match refusal(dir.path()) {
        LedgerError::LostTail { signed, journal } => assert_eq!(signed, journal + 1),
        other => panic!("refused with {other}"),
    }
    let message = refusal(dir.path()).to_string();
    assert!(
        message.contains("lost its last 1 entries") && message.contains(layout::SIGNED_TREE),
        "{message}"
    );
}

#[test]
fn another_ledgers_signing_key_is_refused() {
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    ledger_with(ours.path(), 1);
    ledger_with(theirs.path(), 1);
    std::fs::copy(
        theirs.path().join(layout::SIGNING_KEY),
        ours.path().join(layout::SIGNING_KEY),
    )
    .unwrap();
    let message = refusal(ours.path()).to_string();
    assert!(
        message.contains(layout::SIGNING_KEY) && message.contains("restore"),
        "{message}"
    );
    // The record of the signed tree is the evidence even when the state is rebuilt.
    std::fs::remove_dir_all(ours.path().join(layout::STATE)).unwrap();
    assert!(matches!(refusal(ours.path()), LedgerError::Key(_)));
}

#[test]
fn another_ledgers_journal_is_refused() {
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    ledger_with(ours.path(), 2);
    ledger_with(theirs.path(), 4);
    std::fs::copy(
        theirs.path().join(layout::JOURNAL),
        ours.path().join(layout::JOURNAL),
    )
    .unwrap();
    std::fs::remove_dir_all(ours.path().join(layout::STATE)).unwrap();
    let message = refusal(ours.path()).to_string();
    assert!(
        message.contains("not the tree this ledger signed"),
        "{message}"
    );
}

#[test]
fn a_ledger_made_before_the_record_existed_opens_and_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with(dir.path(), 2);
    let record = dir.path().join(layout::SIGNED_TREE);
    let recorded = std::fs::read_to_string(&record).unwrap();
    std::fs::remove_file(&record).unwrap();
    drop(open(dir.path()));
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        recorded,
        "the state's latest checkpoint is checked and recorded again"
    );
    // Its key is checked against the state's checkpoint too.
    std::fs::remove_file(&record).unwrap();
    let other = tempfile::tempdir().unwrap();
    ledger_with(other.path(), 1);
    std::fs::copy(
        other.path().join(layout::SIGNING_KEY),
        dir.path().join(layout::SIGNING_KEY),
    )
    .unwrap();
    assert!(matches!(refusal(dir.path()), LedgerError::Key(_)));
}

/// A pause in writes leaves `signed-tree` holding the whole tree, though the last record was
/// skipped as too recent: what a backup of an idle service cuts at.
#[test]
fn a_pause_in_writes_records_the_whole_tree() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 10_000);
    for _ in 0..5 {
        submit(
            &ledger,
            s.admin,
            transfer(MovementKind::Earn, s.budget, s.alice, 1),
        )
        .unwrap();
    }
    let size = ledger.size().unwrap();
    let recorded = || {
        timecredits_ledger::signed::SignedTree::new(dir.path())
            .read()
            .unwrap()
            .map(|c| c.checkpoint.size)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while recorded() != Some(size) {
        assert!(
            std::time::Instant::now() < deadline,
            "signed-tree still holds {:?}, the ledger {size}",
            recorded()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The ledger is still open: the record came from the pause, not from the shutdown.
    assert_eq!(ledger.size().unwrap(), size);
}
