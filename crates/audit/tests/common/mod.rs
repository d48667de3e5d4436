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
        timecredits_audit::synthetic::write_export(
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
        progress: None,
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
    use std::path::Path;

    use timecredits_domain::{
        AccountId, AccountKind, EntryBody, IdempotencyKey, Intent, Minutes, MovementKind,
        ShortText, Transfer,
    };
    use timecredits_ledger::{Committed, Ledger, LedgerConfig, Request};
    use uuid::Uuid;

    pub const ORIGIN: &str = "ledger.example/timecredits";

    pub fn open(dir: &Path) -> Ledger {
        Ledger::open(
            dir,
            LedgerConfig {
                origin: ORIGIN.into(),
                cache_bytes: 8 << 20,
                ..LedgerConfig::default()
            },
        )
        .unwrap()
    }

    fn key() -> IdempotencyKey {
        IdempotencyKey::new(Uuid::now_v7().to_string()).unwrap()
    }

    fn text(s: &str) -> ShortText {
        ShortText::new("text", s).unwrap()
    }

    pub fn transfer(
        kind: MovementKind,
        debit: AccountId,
        credit: AccountId,
        minutes: u64,
    ) -> Intent {
        Intent::Transfer(Transfer {
            kind,
            debit,
            credit,
            minutes: Minutes::new(minutes).unwrap(),
            effective: None,
            details: timecredits_audit::synthetic::details(kind),
        })
    }

    pub fn submit(ledger: &Ledger, actor: Uuid, intents: Vec<Intent>) -> Committed {
        ledger
            .submit_blocking(Request {
                actor,
                key: key(),
                intents,
            })
            .unwrap()
    }

    pub fn open_account(ledger: &Ledger, kind: AccountKind) -> AccountId {
        let owner = kind.has_owner().then(Uuid::now_v7);
        let committed = submit(
            ledger,
            Uuid::now_v7(),
            vec![Intent::Open {
                account_kind: kind,
                owner,
            }],
        );
        match committed.entries[0].body {
            EntryBody::Open { account, .. } => account,
            _ => unreachable!("an open makes an open entry"),
        }
    }

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
            submit(
                ledger,
                admin,
                vec![transfer(Allocate, programme, budget, 6000)],
            );
            submit(
                ledger,
                admin,
                vec![transfer(Allocate, programme, other_budget, 600)],
            );
            let partner = Uuid::now_v7();
            submit(
                ledger,
                partner,
                vec![transfer(Earn, budget, members[0], 120)],
            );
            submit(
                ledger,
                partner,
                members[1..4]
                    .iter()
                    .map(|m| transfer(Earn, budget, *m, 90))
                    .collect(),
            );
            let wrong = submit(
                ledger,
                partner,
                vec![transfer(Earn, budget, members[0], 45)],
            );
            submit(
                ledger,
                admin,
                vec![Intent::Reverse {
                    entry: wrong.entries[0].seq,
                    reference: Some(text("entered twice")),
                }],
            );
            submit(
                ledger,
                Uuid::now_v7(),
                vec![transfer(Spend, members[0], venue, 60)],
            );
            submit(
                ledger,
                Uuid::now_v7(),
                vec![transfer(Spend, members[1], venue, 90)],
            );
            submit(
                ledger,
                members[2].0,
                vec![transfer(Gift, members[2], members[3], 30)],
            );
            submit(ledger, admin, vec![transfer(Retire, venue, programme, 150)]);
            submit(
                ledger,
                admin,
                vec![Intent::Close {
                    account: members[4],
                }],
            );
            submit(
                ledger,
                partner,
                vec![transfer(Earn, other_budget, members[3], 30)],
            );
            Scheme {
                admin,
                budget,
                venue,
                members,
            }
        }
    }
}
