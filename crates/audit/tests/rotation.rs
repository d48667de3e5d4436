//! Verifying exports across a signing key rotation: the verifier follows the `key` entries from
//! the pinned key to the new one, and refuses hand-overs the pinned key did not endorse and
//! checkpoints not signed by the key the log last handed over to.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use std::path::Path;

use chrono::TimeDelta;
use common::ledger::Scheme;
use common::*;
use timecredits_audit::{Failure, Trust};
use timecredits_domain::export::ExportHeader;
use timecredits_ledger::{keys, layout, ExportRange, Ledger, LedgerConfig};
use timecredits_testkit::ledger::{config, ORIGIN};
use timecredits_tlog::checkpoint::sign_checkpoint;
use timecredits_tlog::note::NoteSigner;

/// A ledger with a realistic history, a key rotation in the middle of it, more entries after,
/// reopened after the overlap so that its last checkpoint is signed by the new key alone.
struct Rotated {
    dir: tempfile::TempDir,
    ledger: Ledger,
    old: String,
    new: String,
    rotated_at: u64,
}

fn with_overlap(overlap: TimeDelta) -> LedgerConfig {
    LedgerConfig {
        key_overlap: overlap,
        ..config()
    }
}

impl Rotated {
    fn new() -> Rotated {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let ledger = Ledger::open(&data, with_overlap(TimeDelta::days(30))).unwrap();
        let old = ledger.verifier_key();
        Scheme::build(&ledger);
        let (new, committed) = ledger
            .rotate_key(
                uuid::Uuid::nil(),
                timecredits_domain::IdempotencyKey::new("rotate").unwrap(),
            )
            .unwrap();
        let rotated_at = committed.entries[0].seq;
        drop(ledger);
        let ledger = Ledger::open(&data, with_overlap(TimeDelta::zero())).unwrap();
        Scheme::build(&ledger);
        Rotated {
            dir,
            ledger,
            old,
            new,
            rotated_at,
        }
    }

    fn export(&self) -> ExportFile {
        let file = ExportFile::new("rotated.jsonl");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file.path).unwrap());
        self.ledger
            .export(ExportRange::default())
            .unwrap()
            .write_to(&self.ledger, &mut out)
            .unwrap();
        std::io::Write::flush(&mut out).unwrap();
        drop(out);
        file
    }

    fn old_signer(&self) -> NoteSigner {
        let path = self
            .dir
            .path()
            .join("data")
            .join(layout::PREVIOUS_SIGNING_KEY);
        NoteSigner::new(ORIGIN, keys::load(&path).unwrap()).unwrap()
    }
}

fn trust(keys: &[&str]) -> Trust {
    Trust::new(keys, None).unwrap()
}

fn resign(lines: &mut [Vec<u8>], signer: &NoteSigner) {
    let mut header = ExportHeader::parse(&lines[0]).unwrap();
    let checkpoint =
        timecredits_tlog::checkpoint::unverified_checkpoint(&header.checkpoint).unwrap();
    header.checkpoint = sign_checkpoint(&checkpoint, &[signer]).unwrap();
    let mut line = header.to_line();
    line.pop();
    lines[0] = line;
}

fn verify(path: &Path, keys: &[&str]) -> timecredits_audit::Report {
    verify_with(path, &trust(keys), None)
}

#[test]
fn an_export_across_a_rotation_verifies_with_the_old_key_alone() {
    let r = Rotated::new();
    let file = r.export();
    let report = verify(&file.path, &[&r.old]);
    assert!(report.is_valid(), "{:?}", report.failure);
    assert_eq!(report.rotations.len(), 1);
    assert_eq!(
        (report.rotations[0].seq, report.rotations[0].vkey.as_str()),
        (r.rotated_at, r.new.as_str())
    );
    assert!(report.summary.is_some(), "the rules were replayed");
    // The new key pinned alone also verifies: the auditor learned it out of band.
    assert!(verify(&file.path, &[&r.new]).is_valid());
}

#[test]
fn a_hand_over_the_pinned_key_did_not_endorse_is_refused() {
    let r = Rotated::new();
    let file = r.export();
    // An auditor who pinned some other ledger's key: the log's own hand-over proves nothing.
    let stranger = signer_for(ORIGIN, 99).verifier().to_vkey();
    assert_failure!(
        verify(&file.path, &[&stranger]),
        Failure::KeyRotation { .. },
        &format!(
            "entry {}: the key rotation is endorsed by none of the pinned keys",
            r.rotated_at
        )
    );
}

#[test]
fn after_two_rotations_the_newest_key_alone_names_the_key_to_pin() {
    let r = Rotated::new();
    let (newest, committed) = r
        .ledger
        .rotate_key(
            uuid::Uuid::nil(),
            timecredits_domain::IdempotencyKey::new("rotate-again").unwrap(),
        )
        .unwrap();
    let file = r.export();
    // The newest key cannot start the chain: the first hand-over was endorsed by the first key,
    // which no entry names; the failure names the key that entry hands over to.
    assert_failure!(
        verify(&file.path, &[&newest]),
        Failure::KeyRotation { .. },
        &format!(
            "entry {}: the key rotation is endorsed by none of the pinned keys: pin {}, the key \
             it hands over to, or the key the ledger had before it",
            r.rotated_at, r.new
        )
    );
    // Pinning the key it names starts the chain; so does the first key.
    let report = verify(&file.path, &[&r.new]);
    assert!(report.is_valid(), "{:?}", report.failure);
    assert_eq!(report.rotations.len(), 2);
    assert_eq!(report.rotations[1].seq, committed.entries[0].seq);
    assert!(verify(&file.path, &[&r.old]).is_valid());
}

#[test]
fn a_checkpoint_signed_by_the_retired_key_alone_is_refused() {
    let r = Rotated::new();
    let file = r.export();
    let old = r.old_signer();
    let path = file.edited("old-key.jsonl", |lines| resign(lines, &old));
    assert_failure!(
        verify(&path, &[&r.old]),
        Failure::NotCurrentKey { .. },
        &format!(
            "the export's checkpoint is not signed by {}, the key that entry {} handed over to",
            r.new, r.rotated_at
        )
    );
}

#[test]
fn an_altered_endorsement_is_refused() {
    let r = Rotated::new();
    let file = r.export();
    let path = file.edited("endorsement.jsonl", |lines| {
        let entry = &mut lines[r.rotated_at as usize + 1];
        let text = String::from_utf8(entry.clone()).unwrap();
        let at = text.find(r#""endorsement":""#).unwrap() + r#""endorsement":""#.len();
        entry[at] = if entry[at] == b'A' { b'B' } else { b'A' };
    });
    assert_failure!(
        verify(&path, &[&r.old]),
        Failure::KeyRotation { .. },
        &format!(
            "entry {}: the key rotation is endorsed by none of the pinned keys",
            r.rotated_at
        )
    );
}
