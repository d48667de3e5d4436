//! Shared fixtures of the verifier's tests: signing keys, exports written to temporary files,
//! and edits of their lines.
#![allow(dead_code)] // Each test file uses a different subset.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use timecredits_audit::{verify_file, Report, Trust, Verified, VerifyOptions};
use timecredits_domain::Entry;
use timecredits_tlog::note::NoteSigner;

pub const ORIGIN: &str = "audit.example/ledger";

/// A signing key for `origin`, from a fixed seed.
pub fn signer_for(origin: &str, seed: u8) -> NoteSigner {
    NoteSigner::new(origin, SigningKey::from_bytes(&[seed; 32])).unwrap()
}

/// The key of the tests' ledger.
pub fn signer() -> NoteSigner {
    signer_for(ORIGIN, 7)
}

pub fn trust_of(signer: &NoteSigner) -> Trust {
    Trust::new(&[signer.verifier().to_vkey()], None).unwrap()
}

/// An export file in a temporary directory that lives as long as it.
pub struct ExportFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl ExportFile {
    /// A file named `name` in a new temporary directory.
    pub fn new(name: &str) -> ExportFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        ExportFile { dir, path }
    }

    /// A signed full export of `entries`.
    pub fn of_entries(signer: &NoteSigner, entries: &[Entry]) -> ExportFile {
        let file = ExportFile::new("export.jsonl");
        timecredits_testkit::synthetic::write_export(
            &file.path,
            signer,
            entries.iter().map(Entry::encode),
        )
        .unwrap();
        file
    }

    /// The file's lines, without their newlines (the header first).
    pub fn lines(&self) -> Vec<Vec<u8>> {
        lines(&self.path)
    }

    /// A copy of this export with its lines edited, in the same directory.
    pub fn edited(&self, name: &str, edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> PathBuf {
        let mut lines = self.lines();
        edit(&mut lines);
        let path = self.dir.path().join(name);
        write_lines(&path, &lines);
        path
    }

    /// A sibling path in the same directory.
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    assert_eq!(lines.pop(), Some(Vec::new()), "exports end with a newline");
    lines
}

pub fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut bytes = lines.join(&b'\n');
    bytes.push(b'\n');
    std::fs::write(path, bytes).unwrap();
}

/// Verifies `path` with the given trust and kept checkpoint.
pub fn verify_with(path: &Path, trust: &Trust, since: Option<&Verified>) -> Report {
    let options = VerifyOptions {
        since,
        threads: 2,
        ..VerifyOptions::default()
    };
    verify_file(path, trust, &options).unwrap()
}

/// The failure message of verifying `path`; panics if it verifies.
pub fn failure(path: &Path, trust: &Trust) -> String {
    failure_of(verify_with(path, trust, None))
}

pub fn failure_of(report: Report) -> String {
    match report.failure {
        Some(f) => f.to_string(),
        None => panic!("expected a failure, the export verified: {report:?}"),
    }
}

/// Asserts that `report` failed with a failure matching `pattern`, whose message contains
/// `message`.
#[macro_export]
macro_rules! assert_failure {
    ($report:expr, $pattern:pat, $message:expr) => {{
        let report = $report;
        let failure = report.failure.as_ref().expect("the export must not verify");
        assert!(
            matches!(failure, $pattern),
            "unexpected failure: {failure:?}"
        );
        let text = failure.to_string();
        assert!(
            text.contains($message),
            "message {text:?} lacks {:?}",
            $message
        );
    }};
}

/// A real ledger with a realistic history, for exports made the way operators make them.
pub mod ledger {
    use timecredits_domain::{AccountId, AccountKind, Intent, MovementKind};
    use timecredits_ledger::{Ledger, Request};
    use timecredits_testkit::intents::{fresh, text, transfer};
    use timecredits_testkit::ledger::{open_account, submit};
    use uuid::Uuid;

    /// The accounts of [`Scheme::build`].
    pub struct Scheme {
        pub admin: Uuid,
        pub budget: AccountId,
        pub venue: AccountId,
        pub members: Vec<AccountId>,
    }

    impl Scheme {
        /// A scheme with every kind of entry: two budgets, a venue, five members; allocations,
        /// earns (one a group issue of three parts), spends, a gift, a reversal, a retirement and
        /// a closure. About 30 entries in about 25 batches.
        pub fn build(ledger: &Ledger) -> Scheme {
            use MovementKind::*;
            let admin = Uuid::now_v7();
            let programme = ledger.programme_account();
            let budget = open_account(ledger, AccountKind::Budget);
            let other_budget = open_account(ledger, AccountKind::Budget);
            let venue = open_account(ledger, AccountKind::Venue);
            let members: Vec<AccountId> = (0..5)
                .map(|_| open_account(ledger, AccountKind::Member))
                .collect();
            submit(ledger, admin, transfer(Allocate, programme, budget, 6000)).unwrap();
            submit(
                ledger,
                admin,
                transfer(Allocate, programme, other_budget, 600),
            )
            .unwrap();
            let partner = Uuid::now_v7();
            submit(ledger, partner, transfer(Earn, budget, members[0], 120)).unwrap();
            let group = Request {
                actor: partner,
                key: fresh(),
                intents: members[1..4]
                    .iter()
                    .map(|m| transfer(Earn, budget, *m, 90))
                    .collect(),
            };
            ledger.submit_blocking(group).unwrap();
            let wrong = submit(ledger, partner, transfer(Earn, budget, members[0], 45)).unwrap();
            submit(
                ledger,
                admin,
                Intent::Reverse {
                    entry: wrong.entries[0].seq,
                    reference: Some(text("entered twice")),
                },
            )
            .unwrap();
            submit(
                ledger,
                Uuid::now_v7(),
                transfer(Spend, members[0], venue, 60),
            )
            .unwrap();
            submit(
                ledger,
                Uuid::now_v7(),
                transfer(Spend, members[1], venue, 90),
            )
            .unwrap();
            submit(
                ledger,
                members[2].0,
                transfer(Gift, members[2], members[3], 30),
            )
            .unwrap();
            submit(ledger, admin, transfer(Retire, venue, programme, 150)).unwrap();
            submit(
                ledger,
                admin,
                Intent::Close {
                    account: members[4],
                },
            )
            .unwrap();
            submit(
                ledger,
                partner,
                transfer(Earn, other_budget, members[3], 30),
            )
            .unwrap();
            Scheme {
                admin,
                budget,
                venue,
                members,
            }
        }
    }
}
