//! Go's own implementations accept the ledger's evidence: `golang.org/x/mod/sumdb/note` opens its
//! checkpoints (with either key while a rotation's overlap has them signed by two), and
//! `sumdb/tlog` recomputes its Merkle root from the entries and accepts its inclusion and
//! consistency proofs, and refuses an altered proof. The Go side is `tests/go/interop.go`, built
//! against Debian's packages of the Go toolchain and of `golang.org/x/mod` (`scripts/test`
//! installs them when missing).

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use common::ledger::Scheme;
use serde_json::{json, Value};
use timecredits_domain::IdempotencyKey;
use timecredits_ledger::Ledger;
use timecredits_testkit::ledger::{open, ORIGIN};
use uuid::Uuid;

const INSTALL: &str = "apt-get install golang-go golang-golang-x-mod-dev";

/// Where Debian's `golang-golang-x-mod-dev` puts `golang.org/x/mod`, used as the GOPATH unless
/// one is set.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// Runs `interop.go` on `case`; fails the test (never skips it) when Go or x/mod is missing.
fn go(case: &Value) -> (i32, String) {
    let gopath = std::env::var("GOPATH").unwrap_or_else(|_| DEBIAN_GOPATH.to_owned());
    let xmod = Path::new(&gopath).join("src/golang.org/x/mod/sumdb/tlog");
    assert!(
        xmod.is_dir(),
        "Go's golang.org/x/mod is needed in GOPATH ({gopath}) for this test: {INSTALL}"
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/interop.go");
    let cache: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-build");
    let mut child = Command::new("go")
        .arg("run")
        .arg(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOCACHE", &cache)
        .env("GOFLAGS", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("the Go toolchain is needed for this test ({e}): {INSTALL}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(case.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    BASE64.encode(bytes)
}

fn proof(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(b64).collect()
}

/// The case for `interop.go`: the ledger's latest checkpoint and entries, and proofs between
/// several sizes.
fn case(ledger: &Ledger, vkeys: &[&str]) -> Value {
    let size = ledger.size().unwrap();
    let entries: Vec<String> = (0..size)
        .map(|seq| b64(ledger.entry_bytes(seq).unwrap().unwrap()))
        .collect();
    let root = |n: u64| b64(ledger.root(n).unwrap());
    let sizes = [1, 2, 7, size / 2, size - 1, size];
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for &n in &sizes {
        for index in [0, n / 3, n - 1] {
            inclusion.push(json!({
                "index": index, "size": n, "root": root(n),
                "proof": proof(&ledger.inclusion_proof(index, n).unwrap()),
            }));
        }
        for &m in sizes.iter().filter(|&&m| m <= n) {
            consistency.push(json!({
                "old": m, "old_root": root(m), "new": n, "new_root": root(n),
                "proof": proof(&ledger.consistency_proof(m, n).unwrap()),
            }));
        }
    }
    json!({
        "vkeys": vkeys,
        "note": ledger.checkpoint().unwrap().note,
        "entries": entries,
        "inclusion": inclusion,
        "consistency": consistency,
    })
}

#[test]
fn go_sumdb_accepts_the_ledgers_checkpoints_and_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir.path().join("data"));
    Scheme::build(&ledger);
    let old = ledger.verifier_key();
    let (new, _) = ledger
        .rotate_key(Uuid::nil(), IdempotencyKey::new("rotate").unwrap())
        .unwrap();
    Scheme::build(&ledger);

    let case = case(&ledger, &[&old, &new]);
    let (code, output) = go(&case);
    assert_eq!(code, 0, "{output}");
    let size = ledger.size().unwrap();
    assert!(
        output.starts_with(&format!(
            "OK: note opened with 2 key(s), root of {size} entries"
        )),
        "{output}"
    );

    // An altered proof hash is refused by Go too.
    let mut altered = case.clone();
    let hash = &mut altered["inclusion"][4]["proof"][0];
    let mut bytes = BASE64.decode(hash.as_str().unwrap()).unwrap();
    bytes[0] ^= 1;
    *hash = json!(b64(bytes));
    let (code, output) = go(&altered);
    assert_eq!(code, 1, "{output}");
    assert!(output.starts_with("FAIL: inclusion of entry"), "{output}");

    // So is a note checked with a key that did not sign it.
    let mut stranger = case;
    stranger["vkeys"] = json!([common::signer_for(ORIGIN, 99).verifier().to_vkey()]);
    let (code, output) = go(&stranger);
    assert_eq!(code, 1, "{output}");
    assert!(output.starts_with("FAIL: note.Open"), "{output}");
}
