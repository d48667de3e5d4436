//! Tamper tests over real exports written by the ledger: every kind of change an attacker (or a
//! broken ledger) could make is detected, with a message that names what is wrong.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use std::path::Path;

use common::ledger::Scheme;
use common::*;
use ed25519_dalek::SigningKey;
use timecredits_audit::proofs::{check_consistency, check_receipt};
use timecredits_audit::{Failure, Trust, UsageError};
use timecredits_domain::export::ExportHeader;
use timecredits_domain::MovementKind;
use timecredits_ledger::{ExportRange, Ledger, LedgerError};
use timecredits_testkit::intents::transfer;
use timecredits_testkit::ledger::{open, submit, ORIGIN};
use timecredits_tlog::checkpoint::{sign_checkpoint, Checkpoint};
use timecredits_tlog::merkle::ProofError;
use timecredits_tlog::note::NoteSigner;
use timecredits_tlog::proof::{TlogProof, TlogProofError};

/// A ledger with the realistic scheme, and its verifier key.
struct Fixture {
    dir: tempfile::TempDir,
    ledger: Ledger,
    trust: Trust,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(&dir.path().join("data"));
        Scheme::build(&ledger);
        let trust = Trust::new(&[ledger.verifier_key()], None).unwrap();
        Fixture { dir, ledger, trust }
    }

    /// Writes an export of `range` to `name` and returns it as an [`ExportFile`]-like path.
    fn export(&self, name: &str, range: ExportRange) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        self.ledger
            .export(range)
            .unwrap()
            .write_to(&self.ledger, &mut out)
            .unwrap();
        std::io::Write::flush(&mut out).unwrap();
        path
    }

    fn full(&self) -> ExportFile {
        let file = ExportFile::new("full.jsonl");
        std::fs::copy(
            self.export("full.jsonl", ExportRange::default()),
            &file.path,
        )
        .unwrap();
        file
    }
}

/// The line of entry `seq` in an export's lines (the header is line 0).
fn line(seq: u64) -> usize {
    seq as usize + 1
}

/// Sets a header field of an export's lines.
fn with_header(lines: &mut [Vec<u8>], edit: impl FnOnce(&mut ExportHeader)) {
    let mut header = ExportHeader::parse(&lines[0]).unwrap();
    edit(&mut header);
    let mut line = header.to_line();
    line.pop();
    lines[0] = line;
}

#[test]
fn a_clean_real_export_verifies_and_adds_up_to_the_ledger() {
    let f = Fixture::new();
    let file = f.full();
    let report = verify_with(&file.path, &f.trust, None);
    assert!(report.is_valid(), "{:?}", report.failure);
    let size = f.ledger.size().unwrap();
    assert_eq!((report.checked, report.header.size), (size, size));
    let summary = report.summary.expect("replayed");
    let programme = f
        .ledger
        .account(f.ledger.programme_account())
        .unwrap()
        .unwrap();
    assert_eq!(summary.in_circulation, -i128::from(programme.balance));
    assert_eq!(summary.moved.allocated, 6600);
    assert_eq!(summary.moved.reversed, 45);
    assert_eq!(summary.accounts.closed, 1);
    assert_eq!(summary.accounts.total, 9);
}

