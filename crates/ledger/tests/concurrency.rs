//! Hundreds of concurrent spends against one wallet: exactly as many succeed as the balance
//! allows, and the balance ends at zero, never below.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::sync::Arc;

use timecredits_domain::{MovementKind, RuleViolation};
use timecredits_ledger::LedgerError;
use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::{balance, config, open, submit, Scheme};

#[test]
fn concurrent_spends_never_overdraw_a_wallet() {
    const CREDITS: u64 = 50;
    const ATTEMPTS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path()));
    let s = Scheme::with_alice_holding(&ledger, CREDITS * 60);

    let threads: Vec<_> = (0..ATTEMPTS)
        .map(|_| {
            let ledger = Arc::clone(&ledger);
            let (alice, venue, admin) = (s.alice, s.venue, s.admin);
            std::thread::spawn(move || {
                submit(
                    &ledger,
                    admin,
                    transfer(MovementKind::Spend, alice, venue, 60),
                )
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(LedgerError::Rejected {
                    violation: RuleViolation::InsufficientCredits { .. },
                    ..
                })
            )
        })
        .count();
    assert_eq!(succeeded, CREDITS as usize);
    assert_eq!(
        refused,
        ATTEMPTS - CREDITS as usize,
        "every other attempt is refused for lack of credits"
    );
    assert_eq!(balance(&ledger, s.alice), 0);
    assert_eq!(balance(&ledger, s.venue), (CREDITS * 60) as i64);
}

#[test]
fn concurrent_async_submitters_share_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(open(dir.path()));
    let s = Scheme::new(&ledger, 10_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let ledger = Arc::clone(&ledger);
                let (budget, alice, admin) = (s.budget, s.alice, s.admin);
                tokio::spawn(async move {
                    let request = timecredits_ledger::Request::single(
                        admin,
                        fresh(),
                        transfer(MovementKind::Earn, budget, alice, 1),
                    );
                    ledger.submit(request).await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert!(results.iter().all(|r| r.is_ok()));
    let mut seqs: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().unwrap().entries[0].seq)
        .collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 200, "each request got its own entry");
    assert_eq!(balance(&ledger, s.alice), 200);
}

/// A full queue refuses async submitters at once (nothing written) instead of blocking their
/// thread; everything it took is committed, and nothing else.
#[test]
fn a_full_queue_refuses_async_submitters_without_writing() {
    const SUBMITTERS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let config = timecredits_ledger::LedgerConfig {
        queue_capacity: 1,
        ..config()
    };
    let ledger = Arc::new(timecredits_ledger::Ledger::open(dir.path(), config).unwrap());
    let s = Scheme::new(&ledger, 600);
    let before = ledger.size().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let results = runtime.block_on(async {
        // Every future queues its request on its first poll, all in one pass: far faster than
        // the writer can take them.
        let submits = (0..SUBMITTERS).map(|_| {
            let request = timecredits_ledger::Request::single(
                s.admin,
                fresh(),
                transfer(MovementKind::Earn, s.budget, s.alice, 1),
            );
            let ledger = Arc::clone(&ledger);
            async move { ledger.submit(request).await }
        });
        futures_util::future::join_all(submits).await
    });
    let committed = results.iter().filter(|r| r.is_ok()).count();
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(LedgerError::Busy)))
        .count();
    assert_eq!(committed + busy, SUBMITTERS, "only commits and refusals");
    assert!(busy > 0, "a queue of one overflowed");
    assert!(committed > 0, "the writer took what fit");
    assert_eq!(ledger.size().unwrap(), before + committed as u64);
    assert_eq!(balance(&ledger, s.alice), committed as i64);
}
