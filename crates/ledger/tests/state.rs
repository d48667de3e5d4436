//! The derived state at a size where its packed records matter: many log chunks, accounts whose
//! history has moved out of their record several times, ids found through the sparse index. It
//! must answer exactly as the journal says, before and after a rebuild, and a state written
//! with an older layout must be rebuilt rather than misread.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use timecredits_domain::{Entry, MovementKind};
use timecredits_ledger::{layout, HistoryQuery, Ledger, Request};
use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::{balance, open, submit, Scheme};
use timecredits_tlog::merkle::{check_record, leaf_hash};

/// Commits a few hundred entries in requests of 1 to 40 parts, so that batches start and end
/// anywhere in a log chunk, and Alice's history grows far past what her account record holds.
fn busy_ledger(ledger: &Ledger) -> Scheme {
    let s = Scheme::new(ledger, 100_000);
    for round in 0..12u64 {
        let parts = 1 + (round * 7) % 40;
        let intents = (0..parts)
            .map(|i| match i % 3 {
                0 => transfer(MovementKind::Earn, s.budget, s.alice, 3),
                1 => transfer(MovementKind::Earn, s.budget, s.bob, 2),
                _ => transfer(MovementKind::Gift, s.bob, s.alice, 1),
            })
            .collect();
        let request = Request {
            actor: s.admin,
            key: fresh(),
            intents,
        };
        ledger.submit_blocking(request).unwrap();
        submit(
            ledger,
            s.admin,
            transfer(MovementKind::Spend, s.alice, s.venue, 1),
        )
        .unwrap();
    }
    s
}

/// Checks every index against the entries themselves.
fn check_state(ledger: &Ledger, s: &Scheme) {
    let n = ledger.size().unwrap();
    let entries: Vec<Entry> = (0..n).map(|i| ledger.entry(i).unwrap().unwrap()).collect();
    let root = ledger.checkpoint().unwrap().checkpoint.root;
    for e in &entries {
        assert_eq!(ledger.entry_by_id(e.id).unwrap().as_ref(), Some(e));
        let leaf = leaf_hash(&ledger.entry_bytes(e.seq).unwrap().unwrap());
        let proof = ledger.inclusion_proof(e.seq, n).unwrap();
        check_record(&proof, n, &root, e.seq, &leaf).unwrap();
    }
    assert_eq!(ledger.entry_by_id(uuid::Uuid::now_v7()).unwrap(), None);
    for account in [s.alice, s.bob, s.budget, s.venue] {
        let mut expected: Vec<u64> = entries
            .iter()
            .filter(|e| e.body.accounts().contains(&account))
            .map(|e| e.seq)
            .collect();
        expected.reverse();
        let mut seen = Vec::new();
        let mut query = HistoryQuery {
            limit: 7,
            ..HistoryQuery::default()
        };
        loop {
            let page = ledger.history(account, &query).unwrap();
            seen.extend(page.entries.iter().map(|e| e.seq));
            match page.next {
                Some(next) => query.before = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, expected, "history of {account:?}");
    }
}

#[test]
fn packed_indexes_answer_as_the_journal_says_before_and_after_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let (s, checkpoint, balances) = {
        let ledger = open(dir.path());
        let s = busy_ledger(&ledger);
        assert!(ledger.size().unwrap() > 200);
        check_state(&ledger, &s);
        let balances = [s.alice, s.bob].map(|a| balance(&ledger, a));
        (s, ledger.checkpoint().unwrap(), balances)
    };
    std::fs::remove_dir_all(dir.path().join(layout::STATE)).unwrap();
    let ledger = open(dir.path());
    assert_eq!(ledger.checkpoint().unwrap(), checkpoint);
    assert_eq!([s.alice, s.bob].map(|a| balance(&ledger, a)), balances);
    check_state(&ledger, &s);
}

#[test]
fn a_state_written_with_an_older_layout_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (s, checkpoint) = {
        let ledger = open(dir.path());
        let s = busy_ledger(&ledger);
        (s, ledger.checkpoint().unwrap())
    };
    // The first layout had no version record.
    let db = sled::open(dir.path().join(layout::STATE)).unwrap();
    db.remove(b"mlayout").unwrap();
    db.flush().unwrap();
    drop(db);
    let ledger = open(dir.path());
    assert_eq!(ledger.checkpoint().unwrap(), checkpoint);
    check_state(&ledger, &s);
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("state.unreadable-")
        })
        .count();
    assert_eq!(aside, 1, "the old state is kept aside, not deleted");
}