#[test]
fn changing_any_byte_of_an_entry_is_detected() {
    let f = Fixture::new();
    let file = f.full();
    let lines = file.lines();
    // The spend of 90 minutes: every field of a movement is on its line.
    let seq = (0..f.ledger.size().unwrap())
        .find(|&s| {
            let bytes = &lines[line(s)];
            String::from_utf8_lossy(bytes).contains(r#""kind":"spend","#)
                && String::from_utf8_lossy(bytes).contains(r#""minutes":90"#)
        })
        .unwrap();
    let original = lines[line(seq)].clone();
    for at in 0..original.len() {
        let byte = original[at];
        let replacement = match byte {
            b'0'..=b'8' => byte + 1,
            b'9' => b'0',
            b'a'..=b'y' => byte + 1,
            b'z' => b'a',
            _ => b'#',
        };
        let path = file.edited("edited.jsonl", |lines| lines[line(seq)][at] = replacement);
        let failure = failure(&path, &f.trust);
        // Either the entry itself is refused (naming it), or the next one is (its time moved
        // later than the next entry's), or it is a valid entry that was never signed, and the
        // root gives it away.
        assert!(
            failure.starts_with(&format!("entry {seq}: "))
                || failure.starts_with(&format!("entry {}: recorded at", seq + 1))
                || failure.contains("an entry was altered"),
            "byte {at} ({:?} -> {:?}): {failure}",
            byte as char,
            replacement as char
        );
    }
    // Three precise cases. A smaller spend still obeys the rules, until the venue cannot retire
    // what it was meant to have redeemed; a smaller gift obeys the rules to the end, so only the
    // root catches it; a broken quote is refused as it is read.
    let text = String::from_utf8(original).unwrap();
    let path = file.edited("amount.jsonl", |lines| {
        lines[line(seq)] = text
            .replace(r#""minutes":90"#, r#""minutes":80"#)
            .into_bytes()
    });
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::Rule { .. },
        "holds 140 minutes; 150 are needed"
    );
    let gift = (0..f.ledger.size().unwrap())
        .find(|&s| String::from_utf8_lossy(&lines[line(s)]).contains(r#""kind":"gift","#))
        .unwrap();
    let path = file.edited("gift.jsonl", |lines| {
        let text = String::from_utf8(lines[line(gift)].clone()).unwrap();
        lines[line(gift)] = text
            .replace(r#""minutes":30"#, r#""minutes":20"#)
            .into_bytes()
    });
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::RootMismatch { .. },
        "but the checkpoint signed root"
    );
    let path = file.edited("quote.jsonl", |lines| {
        lines[line(seq)] = text.replacen(r#"{"seq""#, r#"{seq""#, 1).into_bytes()
    });
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::Decode { .. },
        &format!("entry {seq}: not an entry object")
    );
}

#[test]
fn deleted_duplicated_reordered_or_inserted_entries_are_detected() {
    let f = Fixture::new();
    let file = f.full();
    let k = 12u64;
    type Edit<'a> = Box<dyn Fn(&mut Vec<Vec<u8>>) + 'a>;
    let cases: Vec<(&str, Edit, String)> = vec![
        (
            "deleted",
            Box::new(|l| {
                l.remove(line(k));
            }),
            format!("entry {k}: the line at this position holds entry {} (an entry is missing, or entries are out of order)", k + 1),
        ),
        (
            "duplicated",
            Box::new(|l| {
                let copy = l[line(k)].clone();
                l.insert(line(k), copy);
            }),
            format!("entry {}: the line at this position holds entry {k} (an entry is repeated, or entries are out of order)", k + 1),
        ),
        (
            "reordered",
            Box::new(|l| l.swap(line(k), line(k + 1))),
            format!("entry {k}: the line at this position holds entry {}", k + 1),
        ),
        (
            "inserted",
            Box::new(|l| {
                // A forged copy of entry k+3 passed off as entry k.
                let forged = String::from_utf8(l[line(k + 3)].clone())
                    .unwrap()
                    .replacen(&format!(r#"{{"seq":{}"#, k + 3), &format!(r#"{{"seq":{k}"#), 1);
                l.insert(line(k), forged.into_bytes());
            }),
            format!("entry {}: the line at this position holds entry {k}", k + 1),
        ),
    ];
    for (name, edit, message) in cases {
        let path = file.edited(&format!("{name}.jsonl"), edit);
        let report = verify_with(&path, &f.trust, None);
        assert_failure!(&report, Failure::Sequence { .. }, &message);
    }
}

#[test]
fn truncated_or_extended_exports_are_detected() {
    let f = Fixture::new();
    let file = f.full();
    let size = f.ledger.size().unwrap();
    let path = file.edited("short.jsonl", |l| l.truncate(l.len() - 3));
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::Truncated { .. },
        &format!("the export ends after entry {}, but its checkpoint covers entries up to {}: 3 missing (truncated)", size - 4, size - 1)
    );
    let path = file.edited("header-only.jsonl", |l| l.truncate(1));
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::Truncated { .. },
        &format!("the export holds no entries, but its checkpoint covers {size} from entry 0 on")
    );
    // Cut in the middle of the last line.
    let bytes = std::fs::read(&file.path).unwrap();
    let cut = file.sibling("cut.jsonl");
    std::fs::write(&cut, &bytes[..bytes.len() - 20]).unwrap();
    assert_failure!(
        verify_with(&cut, &f.trust, None),
        Failure::Unterminated { .. },
        &format!(
            "entry {}: the line has no final newline; the export is cut short",
            size - 1
        )
    );
    let path = file.edited("long.jsonl", |l| {
        let copy = l[l.len() - 1].clone();
        l.push(copy);
    });
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::TrailingData { .. },
        &format!("entry {size}: the export goes on past the {size} entries its checkpoint covers")
    );
    // A server that met a damaged record says so where the entry should be.
    let path = file.edited("interrupted.jsonl", |l| {
        l.truncate(l.len() - 2);
        let mut said = timecredits_domain::export::interrupted_line("record 9 is damaged");
        said.pop();
        l.push(said);
    });
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::Interrupted { .. },
        &format!(
            "the export is incomplete: where entry {} should be, the server says it could not \
             finish the export: record 9 is damaged",
            size - 2
        )
    );
}

#[test]
fn a_checkpoint_re_signed_by_another_key_is_refused() {
    let f = Fixture::new();
    let file = f.full();
    let impostor = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[66; 32])).unwrap();
    let path = file.edited("resigned.jsonl", |l| {
        with_header(l, |h| {
            let cp = f.ledger.checkpoint().unwrap().checkpoint;
            h.checkpoint = sign_checkpoint(&cp, &[&impostor]).unwrap();
            h.verifier_key = impostor.verifier().to_vkey();
        })
    });
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::NotPinnedKey { .. },
        &format!(
            "the export's checkpoint is not signed by any pinned key; its header says it is \
             signed by {}: pin that key if a trusted source confirms it",
            impostor.verifier()
        )
    );
    // The impostor's own key verifies its signature, but then its history is the ledger's: an
    // auditor who pins the impostor's key is not fooled about whose ledger it is only if the
    // key was obtained out of band, which is why the header's key is never trusted.
    let trusted = Trust::new(&[impostor.verifier().to_vkey()], None).unwrap();
    assert!(verify_with(&path, &trusted, None).is_valid());
}

