//! AUDIT.md's Python snippet, extracted from the guide and run on real exports: auditors need
//! nothing from us, and the guide's code stays correct.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ledger::Scheme;
use timecredits_ledger::{ExportRange, Ledger};
use timecredits_testkit::ledger::{config, open};

const INSTALL: &str = "pip install -r tests/python-requirements.txt";

/// The first ```python block of AUDIT.md, written to `dir`.
fn snippet(dir: &Path) -> PathBuf {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../AUDIT.md");
    let text = std::fs::read_to_string(&guide).expect("AUDIT.md at the repository root");
    let code = text
        .split_once("```python\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(code, _)| code)
        .expect("AUDIT.md has a ```python block");
    let path = dir.join("verify_export.py");
    std::fs::write(&path, format!("{code}\n")).unwrap();
    path
}

/// Runs the snippet; fails the test (never skips it) when Python or its library is missing.
fn python(script: &Path, key: &str, export: &Path) -> (i32, String) {
    let check = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to test AUDIT.md's snippet ({e}); install Python 3, then {INSTALL}"));
    assert!(
        check.status.success(),
        "AUDIT.md's snippet needs the `cryptography` package: {INSTALL}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(key)
        .arg(export)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

fn export(ledger: &Ledger, path: &Path, range: ExportRange) {
    let mut out = std::fs::File::create(path).unwrap();
    ledger
        .export(range)
        .unwrap()
        .write_to(ledger, &mut out)
        .unwrap();
}

#[test]
fn the_audit_guides_python_snippet_verifies_real_exports() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir.path().join("data"));
    Scheme::build(&ledger);
    let script = snippet(dir.path());
    let key = ledger.verifier_key();
    let checkpoint = ledger.checkpoint().unwrap().checkpoint;
    let root = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, checkpoint.root);
    let size = checkpoint.size;

    let full = dir.path().join("full.jsonl");
    export(&ledger, &full, ExportRange::default());
    let (code, output) = python(&script, &key, &full);
    assert_eq!(
        output,
        format!(
            "checkpoint signature OK: ledger.example/timecredits, size {size}\nroot OK: {size} entries hash to {root}\n"
        )
    );
    assert_eq!(code, 0);

    // A partial export: the frontier stands for the entries before it.
    let from = (1..size)
        .rev()
        .find(|&s| s.count_ones() > 1 && ledger.checkpoint_at(s).unwrap().is_some())
        .unwrap();
    let partial = dir.path().join("partial.jsonl");
    export(&ledger, &partial, ExportRange { from, size: None });
    let (code, output) = python(&script, &key, &partial);
    assert_eq!(code, 0, "{output}");
    assert!(output.ends_with(&format!("root OK: {size} entries hash to {root}\n")));

    // An entry changed: the root no longer matches.
    let mut lines = common::lines(&full);
    let text = String::from_utf8(lines[10].clone()).unwrap();
    lines[10] = text
        .replacen("\"seq\":9,", "\"seq\":9,\"x\":1,", 1)
        .into_bytes();
    let tampered = dir.path().join("tampered.jsonl");
    common::write_lines(&tampered, &lines);
    let (code, output) = python(&script, &key, &tampered);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains(&format!("root MISMATCH: {size} entries hash to ")),
        "{output}"
    );

    // Another key: the signature check fails.
    let other = "ledger.example/timecredits+00000000+AQ".to_owned() + &"A".repeat(42) + "=";
    let (code, output) = python(&script, &other, &full);
    assert_ne!(code, 0);
    assert!(output.contains("wrong key id"), "{output}");
}

/// The verifier's last line when the first hand-over, at `seq` to `new`, is endorsed by no pinned
/// key: the same text as `timecredits-audit`'s.
fn refused_hand_over(seq: u64, new: &str) -> String {
    format!(
        "INVALID: entry {seq}: the key rotation is endorsed by none of the pinned keys: pin {new}, \
         the key it hands over to, or the key the ledger had before it\n"
    )
}

#[test]
fn the_python_snippet_follows_a_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ledger = open(&data);
    Scheme::build(&ledger);
    let old = ledger.verifier_key();
    let (new, committed) = ledger
        .rotate_key(
            uuid::Uuid::nil(),
            timecredits_domain::IdempotencyKey::new("rotate").unwrap(),
        )
        .unwrap();
    drop(ledger);
    // After the overlap: the old key no longer signs.
    let ledger = Ledger::open(
        &data,
        timecredits_ledger::LedgerConfig {
            key_overlap: chrono::TimeDelta::zero(),
            ..config()
        },
    )
    .unwrap();
    Scheme::build(&ledger);
    let script = snippet(dir.path());
    let full = dir.path().join("rotated.jsonl");
    export(&ledger, &full, ExportRange::default());
    let (code, output) = python(&script, &old, &full);
    assert_eq!(code, 0, "{output}");
    let seq = committed.entries[0].seq;
    assert!(
        output.starts_with(&format!("key handed over at entry {seq} to {new}\n")),
        "{output}"
    );
    assert!(output.contains("root OK"), "{output}");

    // A forged hand-over: the endorsement no longer verifies with the old key.
    let mut lines = common::lines(&full);
    let at = usize::try_from(seq).unwrap() + 1;
    let text = String::from_utf8(lines[at].clone()).unwrap();
    let mark = "\"endorsement\":\"";
    let i = text.find(mark).unwrap() + mark.len();
    let mut bytes = text.into_bytes();
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    lines[at] = bytes;
    let forged = dir.path().join("forged.jsonl");
    common::write_lines(&forged, &lines);
    let (code, output) = python(&script, &old, &forged);
    assert_eq!((code, output), (1, refused_hand_over(seq, &new)));

    // The key `GET /v1/ledger/key` publishes after the rotation (the new one) starts the chain
    // too, as with `timecredits-audit`.
    let (code, output) = python(&script, &new, &full);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("root OK"), "{output}");

    // After a second rotation, the newest key alone cannot start the chain: the verifier says
    // which key to pin, without a traceback, and that key works.
    let (newest, _) = ledger
        .rotate_key(
            uuid::Uuid::nil(),
            timecredits_domain::IdempotencyKey::new("rotate-again").unwrap(),
        )
        .unwrap();
    let twice = dir.path().join("twice.jsonl");
    export(&ledger, &twice, ExportRange::default());
    let (code, output) = python(&script, &newest, &twice);
    assert_eq!(code, 1, "{output}");
    assert!(!output.contains("Traceback"), "{output}");
    assert!(output.ends_with(&refused_hand_over(seq, &new)), "{output}");
    let (code, output) = python(&script, &new, &twice);
    assert_eq!(code, 0, "{output}");
    let (code, output) = python(&script, &old, &twice);
    assert_eq!(code, 0, "{output}");
}
