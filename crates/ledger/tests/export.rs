//! Exports and receipts from the ledger's side: the chunks make up the documented file, bounds are
//! checked before anything is written, and receipts carry the entry and verify.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use timecredits_domain::export::ExportHeader;
use timecredits_domain::{AccountKind, Intent};
use timecredits_ledger::{ExportRange, LedgerError, Request};
use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::{open, submit, Scheme, ORIGIN};
use timecredits_tlog::merkle::{leaf_hash, Frontier};
use timecredits_tlog::note::NoteVerifier;
use uuid::Uuid;

#[test]
fn an_export_streams_the_header_then_every_entry_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    // One batch of 400 entries: well over one 64 KiB chunk.
    let opens = (0..400)
        .map(|_| Intent::Open {
            account_kind: AccountKind::Member,
            owner: None,
        })
        .collect();
    ledger
        .submit_blocking(Request {
            actor: Uuid::now_v7(),
            key: fresh(),
            intents: opens,
        })
        .unwrap();
    let size = ledger.size().unwrap();
    let mut export = ledger.export(ExportRange::default()).unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = export.next_chunk(&ledger).unwrap() {
        chunks.push(chunk);
    }
    assert!(chunks.len() > 2, "{} chunks", chunks.len());
    let header = ExportHeader::parse(&chunks[0]).unwrap();
    assert_eq!(header, *export.header());
    assert_eq!(
        (header.from, header.size, header.origin.as_str()),
        (0, size, ORIGIN)
    );
    assert_eq!(header.checkpoint, ledger.checkpoint().unwrap().note);
    assert_eq!(header.verifier_key, ledger.verifier_key());
    let body = chunks[1..].concat();
    let lines: Vec<&[u8]> = body
        .strip_suffix(b"\n")
        .unwrap()
        .split(|&b| b == b'\n')
        .collect();
    assert_eq!(lines.len() as u64, size);
    for (seq, line) in lines.iter().enumerate() {
        assert_eq!(*line, ledger.entry_bytes(seq as u64).unwrap().unwrap());
    }
    // write_to writes the same bytes.
    let mut written = Vec::new();
    let bytes = ledger
        .export(ExportRange::default())
        .unwrap()
        .write_to(&ledger, &mut written)
        .unwrap();
    assert_eq!(written, chunks.concat());
    assert_eq!(bytes, written.len() as u64);
}

#[test]
fn a_partial_export_carries_the_frontier_of_the_entries_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    Scheme::new(&ledger, 600);
    let size = ledger.size().unwrap();
    for from in 0..=size {
        let export = ledger.export(ExportRange { from, size: None }).unwrap();
        let header = export.header();
        let mut frontier = Frontier::from_hashes(from, header.frontier.clone()).unwrap();
        assert_eq!(frontier.root(), ledger.root(from).unwrap(), "from {from}");
        frontier.extend((from..size).map(|s| leaf_hash(&ledger.entry_bytes(s).unwrap().unwrap())));
        assert_eq!(frontier.root(), export.checkpoint().checkpoint.root);
    }
    assert!(matches!(
        ledger.export(ExportRange {
            from: size + 1,
            size: None
        }),
        Err(LedgerError::ExportStartsPastEnd { .. })
    ));
}

#[test]
fn a_receipt_is_a_tlog_proof_carrying_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 600);
    let seq = submit(
        &ledger,
        s.admin,
        transfer(
            timecredits_domain::MovementKind::Earn,
            s.budget,
            s.alice,
            90,
        ),
    )
    .unwrap()
    .entries[0]
        .seq;
    let receipt = ledger.receipt(seq).unwrap();
    assert_eq!(receipt.index, seq);
    assert_eq!(receipt.extra, ledger.entry_bytes(seq).unwrap());
    let verifier = NoteVerifier::parse(&ledger.verifier_key()).unwrap();
    let cp = receipt
        .verify(ORIGIN, &[verifier], receipt.extra.as_deref().unwrap())
        .unwrap();
    assert_eq!(cp, ledger.checkpoint().unwrap().checkpoint);
    assert!(matches!(
        ledger.receipt(ledger.size().unwrap()),
        Err(LedgerError::Proof(_))
    ));
}