#[test]
fn a_checkpoint_for_another_size_or_origin_is_refused() {
    let f = Fixture::new();
    let file = f.full();
    let size = f.ledger.size().unwrap();
    let older = f
        .ledger
        .checkpoint_at(size - 1)
        .unwrap()
        .expect("every batch is signed");
    let path = file.edited("older.jsonl", |l| {
        with_header(l, |h| h.checkpoint = older.note.clone())
    });
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::HeaderMismatch { field: "size", .. },
        &format!(
            "the header says size \"{size}\", but its signed checkpoint says \"{}\"",
            size - 1
        )
    );
    let path = file.edited("older-size.jsonl", |l| {
        with_header(l, |h| {
            h.checkpoint = older.note.clone();
            h.size = size - 1;
        })
    });
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::TrailingData { .. },
        &format!("entry {}: the export goes on past", size - 1)
    );
    // Pinned to another origin, the genuine checkpoint is refused.
    let elsewhere = Trust::new(&[f.ledger.verifier_key()], Some("other.example/ledger")).unwrap();
    assert_failure!(
        verify_with(&file.path, &elsewhere, None),
        Failure::Checkpoint(_),
        "checkpoint is for origin \"ledger.example/timecredits\", expected \"other.example/ledger\""
    );
    let path = file.edited("origin.jsonl", |l| {
        with_header(l, |h| h.origin = "other.example/ledger".into())
    });
    assert_failure!(
        verify_with(&path, &f.trust, None),
        Failure::HeaderMismatch {
            field: "origin",
            ..
        },
        "the header says origin \"other.example/ledger\""
    );
}

