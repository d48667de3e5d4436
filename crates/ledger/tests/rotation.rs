//! Signing key rotation: the `key` entry, checkpoints signed by both keys during the overlap and
//! by the new key after it, the key files, and recovery from a rotation a crash interrupted.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::path::Path;

use chrono::TimeDelta;
use timecredits_domain::{EntryBody, KeyRotation, MovementKind};
use timecredits_ledger::{layout, Committed, Ledger, LedgerConfig, LedgerError};
use timecredits_testkit::intents::{fresh, key, transfer};
use timecredits_testkit::ledger::{config, open, submit, Scheme, ORIGIN};
use timecredits_tlog::checkpoint::open_checkpoint;
use timecredits_tlog::note::{open_note, NoteVerifier};
use uuid::Uuid;

/// Rotates as the operator does, with a new idempotency key.
fn rotate(ledger: &Ledger) -> Result<(String, Committed), LedgerError> {
    ledger.rotate_key(Uuid::nil(), fresh())
}

fn verifier(vkey: &str) -> NoteVerifier {
    NoteVerifier::parse(vkey).unwrap()
}

/// The verifier keys, among `keys`, whose signatures the note carries (all must verify).
fn signed_by(note: &str, keys: &[&str]) -> Vec<String> {
    let verifiers: Vec<NoteVerifier> = keys.iter().map(|k| verifier(k)).collect();
    let (_, verified) = open_note(note.as_bytes(), &verifiers).unwrap();
    verified.iter().map(NoteVerifier::to_vkey).collect()
}

fn with_overlap(overlap: TimeDelta) -> LedgerConfig {
    LedgerConfig {
        key_overlap: overlap,
        ..config()
    }
}

fn open_with(dir: &Path, overlap: TimeDelta) -> Result<Ledger, LedgerError> {
    Ledger::open(dir, with_overlap(overlap))
}

#[test]
fn a_rotation_is_an_endorsed_entry_and_both_keys_sign_during_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let scheme = Scheme::new(&ledger, 600);
    let old = ledger.verifier_key();

    let (new, committed) = rotate(&ledger).unwrap();
    assert_ne!(new, old);
    assert_eq!(ledger.verifier_key(), new);
    let entry = &committed.entries[0];
    let EntryBody::Key(rotation) = &entry.body else {
        panic!("a rotation commits a key entry, got {:?}", entry.body);
    };
    assert_eq!(rotation.vkey(), new);
    assert!(verifier(&old).verify(&KeyRotation::message(&new), rotation.endorsement()));
    assert!(entry.body.accounts().is_empty());
    assert_eq!(committed.checkpoint.checkpoint.size, entry.seq + 1);
    assert_eq!(
        signed_by(&committed.checkpoint.note, &[&old, &new]).len(),
        2
    );

    // Later checkpoints too, within the overlap.
    let later = submit(
        &ledger,
        scheme.admin,
        transfer(MovementKind::Earn, scheme.budget, scheme.alice, 60),
    )
    .unwrap();
    assert_eq!(signed_by(&later.checkpoint.note, &[&old, &new]).len(), 2);

    // The key files moved up one place.
    let file = |name| dir.path().join(name);
    assert!(file(layout::PREVIOUS_SIGNING_KEY).exists());
    assert!(!file(layout::NEXT_SIGNING_KEY).exists());
    drop(ledger);

    // Reopened after the overlap, only the new key signs.
    let ledger = open_with(dir.path(), TimeDelta::zero()).unwrap();
    assert_eq!(ledger.verifier_key(), new);
    let note = ledger.checkpoint().unwrap().note;
    open_checkpoint(note.as_bytes(), ORIGIN, &[verifier(&new)]).unwrap();
    assert_eq!(signed_by(&note, &[&old, &new]), [new]);
}

#[test]
fn a_second_rotation_is_refused_while_the_first_ones_overlap_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let scheme = Scheme::new(&ledger, 600);
    let first = ledger.verifier_key();
    let (second, rotated) = rotate(&ledger).unwrap();
    let size = rotated.checkpoint.checkpoint.size;

    // A minute later, another rotation is refused: the first key keeps its 30 days.
    let refused = rotate(&ledger).unwrap_err();
    let LedgerError::KeyOverlapRunning { until } = refused else {
        panic!("expected the overlap to refuse the rotation, got {refused:?}");
    };
    let recorded = rotated.entries[0].recorded;
    assert_eq!(until, recorded + TimeDelta::days(30));
    assert_eq!(ledger.verifier_key(), second);
    assert_eq!(
        ledger.size().unwrap(),
        size,
        "a refused rotation writes nothing"
    );
    assert!(!dir.path().join(layout::NEXT_SIGNING_KEY).exists());
    let later = submit(
        &ledger,
        scheme.admin,
        transfer(MovementKind::Earn, scheme.budget, scheme.alice, 60),
    )
    .unwrap();
    assert_eq!(
        signed_by(&later.checkpoint.note, &[&first, &second]),
        [second.clone(), first.clone()]
    );
    drop(ledger);

    // After the overlap, the key rotates again; each key endorses the next.
    let ledger = open_with(dir.path(), TimeDelta::zero()).unwrap();
    let (third, committed) = rotate(&ledger).unwrap();
    let EntryBody::Key(rotation) = &committed.entries[0].body else {
        panic!("not a key entry");
    };
    assert!(verifier(&second).verify(&KeyRotation::message(&third), rotation.endorsement()));
    assert_eq!(
        signed_by(&committed.checkpoint.note, &[&first, &second, &third]),
        std::slice::from_ref(&third)
    );
    drop(ledger);
    assert_eq!(open(dir.path()).verifier_key(), third);
}

