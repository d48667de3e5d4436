//! Requests decided while earlier batches are still being applied: the writer stages a batch over
//! the changes of the one before it, so repeats, spends and reversals that depend on entries not
//! yet in the store must be decided exactly as if they were.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::sync::{Arc, Barrier};

use timecredits_domain::{Intent, MovementKind};
use timecredits_ledger::{Committed, LedgerError, Request};
use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::{balance, open, submit, Scheme};
use timecredits_tlog::merkle::{check_record, leaf_hash};

#[test]
fn concurrent_repeats_get_the_original_answer_and_spends_never_overdraw() {
    const REQUESTS: usize = 120;
    const CREDITS: usize = 80;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path()));
    let s = Scheme::with_alice_holding(&ledger, (CREDITS * 60) as u64);

    // Every request is sent twice at once, by two threads.
    let requests: Vec<Request> = (0..REQUESTS)
        .map(|_| {
            Request::single(
                s.admin,
                fresh(),
                transfer(MovementKind::Spend, s.alice, s.venue, 60),
            )
        })
        .collect();
    let barrier = Arc::new(Barrier::new(2 * REQUESTS));
    let threads: Vec<_> = requests
        .iter()
        .flat_map(|r| [r.clone(), r.clone()])
        .map(|request| {
            let (ledger, barrier) = (Arc::clone(&ledger), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                ledger.submit_blocking(request)
            })
        })
        .collect();
    let answers: Vec<Result<Committed, LedgerError>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();

    let mut spent = 0;
    for pair in answers.chunks(2) {
        match (&pair[0], &pair[1]) {
            (Ok(a), Ok(b)) => {
                assert_eq!(
                    a.entries, b.entries,
                    "a repeat answers with the same entries"
                );
                assert_eq!(
                    [a.replayed, b.replayed].iter().filter(|r| **r).count(),
                    1,
                    "one of the two is the original"
                );
                for answer in [a, b] {
                    let seq = answer.entries[0].seq;
                    let size = answer.checkpoint.checkpoint.size;
                    assert!(size > seq, "the checkpoint covers the entry");
                    let leaf = leaf_hash(&ledger.entry_bytes(seq).unwrap().unwrap());
                    let proof = ledger.inclusion_proof(seq, size).unwrap();
                    check_record(&proof, size, &answer.checkpoint.checkpoint.root, seq, &leaf)
                        .unwrap();
                }
                spent += 1;
            }
            (Err(LedgerError::Rejected { .. }), Err(LedgerError::Rejected { .. })) => {}
            other => panic!("the two copies of a request were answered differently: {other:?}"),
        }
    }
    assert_eq!(
        (spent, balance(&ledger, s.alice), balance(&ledger, s.venue)),
        (CREDITS, 0, (CREDITS * 60) as i64),
        "exactly as many spends as the balance allows"
    );
}

#[test]
fn a_reversal_decided_before_its_original_is_applied_is_allowed_once() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path()));
    let s = Scheme::new(&ledger, 6000);
    let earns = Request {
        actor: s.admin,
        key: fresh(),
        intents: vec![transfer(MovementKind::Earn, s.budget, s.alice, 10); 40],
    };
    let earns: Vec<u64> = ledger
        .submit_blocking(earns)
        .unwrap()
        .entries
        .iter()
        .map(|e| e.seq)
        .collect();
    // Reverse each earn from several threads at once: exactly one reversal per earn.
    let threads: Vec<_> = earns
        .iter()
        .flat_map(|seq| [*seq; 3])
        .map(|entry| {
            let ledger = Arc::clone(&ledger);
            let admin = s.admin;
            std::thread::spawn(move || {
                submit(
                    &ledger,
                    admin,
                    Intent::Reverse {
                        entry,
                        reference: None,
                    },
                )
            })
        })
        .collect();
    let reversed = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(Result::is_ok)
        .count();
    assert_eq!(reversed, earns.len());
    assert_eq!(balance(&ledger, s.alice), 0);
    for seq in earns {
        assert!(ledger.reversed_by(seq).unwrap().is_some());
    }
}