#[test]
fn partial_exports_prove_their_entries_and_extend_kept_checkpoints() {
    let f = Fixture::new();
    let size = f.ledger.size().unwrap();
    let signed: Vec<u64> = (1..=size)
        .filter(|&s| f.ledger.checkpoint_at(s).unwrap().is_some())
        .collect();
    let at = signed.len() / 2;
    let from = signed[at];
    let kept = f
        .ledger
        .checkpoint_at(from)
        .unwrap()
        .expect("a batch ended there");
    let path = f.export("partial.jsonl", ExportRange { from, size: None });
    let report = verify_with(&path, &f.trust, None);
    assert!(report.is_valid(), "{:?}", report.failure);
    assert_eq!(report.checked, size - from);
    assert!(
        report.summary.is_none(),
        "a partial export cannot be replayed"
    );
    assert!(timecredits_audit::render::report(&report).contains("rules not replayed"));

    // Every kept checkpoint from `from` on is extended.
    for kept_size in [from, signed[at + 2], size] {
        let kept = f
            .trust
            .open(&f.ledger.checkpoint_at(kept_size).unwrap().unwrap().note)
            .unwrap();
        let report = verify_with(&path, &f.trust, Some(&kept));
        assert!(
            report.is_valid(),
            "kept size {kept_size}: {:?}",
            report.failure
        );
        assert_eq!(report.extends, Some(kept_size));
    }
    let kept = f.trust.open(&kept.note).unwrap();
    let full = f.export("full.jsonl", ExportRange::default());
    assert_eq!(
        verify_with(&full, &f.trust, Some(&kept)).extends,
        Some(from)
    );

    // A kept checkpoint before the export's start cannot be compared.
    let before = signed[at - 1];
    let early = f
        .trust
        .open(&f.ledger.checkpoint_at(before).unwrap().unwrap().note)
        .unwrap();
    let options = timecredits_audit::VerifyOptions {
        since: Some(&early),
        ..Default::default()
    };
    assert!(matches!(
        timecredits_audit::verify_file(&path, &f.trust, &options),
        Err(UsageError::KeptBeforeExport { kept, from: f }) if (kept, f) == (before, from)
    ));

    // The frontier is bound by the signed root.
    let file = ExportFile::new("x");
    let tampered = file.sibling("frontier.jsonl");
    let mut lines = lines(&path);
    with_header(&mut lines, |h| h.frontier[0][0] ^= 1);
    write_lines(&tampered, &lines);
    assert_failure!(
        verify_with(&tampered, &f.trust, None),
        Failure::RootMismatch { .. },
        "an entry was altered"
    );
}

