//! The `timecredits-audit` binary end to end, on a realistic ledger: what it prints and its exit
//! codes (0 valid, 1 invalid, 2 unusable).

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::ledger::Scheme;
use timecredits_ledger::{ExportRange, Ledger};
use timecredits_testkit::ledger::open;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn audit(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_timecredits-audit"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: status.code().expect("exited"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    ledger: Ledger,
    key: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(&dir.path().join("data"));
        Scheme::build(&ledger);
        let key = ledger.verifier_key();
        Fixture { dir, ledger, key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn export(&self, name: &str) -> String {
        let path = self.path(name);
        let mut out = std::fs::File::create(&path).unwrap();
        self.ledger
            .export(ExportRange::default())
            .unwrap()
            .write_to(&self.ledger, &mut out)
            .unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn checkpoint_file(&self, name: &str, size: u64) -> String {
        let note = self.ledger.checkpoint_at(size).unwrap().unwrap().note;
        self.write(name, note)
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_clean_export_verifies_through_the_cli() {
    let f = Fixture::new();
    let export = f.export("export.jsonl");
    let size = f.ledger.size().unwrap();
    let run = audit(&["verify", "--key", &f.key, &export]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with(&format!(
        "VALID: export of ledger.example/timecredits, entries 0 to {} ({size})\n",
        size - 1
    )));
    for line in [
        &format!("signed checkpoint: origin ledger.example/timecredits, size {size}, root "),
        "accounts: 9 (programme 1, budgets 2, venues 1, members 5; closed 1)",
        "credits allocated 110 credits (6600 min)",
        "credits earned    7 credits 45 min (465 min)",
        "credits reversed  0 credits 45 min (45 min)",
        "credits retired   2 credits 30 min (150 min)",
        "balances sum to zero",
    ] {
        assert!(run.stdout.contains(line), "{}\nlacks {line}", run.stdout);
    }
    // No progress bar when stderr is not a terminal.
    assert_eq!(run.stderr, "");

    let run = audit(&["verify", "--key", &f.key, "--json", &export]);
    assert_eq!(run.code, 0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["size"], size);
    assert_eq!(json["summary"]["moved"]["allocated"], 6600);
    assert_eq!(json["failure"], serde_json::Value::Null);
}

#[test]
fn an_invalid_export_exits_1_naming_the_entry() {
    let f = Fixture::new();
    let export = f.export("export.jsonl");
    let mut lines = common::lines(Path::new(&export));
    lines.remove(8);
    let tampered = f.path("tampered.jsonl");
    common::write_lines(&tampered, &lines);
    let run = audit(&["verify", "--key", &f.key, s(&tampered)]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .starts_with("INVALID: entry 7: the line at this position holds entry 8"),
        "{}",
        run.stdout
    );
    let run = audit(&["verify", "--key", &f.key, "--json", s(&tampered)]);
    assert_eq!(run.code, 1);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["checked"], 7);
}

#[test]
fn unusable_input_exits_2() {
    let f = Fixture::new();
    let export = f.export("export.jsonl");
    let run = audit(&["verify", "--key", "not-a-key", &export]);
    assert_eq!(run.code, 2);
    assert!(run
        .stderr
        .contains("verifier key \"not-a-key\": malformed verifier key"));
    let missing = f.path("missing.jsonl");
    let run = audit(&["verify", "--key", &f.key, s(&missing)]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("missing.jsonl: No such file"),
        "{}",
        run.stderr
    );
    let not_export = f.write("notes.txt", "hello\n");
    let run = audit(&["verify", "--key", &f.key, &not_export]);
    assert_eq!(run.code, 2);
    assert!(run
        .stderr
        .contains("the first line is not an export header"));
    let run = audit(&["verify", &export]);
    assert_eq!(run.code, 2, "a key is required");
}

#[test]
fn since_proves_the_export_extends_a_kept_checkpoint() {
    let f = Fixture::new();
    let kept = f.checkpoint_file("kept.checkpoint", 5);
    let export = f.export("export.jsonl");
    let run = audit(&["verify", "--key", &f.key, "--since", &kept, &export]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run
        .stdout
        .contains("extends the kept checkpoint of size 5: nothing before it was changed"));
    let forged = f.write("forged.checkpoint", "ledger.example/timecredits\n5\nAAAA\n");
    let run = audit(&["verify", "--key", &f.key, "--since", &forged, &export]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("forged.checkpoint: "), "{}", run.stderr);
}

#[test]
fn receipts_through_the_cli() {
    let f = Fixture::new();
    let seq = 13;
    let receipt = f.ledger.receipt(seq).unwrap();
    let file = f.write("entry.tlog-proof", receipt.to_text());
    let run = audit(&["receipt", "--key", &f.key, &file]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let bytes = f.ledger.entry_bytes(seq).unwrap().unwrap();
    assert!(run
        .stdout
        .starts_with(&format!("VALID: entry {seq} is in the log\n")));
    assert!(run
        .stdout
        .contains(&format!("entry: {}\n", String::from_utf8(bytes).unwrap())));

    let mut altered = receipt.clone();
    altered.hashes[0][3] ^= 4;
    let file = f.write("altered.tlog-proof", altered.to_text());
    let run = audit(&["receipt", "--key", &f.key, &file]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        "INVALID: the receipt does not verify: tlog-proof inclusion proof: proof does not lead to the expected tree root\n"
    );
    let file = f.write("garbled.tlog-proof", "c2sp.org/tlog-proof@v1\nindex x\n");
    assert_eq!(audit(&["receipt", "--key", &f.key, &file]).code, 2);
}

#[test]
fn consistency_proofs_through_the_cli() {
    let f = Fixture::new();
    let size = f.ledger.size().unwrap();
    let old = f.checkpoint_file("old.checkpoint", 5);
    let new = f.checkpoint_file("new.checkpoint", size);
    let proof = f.ledger.consistency_proof(5, size).unwrap();
    let b64: Vec<String> = proof
        .iter()
        .map(|h| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, h))
        .collect();
    let json = serde_json::json!({ "from": 5, "to": size, "proof": b64 }).to_string();
    let as_json = f.write("proof.json", json);
    let as_lines = f.write("proof.txt", b64.join("\n") + "\n");
    for file in [&as_json, &as_lines] {
        let run = audit(&["consistency", "--key", &f.key, &old, &new, file]);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        assert!(run.stdout.starts_with(&format!(
            "VALID: the log of size {size} extends the log of size 5"
        )));
    }
    let mut bad = b64.clone();
    bad.swap(0, 1);
    let bad = f.write("bad.txt", bad.join("\n") + "\n");
    let run = audit(&["consistency", "--key", &f.key, &old, &new, &bad]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.starts_with(&format!(
        "INVALID: the log of size {size} does not extend the log of size 5: "
    )));
    assert!(run
        .stdout
        .contains("older checkpoint:\nledger.example/timecredits\n5\n"));
    assert!(run.stdout.contains(&b64[0]), "the proof is printed");
    // Swapped checkpoints, or a JSON proof for other sizes, are unusable.
    assert_eq!(
        audit(&["consistency", "--key", &f.key, &new, &old, &as_lines]).code,
        2
    );
    let other = f.write(
        "other.json",
        serde_json::json!({ "from": 4, "to": size, "proof": b64 }).to_string(),
    );
    let run = audit(&["consistency", "--key", &f.key, &old, &new, &other]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("it is a proof from size 4"),
        "{}",
        run.stderr
    );
}
