//! `Ledger::entries`, the front-to-back scan of committed entries: it returns what
//! `Ledger::entry` returns for every sequence number, stops at the size the ledger had when it
//! began however many entries are committed meanwhile, and reports a damaged record instead of
//! skipping it.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use timecredits_domain::{AccountKind, Entry, Intent, MovementKind};
use timecredits_ledger::journal::{JournalError, HEADER_LEN};
use timecredits_ledger::{layout, Ledger, LedgerError, Request};
use timecredits_testkit::intents::{fresh, text, transfer};
use timecredits_testkit::ledger::{entries, open, submit, Scheme};

/// A new ledger with every kind of entry (opens, allocations, earns, gifts, spends, a reversal,
/// a close, a key rotation), and batches large enough that the journal spans several of the
/// scan's reads.
fn mixed_history() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    add_mixed_history(&ledger);
    (dir, ledger)
}

fn add_mixed_history(ledger: &Ledger) {
    let s = Scheme::new(ledger, 1_000);
    let earn = transfer(MovementKind::Earn, s.budget, s.alice, 600);
    submit(ledger, s.admin, earn).unwrap();
    let gift = transfer(MovementKind::Gift, s.alice, s.bob, 60);
    submit(ledger, s.admin, gift).unwrap();
    let spend = transfer(MovementKind::Spend, s.alice, s.venue, 30);
    let spent = submit(ledger, s.admin, spend).unwrap().entries[0].seq;
    let reverse = Intent::Reverse {
        entry: spent,
        reference: Some(text("entered twice")),
    };
    submit(ledger, s.admin, reverse).unwrap();
    ledger.rotate_key(s.admin, fresh()).unwrap();
    for _ in 0..10 {
        let opens = (0..Intent::MAX_PARTS)
            .map(|_| Intent::Open {
                account_kind: AccountKind::Member,
                owner: None,
            })
            .collect();
        let request = Request {
            actor: s.admin,
            key: fresh(),
            intents: opens,
        };
        ledger.submit_blocking(request).unwrap();
    }
    let earn = transfer(MovementKind::Earn, s.budget, s.bob, 1);
    submit(ledger, s.admin, earn).unwrap();
    let empty = timecredits_testkit::ledger::open_account(ledger, AccountKind::Member);
    submit(ledger, s.admin, Intent::Close { account: empty }).unwrap();
}

fn scanned(ledger: &Ledger, range: std::ops::Range<u64>) -> Vec<Entry> {
    ledger
        .entries(range)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn the_scan_returns_what_entry_returns_for_every_seq() {
    let (dir, ledger) = mixed_history();
    let size = ledger.size().unwrap();
    let journal = std::fs::metadata(dir.path().join(layout::JOURNAL))
        .unwrap()
        .len();
    assert!(
        journal > 2 * timecredits_ledger::journal::SCAN_BUFFER as u64,
        "the journal ({journal} bytes) spans several reads"
    );
    let one_by_one = entries(&ledger);
    assert_eq!(scanned(&ledger, 0..u64::MAX), one_by_one);
    // Any part of the log, the end clamped to the size.
    for (from, to) in [
        (0, 1),
        (3, 9),
        (1000, 3500),
        (size - 1, size),
        (7, size + 10),
    ] {
        let to_read = to.min(size);
        assert_eq!(
            scanned(&ledger, from..to),
            one_by_one[from as usize..to_read as usize],
            "{from}..{to}"
        );
        assert_eq!(ledger.entries(from..to).unwrap().end(), to_read);
    }
    assert!(scanned(&ledger, size..size + 5).is_empty());
    assert!(scanned(&ledger, 5..5).is_empty());
    // The same after a close and a reopen.
    drop(ledger);
    let ledger = open(dir.path());
    assert_eq!(scanned(&ledger, 0..u64::MAX), one_by_one);
}

#[test]
fn a_damaged_record_in_the_middle_is_an_error_naming_its_offset() {
    let (dir, ledger) = mixed_history();
    let size = ledger.size().unwrap();
    let damaged = size / 2;
    // The record's offset: the records before it, back to back from the start of the file.
    let offset: u64 = (0..damaged)
        .map(|seq| ledger.entry_bytes(seq).unwrap().unwrap().len() as u64 + HEADER_LEN)
        .sum();
    drop(ledger);
    let journal = OpenOptions::new()
        .write(true)
        .open(dir.path().join(layout::JOURNAL))
        .unwrap();
    // One byte of the payload changed: the length still fits, the checksum does not.
    journal.write_all_at(b"X", offset + HEADER_LEN + 2).unwrap();
    drop(journal);

    // Opening reads only the last records, so the damage is found by the scan.
    let ledger = open(dir.path());
    let read: Vec<_> = ledger.entries(0..u64::MAX).unwrap().collect();
    assert_eq!(
        read.len() as u64,
        damaged + 1,
        "nothing is read after an error"
    );
    assert!(read[..damaged as usize].iter().all(Result::is_ok));
    match read.last() {
        Some(Err(LedgerError::Journal(JournalError::Corrupt { offset: at, .. }))) => {
            assert_eq!(*at, offset)
        }
        other => panic!("expected the damaged record's offset, got {other:?}"),
    }
    // A scan that ends before the damage reads fine.
    assert_eq!(scanned(&ledger, 0..damaged).len() as u64, damaged);
}

#[test]
fn a_scan_during_commits_reads_exactly_the_size_it_began_at() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path()));
    let s = Scheme::new(&ledger, 1_000_000);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (ledger, stop) = (Arc::clone(&ledger), Arc::clone(&stop));
            let (admin, budget) = (s.admin, s.budget);
            let member = s.alice;
            std::thread::spawn(move || {
                let mut committed = 0;
                while !stop.load(Ordering::Relaxed) {
                    let earn = transfer(MovementKind::Earn, budget, member, 1);
                    ledger
                        .submit_blocking(Request::single(admin, fresh(), earn))
                        .unwrap();
                    committed += 1;
                }
                committed
            })
        })
        .collect();
    let mut scans = 0;
    let mut grew = 0;
    while scans < 200 || grew < 20 {
        let before = ledger.size().unwrap();
        let scan = ledger.entries(0..u64::MAX).unwrap();
        let end = scan.end();
        let read: Vec<Entry> = scan.collect::<Result<_, _>>().unwrap();
        assert!(end >= before, "the scan began at {end}, after {before}");
        assert_eq!(read.len() as u64, end);
        assert!(read.iter().zip(0..).all(|(e, seq)| e.seq == seq));
        if ledger.size().unwrap() > end {
            grew += 1;
        }
        scans += 1;
        assert!(scans < 100_000, "the writers never overtook a scan");
    }
    stop.store(true, Ordering::Relaxed);
    let committed: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(committed > 0);
    // The entries the scans read are the ones committed: compare the last scan with the log.
    let size = ledger.size().unwrap();
    assert_eq!(scanned(&ledger, 0..size), entries(&ledger));
}