/// Copies a (closed) data directory.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_later_export_that_rewrites_history_is_caught_with_the_kept_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (honest_dir, forked_dir) = (dir.path().join("honest"), dir.path().join("forked"));
    let scheme;
    {
        let ledger = open(&honest_dir);
        scheme = Scheme::build(&ledger);
    }
    // The operator keeps a copy, then the two histories part: with the same key and origin.
    copy_dir(&honest_dir, &forked_dir);
    let honest = open(&honest_dir);
    let forked = open(&forked_dir);
    let partner = uuid::Uuid::now_v7();
    let earn = |to, minutes| transfer(MovementKind::Earn, scheme.budget, to, minutes);
    submit(&honest, partner, earn(scheme.members[0], 60)).unwrap();
    submit(&forked, partner, earn(scheme.members[1], 600)).unwrap();
    let trust = Trust::new(&[honest.verifier_key()], None).unwrap();
    assert_eq!(honest.verifier_key(), forked.verifier_key());
    // The auditor kept the honest ledger's checkpoint...
    let kept = trust.open(&honest.checkpoint().unwrap().note).unwrap();
    // ...and later gets an export of the forked one, grown further.
    submit(&forked, partner, earn(scheme.members[2], 30)).unwrap();
    let path = dir.path().join("forked.jsonl");
    let mut out = std::fs::File::create(&path).unwrap();
    forked
        .export(ExportRange::default())
        .unwrap()
        .write_to(&forked, &mut out)
        .unwrap();

    let report = verify_with(&path, &trust, None);
    assert!(report.is_valid(), "on its own the fork is a valid ledger");
    let report = verify_with(&path, &trust, Some(&kept));
    let Some(Failure::NotConsistent(evidence)) = &report.failure else {
        panic!("expected an inconsistency, got {:?}", report.failure)
    };
    assert_eq!(evidence.error, ProofError::OldRootMismatch);
    assert_eq!(
        (evidence.old_size, evidence.new_size),
        (kept.checkpoint.size, kept.checkpoint.size + 1)
    );
    let text = report.failure.as_ref().unwrap().to_string();
    for needle in [
        format!(
            "the log of size {} does not extend the log of size {}",
            kept.checkpoint.size + 1,
            kept.checkpoint.size
        ),
        format!(
            "the first {} entries of the export hash to root",
            kept.checkpoint.size
        ),
        format!("older checkpoint:\n{}", kept.note),
        format!("newer checkpoint:\n{}", forked.checkpoint().unwrap().note),
        "consistency proof from".to_owned(),
    ] {
        assert!(text.contains(&needle), "{text}\nlacks {needle}");
    }
    // The printed proof is the ledger's own: the forked ledger would serve the very same one,
    // and it fails the same way in the consistency check.
    let new = trust.open(&forked.checkpoint().unwrap().note).unwrap();
    assert_eq!(
        forked
            .consistency_proof(kept.checkpoint.size, new.checkpoint.size)
            .unwrap(),
        evidence.proof
    );
    assert!(matches!(
        check_consistency(&kept, &new, &evidence.proof).unwrap(),
        Err(Failure::NotConsistent(_))
    ));
    // The honest ledger's own later export extends the kept checkpoint.
    submit(&honest, partner, earn(scheme.members[3], 30)).unwrap();
    let path = dir.path().join("honest.jsonl");
    let mut out = std::fs::File::create(&path).unwrap();
    honest
        .export(ExportRange::default())
        .unwrap()
        .write_to(&honest, &mut out)
        .unwrap();
    assert_eq!(
        verify_with(&path, &trust, Some(&kept)).extends,
        Some(kept.checkpoint.size)
    );
}