#[test]
fn an_export_names_the_keys_that_signed_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    Scheme::new(&ledger, 600);
    let first = ledger.verifier_key();
    let before = ledger.checkpoint().unwrap().checkpoint.size;
    let header = |ledger: &Ledger, size| {
        let range = timecredits_ledger::ExportRange {
            from: 0,
            size: Some(size),
        };
        let export = ledger.export(range).unwrap();
        let header = export.header();
        (
            header.verifier_key.clone(),
            header.previous_verifier_key.clone(),
        )
    };
    let (second, rotated) = rotate(&ledger).unwrap();
    // During the overlap both keys are named, the newer first.
    let during = rotated.checkpoint.checkpoint.size;
    assert_eq!(header(&ledger, during), (second, Some(first.clone())));
    drop(ledger);
    let ledger = open_with(dir.path(), TimeDelta::zero()).unwrap();
    let (third, _) = rotate(&ledger).unwrap();
    // Two rotations later, an old size still names the first key, which the ledger no longer
    // holds.
    assert_eq!(header(&ledger, before), (first, None));
    let latest = ledger.checkpoint().unwrap().checkpoint.size;
    assert_eq!(header(&ledger, latest), (third, None));
}

#[test]
fn an_interrupted_rotation_is_finished_if_its_entry_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let old = ledger.verifier_key();
    let (new, _) = rotate(&ledger).unwrap();
    drop(ledger);
    // The files as they were after the entry was committed, before they moved up.
    let file = |name| dir.path().join(name);
    std::fs::rename(file(layout::SIGNING_KEY), file(layout::NEXT_SIGNING_KEY)).unwrap();
    std::fs::rename(
        file(layout::PREVIOUS_SIGNING_KEY),
        file(layout::SIGNING_KEY),
    )
    .unwrap();

    let ledger = open(dir.path());
    assert_eq!(ledger.verifier_key(), new);
    assert!(!file(layout::NEXT_SIGNING_KEY).exists());
    assert_eq!(
        signed_by(&ledger.checkpoint().unwrap().note, &[&old, &new]).len(),
        2
    );
}

#[test]
fn a_rotation_whose_entry_was_never_committed_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let old = ledger.verifier_key();
    let size = ledger.size().unwrap();
    drop(ledger);
    // A key written for a rotation that crashed before its entry was durable.
    let other = tempfile::tempdir().unwrap();
    let stray = open(other.path());
    drop(stray);
    let file = |name| dir.path().join(name);
    std::fs::copy(
        other.path().join(layout::SIGNING_KEY),
        file(layout::NEXT_SIGNING_KEY),
    )
    .unwrap();

    let ledger = open(dir.path());
    assert_eq!(ledger.verifier_key(), old);
    assert_eq!(ledger.size().unwrap(), size);
    assert!(!file(layout::NEXT_SIGNING_KEY).exists());
}

#[test]
fn a_signing_key_that_is_not_the_one_the_log_names_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    rotate(&ledger).unwrap();
    drop(ledger);
    let file = |name| dir.path().join(name);
    // Restoring the old key over the new one by mistake.
    std::fs::copy(
        file(layout::PREVIOUS_SIGNING_KEY),
        file(layout::SIGNING_KEY),
    )
    .unwrap();
    let err = open_with(dir.path(), TimeDelta::days(1)).unwrap_err();
    assert!(
        matches!(&err, LedgerError::Key(m) if m.contains("is not the key the ledger's last key entry hands over to")),
        "{err}"
    );
}

#[test]
fn a_rotation_survives_a_rebuild_of_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let (new, _) = rotate(&ledger).unwrap();
    drop(ledger);
    std::fs::remove_dir_all(dir.path().join(layout::STATE)).unwrap();
    let ledger = open(dir.path());
    assert_eq!(ledger.verifier_key(), new);
}

#[test]
fn a_repeated_rotation_request_answers_with_the_first_and_makes_no_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let admin = Uuid::now_v7();
    let (new, first) = ledger.rotate_key(admin, key("rotate-1")).unwrap();
    let size = ledger.size().unwrap();
    let (again, repeat) = ledger.rotate_key(admin, key("rotate-1")).unwrap();
    assert_eq!(again, new);
    assert!(repeat.replayed);
    assert_eq!(repeat.entries, first.entries);
    assert_eq!(repeat.checkpoint, first.checkpoint);
    assert_eq!(ledger.size().unwrap(), size);
    assert_eq!(ledger.verifier_key(), new);
    assert!(!dir.path().join(layout::NEXT_SIGNING_KEY).exists());

    // A key the same actor used for another request.
    let opened = submit(
        &ledger,
        admin,
        timecredits_domain::Intent::Open {
            account_kind: timecredits_domain::AccountKind::Member,
            owner: None,
        },
    )
    .unwrap();
    let err = ledger
        .rotate_key(admin, opened.entries[0].key.clone())
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::IdempotencyConflict { .. }),
        "{err}"
    );
    assert_eq!(ledger.verifier_key(), new);
}