#[test]
fn receipts_verify_and_altered_receipts_do_not() {
    let f = Fixture::new();
    let seq = 14;
    let receipt = f.ledger.receipt(seq).unwrap();
    let ok = check_receipt(&TlogProof::parse(&receipt.to_text()).unwrap(), &f.trust).unwrap();
    assert_eq!(ok.entry, f.ledger.entry(seq).unwrap().unwrap());
    assert_eq!(ok.checkpoint, f.ledger.checkpoint().unwrap().checkpoint);

    // The entry altered: a different amount.
    let mut altered = receipt.clone();
    let text = String::from_utf8(altered.extra.clone().unwrap()).unwrap();
    let minutes = text
        .split(r#""minutes":"#)
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    altered.extra = Some(
        text.replace(&format!(r#""minutes":{minutes}"#), r#""minutes":6000"#)
            .into_bytes(),
    );
    let failure = check_receipt(&altered, &f.trust).unwrap_err();
    assert!(matches!(
        failure,
        Failure::Receipt(TlogProofError::Inclusion(ProofError::RootMismatch))
    ));
    assert_eq!(failure.to_string(), "the receipt does not verify: tlog-proof inclusion proof: proof does not lead to the expected tree root");

    // A hash of the path altered.
    let mut altered = receipt.clone();
    altered.hashes[1][0] ^= 0x80;
    assert!(matches!(
        check_receipt(&altered, &f.trust),
        Err(Failure::Receipt(TlogProofError::Inclusion(
            ProofError::RootMismatch
        )))
    ));
    // A path cut short.
    let mut altered = receipt.clone();
    altered.hashes.pop();
    assert!(matches!(
        check_receipt(&altered, &f.trust),
        Err(Failure::Receipt(TlogProofError::Inclusion(
            ProofError::WrongProofLength { .. }
        )))
    ));
    // Another entry's bytes with this entry's path.
    let mut altered = receipt.clone();
    altered.extra = f.ledger.entry_bytes(seq + 1).unwrap();
    assert_eq!(
        check_receipt(&altered, &f.trust).unwrap_err().to_string(),
        format!(
            "the receipt's entry says seq {}, but the proof is for index {seq}",
            seq + 1
        )
    );
    // No entry at all.
    let mut altered = receipt;
    altered.extra = None;
    assert!(matches!(
        check_receipt(&altered, &f.trust),
        Err(Failure::ReceiptWithoutEntry)
    ));
}

#[test]
fn export_bounds_must_be_signed_sizes() {
    let f = Fixture::new();
    let size = f.ledger.size().unwrap();
    // The group issue is one batch of three entries: no checkpoint inside it.
    let group_end = (1..size)
        .find(|&s| f.ledger.checkpoint_at(s).unwrap().is_none())
        .expect("a batch of several entries");
    let err = f
        .ledger
        .export(ExportRange {
            from: 0,
            size: Some(group_end),
        })
        .unwrap_err();
    assert!(matches!(err, LedgerError::NoCheckpointAt { .. }));
    let next = (group_end..)
        .find(|&s| f.ledger.checkpoint_at(s).unwrap().is_some())
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "no signed checkpoint at tree size {group_end}; the nearest are {} and {next}",
            group_end - 1
        )
    );
    let err = f
        .ledger
        .export(ExportRange {
            from: 0,
            size: Some(size + 5),
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no signed checkpoint at tree size {}; the latest is {size}",
            size + 5
        )
    );
    let err = f
        .ledger
        .export(ExportRange {
            from: 9,
            size: Some(8),
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "an export cannot start at entry 9: it ends at tree size 8"
    );
    // A bounded export verifies against the checkpoint of its size.
    let path = f.export(
        "bounded.jsonl",
        ExportRange {
            from: 0,
            size: Some(8),
        },
    );
    let report = verify_with(&path, &f.trust, None);
    assert!(report.is_valid(), "{:?}", report.failure);
    assert_eq!(report.checkpoint.unwrap().size, 8);
}

#[test]
fn the_ledgers_consistency_proofs_verify() {
    let f = Fixture::new();
    let size = f.ledger.size().unwrap();
    let new = f.trust.open(&f.ledger.checkpoint().unwrap().note).unwrap();
    for old_size in [1, 5, 8, size - 1, size] {
        let Some(old) = f.ledger.checkpoint_at(old_size).unwrap() else {
            continue;
        };
        let old = f.trust.open(&old.note).unwrap();
        let proof = f.ledger.consistency_proof(old_size, size).unwrap();
        assert!(
            check_consistency(&old, &new, &proof).unwrap().is_ok(),
            "from {old_size}"
        );
        if !proof.is_empty() {
            let mut bad = proof.clone();
            bad[0][5] ^= 1;
            assert!(check_consistency(&old, &new, &bad).unwrap().is_err());
        }
    }
    // Given in the wrong order, the check cannot be made.
    let old = f
        .trust
        .open(&f.ledger.checkpoint_at(5).unwrap().unwrap().note)
        .unwrap();
    assert!(matches!(
        check_consistency(&new, &old, &[]),
        Err(UsageError::CheckpointsSwapped { .. })
    ));
    // A checkpoint only of the right origin and key counts.
    let cp: Checkpoint = new.checkpoint.clone();
    let impostor = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[3; 32])).unwrap();
    assert!(f
        .trust
        .open(&sign_checkpoint(&cp, &[&impostor]).unwrap())
        .is_err());
}
