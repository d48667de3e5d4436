//! The ledger's behaviour through its public API: movements, rules, idempotency, atomic batches,
//! reversals, history, checkpoints and proofs, and reopening.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use timecredits_domain::{AccountKind, EntryBody, EntryKind, Intent, MovementKind, RuleViolation};
use timecredits_ledger::{layout, HistoryQuery, Ledger, LedgerConfig, LedgerError, Request};
use timecredits_testkit::intents::{fresh, key, text, transfer};
use timecredits_testkit::ledger::{balance, config, open, submit, Scheme, TestClock, ORIGIN};
use timecredits_tlog::checkpoint::open_checkpoint;
use timecredits_tlog::merkle::{self, check_record, check_tree, leaf_hash};
use timecredits_tlog::note::NoteVerifier;
use uuid::Uuid;

/// The sum of the balances of `accounts` plus the programme's.
fn total(ledger: &Ledger, s: &Scheme) -> i64 {
    [s.programme, s.budget, s.venue, s.alice, s.bob]
        .iter()
        .map(|a| balance(ledger, *a))
        .sum()
}

#[test]
fn a_new_ledger_opens_the_programme_and_signs_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    assert_eq!(ledger.size().unwrap(), 1);
    let programme = ledger.account(ledger.programme_account()).unwrap().unwrap();
    assert_eq!(
        (programme.kind, programme.balance),
        (AccountKind::Programme, 0)
    );
    let verifier = NoteVerifier::parse(&ledger.verifier_key()).unwrap();
    let signed = ledger.checkpoint().unwrap();
    let (cp, _) = open_checkpoint(signed.note.as_bytes(), ORIGIN, &[verifier]).unwrap();
    assert_eq!(cp.size, 1);
    assert_eq!(cp.root, leaf_hash(&ledger.entry_bytes(0).unwrap().unwrap()));
}

#[test]
fn credits_flow_from_programme_to_member_to_venue_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 600);
    submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Earn, s.budget, s.alice, 180),
    )
    .unwrap();
    submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Gift, s.alice, s.bob, 60),
    )
    .unwrap();
    submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Spend, s.bob, s.venue, 60),
    )
    .unwrap();
    submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Retire, s.venue, s.programme, 60),
    )
    .unwrap();
    let balances: Vec<i64> = [s.programme, s.budget, s.alice, s.bob, s.venue]
        .iter()
        .map(|a| balance(&ledger, *a))
        .collect();
    assert_eq!(balances, vec![-540, 420, 120, 0, 0]);
    assert_eq!(total(&ledger, &s), 0);
}

#[test]
fn no_account_but_the_programme_goes_below_zero() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 120);
    let err = submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Earn, s.budget, s.alice, 121),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::Rejected {
                part: 0,
                violation: RuleViolation::InsufficientCredits {
                    balance: 120,
                    needed: 121,
                    ..
                }
            }
        ),
        "{err:?}"
    );
    let size = ledger.size().unwrap();
    let err = submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Spend, s.alice, s.venue, 1),
    )
    .unwrap_err();
    assert!(matches!(err, LedgerError::Rejected { .. }));
    assert_eq!(
        ledger.size().unwrap(),
        size,
        "a refused request writes nothing"
    );
    let err = submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Earn, s.venue, s.alice, 1),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        LedgerError::Rejected {
            violation: RuleViolation::WrongAccountKind { .. },
            ..
        }
    ));
}

#[test]
fn the_same_key_replays_and_a_different_request_under_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (s, first) = {
        let ledger = open(dir.path());
        let s = Scheme::new(&ledger, 600);
        let request = Request::single(
            s.admin,
            key("earn-1"),
            transfer(MovementKind::Earn, s.budget, s.alice, 60),
        );
        let first = ledger.submit_blocking(request.clone()).unwrap();
        assert!(!first.replayed);
        let size = ledger.size().unwrap();
        let again = ledger.submit_blocking(request).unwrap();
        assert_eq!(again.entries, first.entries);
        assert_eq!(ledger.size().unwrap(), size);
        assert_eq!(balance(&ledger, s.alice), 60);
        (s, first)
    };
    // After a restart, too.
    let ledger = open(dir.path());
    let request = Request::single(
        s.admin,
        key("earn-1"),
        transfer(MovementKind::Earn, s.budget, s.alice, 60),
    );
    // More commits since: the repeat still carries the checkpoint its first answer carried.
    submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Earn, s.budget, s.bob, 60),
    )
    .unwrap();
    let again = ledger.submit_blocking(request.clone()).unwrap();
    assert_eq!(again.entries, first.entries);
    assert_eq!(again.checkpoint, first.checkpoint);
    assert_ne!(ledger.checkpoint().unwrap(), first.checkpoint);
    assert_eq!(
        ledger.previous_request(s.admin, &request.key).unwrap(),
        Some(first.entries.clone())
    );
    assert_eq!(
        ledger.previous_request(s.admin, &key("never")).unwrap(),
        None
    );
    let different = Request::single(
        s.admin,
        key("earn-1"),
        transfer(MovementKind::Earn, s.budget, s.alice, 61),
    );
    assert!(matches!(
        ledger.submit_blocking(different),
        Err(LedgerError::IdempotencyConflict { .. })
    ));
    // Keys are scoped to their actor.
    let other_actor = Request::single(
        Uuid::now_v7(),
        key("earn-1"),
        transfer(MovementKind::Earn, s.budget, s.alice, 60),
    );
    assert!(!ledger.submit_blocking(other_actor).unwrap().replayed);
    assert_eq!(balance(&ledger, s.alice), 120);
}

#[test]
fn every_batch_keeps_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 600);
    let earn = |to| {
        submit(
            &ledger,
            s.admin,
            transfer(MovementKind::Earn, s.budget, to, 60),
        )
        .unwrap()
    };
    let first = earn(s.alice);
    let second = earn(s.bob);
    let (a, b) = (
        first.checkpoint.checkpoint.size,
        second.checkpoint.checkpoint.size,
    );
    assert_eq!(b, a + 1);
    assert_eq!(
        ledger.checkpoint_at(a).unwrap(),
        Some(first.checkpoint.clone())
    );
    assert_eq!(
        ledger.checkpoint_at(b).unwrap(),
        Some(second.checkpoint.clone())
    );
    assert_eq!(ledger.checkpoint().unwrap(), second.checkpoint);
    assert_eq!(ledger.checkpoint_at(b + 1).unwrap(), None);
    assert_eq!(
        ledger.checkpoint_covering(first.entries[0].seq).unwrap(),
        Some(first.checkpoint)
    );
    assert_eq!(ledger.checkpoint_covering(b).unwrap(), None);
    assert_eq!(
        ledger.checkpoint_sizes_around(b + 5).unwrap(),
        (Some(b), None)
    );
    assert_eq!(ledger.checkpoint_sizes_around(0).unwrap().0, None);
}

#[test]
fn a_batch_commits_entirely_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 150);
    let size = ledger.size().unwrap();
    let batch = |minutes: [u64; 3]| Request {
        actor: s.admin,
        key: fresh(),
        intents: vec![
            transfer(MovementKind::Earn, s.budget, s.alice, minutes[0]),
            transfer(MovementKind::Earn, s.budget, s.bob, minutes[1]),
            transfer(MovementKind::Earn, s.budget, s.alice, minutes[2]),
        ],
    };
    let err = ledger.submit_blocking(batch([60, 60, 60])).unwrap_err();
    assert!(
        matches!(err, LedgerError::Rejected { part: 2, .. }),
        "{err:?}"
    );
    assert_eq!(ledger.size().unwrap(), size);
    assert_eq!(
        (
            balance(&ledger, s.alice),
            balance(&ledger, s.bob),
            balance(&ledger, s.budget)
        ),
        (0, 0, 150)
    );
    let ok = ledger.submit_blocking(batch([60, 60, 30])).unwrap();
    assert_eq!(
        ok.entries.iter().map(|e| e.part).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(ok.entries[0].seq + 2, ok.entries[2].seq);
    assert_eq!(
        (
            balance(&ledger, s.alice),
            balance(&ledger, s.bob),
            balance(&ledger, s.budget)
        ),
        (90, 60, 0)
    );
}

#[test]
fn an_entry_is_reversed_at_most_once_and_only_within_floors() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 600);
    let earn = submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Earn, s.budget, s.alice, 120),
    )
    .unwrap()
    .entries[0]
        .seq;
    let reverse = |seq| Intent::Reverse {
        entry: seq,
        reference: Some(text("entered twice")),
    };
    let rev = submit(&ledger, s.admin, reverse(earn))
        .unwrap()
        .entries
        .remove(0);
    let EntryBody::Move(m) = &rev.body else {
        panic!()
    };
    assert_eq!(
        (m.kind, m.debit, m.credit, m.minutes.get(), m.reverses),
        (MovementKind::Reverse, s.alice, s.budget, 120, Some(earn))
    );
    assert_eq!(
        (balance(&ledger, s.alice), balance(&ledger, s.budget)),
        (0, 600)
    );
    assert_eq!(ledger.reversed_by(earn).unwrap(), Some(rev.seq));
    let err = submit(&ledger, s.admin, reverse(earn)).unwrap_err();
    assert!(
        matches!(err, LedgerError::Rejected { violation: RuleViolation::AlreadyReversed { by, .. }, .. } if by == rev.seq)
    );
    let err = submit(&ledger, s.admin, reverse(rev.seq)).unwrap_err();
    assert!(matches!(
        err,
        LedgerError::Rejected {
            violation: RuleViolation::NotReversible(_),
            ..
        }
    ));
    let err = submit(&ledger, s.admin, reverse(10_000)).unwrap_err();
    assert!(matches!(
        err,
        LedgerError::Rejected {
            violation: RuleViolation::UnknownEntry(10_000),
            ..
        }
    ));
    // Credits already spent cannot be taken back.
    let earn2 = submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Earn, s.budget, s.alice, 60),
    )
    .unwrap()
    .entries[0]
        .seq;
    submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Spend, s.alice, s.venue, 30),
    )
    .unwrap();
    let err = submit(&ledger, s.admin, reverse(earn2)).unwrap_err();
    assert!(matches!(
        err,
        LedgerError::Rejected {
            violation: RuleViolation::InsufficientCredits { .. },
            ..
        }
    ));
    // Two reversals of one entry in a single batch: the second is refused.
    let both = Request {
        actor: s.admin,
        key: fresh(),
        intents: vec![reverse(earn2), reverse(earn2)],
    };
    assert!(ledger.submit_blocking(both).is_err());
}

#[test]
fn closed_accounts_take_no_movement() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 600);
    submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Earn, s.budget, s.alice, 60),
    )
    .unwrap();
    let err = submit(&ledger, s.admin, Intent::Close { account: s.alice }).unwrap_err();
    assert!(matches!(
        err,
        LedgerError::Rejected {
            violation: RuleViolation::AccountNotEmpty { balance: 60, .. },
            ..
        }
    ));
    submit(&ledger, s.admin, Intent::Close { account: s.bob }).unwrap();
    let err = submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Gift, s.alice, s.bob, 60),
    )
    .unwrap_err();
    assert!(
        matches!(err, LedgerError::Rejected { violation: RuleViolation::AccountClosed(a), .. } if a == s.bob)
    );
    assert_eq!(balance(&ledger, s.alice), 60);
}

#[test]
fn recorded_times_never_decrease() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 6000);
    for _ in 0..20 {
        submit(
            &ledger,
            s.admin,
            transfer(MovementKind::Earn, s.budget, s.alice, 1),
        )
        .unwrap();
    }
    let times: Vec<_> = (0..ledger.size().unwrap())
        .map(|i| ledger.entry(i).unwrap().unwrap().recorded)
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn history_pages_newest_first_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 6000);
    let mut earns = Vec::new();
    for _ in 0..7 {
        earns.push(
            submit(
                &ledger,
                s.admin,
                transfer(MovementKind::Earn, s.budget, s.alice, 10),
            )
            .unwrap()
            .entries[0]
                .seq,
        );
    }
    submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Gift, s.alice, s.bob, 5),
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut query = HistoryQuery {
        limit: 3,
        ..HistoryQuery::default()
    };
    loop {
        let page = ledger.history(s.alice, &query).unwrap();
        assert!(page.entries.len() <= 3);
        seen.extend(page.entries.iter().map(|e| e.seq));
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<u64> = (0..ledger.size().unwrap())
        .filter(|&i| {
            ledger
                .entry(i)
                .unwrap()
                .unwrap()
                .body
                .accounts()
                .contains(&s.alice)
        })
        .collect();
    expected.reverse();
    assert_eq!(seen, expected);
    let earns_only = ledger
        .history(
            s.alice,
            &HistoryQuery {
                limit: 100,
                kinds: vec![EntryKind::Earn],
                ..HistoryQuery::default()
            },
        )
        .unwrap();
    let mut newest_first = earns.clone();
    newest_first.reverse();
    assert_eq!(
        earns_only.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        newest_first
    );
    let today = chrono::Utc::now().date_naive();
    let future = ledger
        .history(
            s.alice,
            &HistoryQuery {
                limit: 100,
                from: today.succ_opt(),
                ..HistoryQuery::default()
            },
        )
        .unwrap();
    assert!(future.entries.is_empty());
}

#[test]
fn every_entry_has_an_inclusion_proof_and_every_size_a_consistency_proof() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let s = Scheme::new(&ledger, 6000);
    for i in 0..12 {
        submit(
            &ledger,
            s.admin,
            transfer(MovementKind::Earn, s.budget, s.alice, 1 + i),
        )
        .unwrap();
    }
    let n = ledger.size().unwrap();
    let leaves: Vec<_> = (0..n)
        .map(|i| leaf_hash(&ledger.entry_bytes(i).unwrap().unwrap()))
        .collect();
    let root = ledger.checkpoint().unwrap().checkpoint.root;
    assert_eq!(root, merkle::root_of_leaves(leaves.iter().copied()));
    for t in 1..=n {
        let root_t = ledger.root(t).unwrap();
        assert_eq!(
            root_t,
            merkle::root_of_leaves(leaves[..t as usize].iter().copied())
        );
        for i in 0..t {
            let proof = ledger.inclusion_proof(i, t).unwrap();
            check_record(&proof, t, &root_t, i, &leaves[i as usize]).unwrap();
        }
        let proof = ledger.consistency_proof(t, n).unwrap();
        check_tree(&proof, n, &root, t, &root_t).unwrap();
    }
    assert!(ledger.inclusion_proof(0, n + 1).is_err());
    assert!(ledger.inclusion_proof(n, n).is_err());
}

#[test]
fn a_reopened_ledger_has_the_same_state_and_a_lost_state_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cp) = {
        let ledger = open(dir.path());
        let s = Scheme::new(&ledger, 600);
        submit(
            &ledger,
            s.admin,
            transfer(MovementKind::Earn, s.budget, s.alice, 90),
        )
        .unwrap();
        (s, ledger.checkpoint().unwrap())
    };
    {
        let ledger = open(dir.path());
        assert_eq!(ledger.checkpoint().unwrap(), cp);
        assert_eq!(balance(&ledger, s.alice), 90);
    }
    std::fs::remove_dir_all(dir.path().join(timecredits_ledger::layout::STATE)).unwrap();
    let ledger = open(dir.path());
    assert_eq!(
        ledger.checkpoint().unwrap(),
        cp,
        "rebuilt from the journal, signed identically"
    );
    assert_eq!(
        (balance(&ledger, s.alice), balance(&ledger, s.budget)),
        (90, 510)
    );
    assert_eq!(
        ledger
            .history(
                s.alice,
                &HistoryQuery {
                    limit: 10,
                    ..Default::default()
                }
            )
            .unwrap()
            .entries
            .len(),
        2
    );
    let earn = submit(
        &ledger,
        s.admin,
        transfer(MovementKind::Earn, s.budget, s.alice, 10),
    )
    .unwrap();
    assert_eq!(earn.entries[0].seq, cp.checkpoint.size);
}

#[test]
fn the_origin_is_fixed_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let other = LedgerConfig {
        origin: "elsewhere.example/ledger".into(),
        ..config()
    };
    assert!(matches!(
        Ledger::open(dir.path(), other.clone()),
        Err(LedgerError::OriginMismatch { .. })
    ));
    // Not even by losing the rebuildable state.
    std::fs::remove_dir_all(dir.path().join(layout::STATE)).unwrap();
    assert!(matches!(
        Ledger::open(dir.path(), other),
        Err(LedgerError::OriginMismatch { .. })
    ));
    assert_eq!(open(dir.path()).size().unwrap(), 1);
}

#[test]
fn an_existing_ledger_without_its_key_or_origin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    for file in [layout::SIGNING_KEY, layout::ORIGIN] {
        let path = dir.path().join(file);
        let saved = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let result = Ledger::open(dir.path(), config());
        assert!(
            matches!(result, Err(LedgerError::Key(_) | LedgerError::Corrupt(_))),
            "{file}: {result:?}"
        );
        assert!(!path.exists(), "{file} was not recreated");
        std::fs::write(&path, saved).unwrap();
    }
    assert_eq!(open(dir.path()).size().unwrap(), 1);
}

#[test]
fn invalid_requests_are_refused_before_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let empty = Request {
        actor: Uuid::now_v7(),
        key: fresh(),
        intents: vec![],
    };
    assert!(matches!(
        ledger.submit_blocking(empty),
        Err(LedgerError::Invalid(_))
    ));
    let ownerless = Intent::Open {
        account_kind: AccountKind::Venue,
        owner: None,
    };
    assert!(matches!(
        submit(&ledger, Uuid::now_v7(), ownerless),
        Err(LedgerError::Invalid(_))
    ));
}

/// An expiry through the ledger: refused until the wallet has been unused for the period the
/// entry names, refused for less than the whole balance, committed once, and never again at once
/// (it is a use itself). A gift received restarts the wait; the rules hold after a reopen.
#[test]
fn an_expiry_waits_for_the_period_and_takes_the_whole_balance() {
    use chrono::TimeDelta;
    use timecredits_domain::Transfer;
    let dir = tempfile::tempdir().unwrap();
    let time = TestClock::default();
    let ledger = Ledger::open(dir.path(), time.config()).unwrap();
    let s = Scheme::new(&ledger, 600);
    let expire = |minutes: u64| {
        let mut intent = transfer(MovementKind::Expire, s.alice, s.programme, minutes);
        if let Intent::Transfer(Transfer { details, .. }) = &mut intent {
            details.expiry_months = Some(12);
        }
        intent
    };
    let mv = |ledger: &Ledger, kind, from, to, minutes| {
        submit(ledger, s.admin, transfer(kind, from, to, minutes)).unwrap();
    };
    let refused = |ledger: &Ledger, minutes| match submit(ledger, s.admin, expire(minutes)) {
        Err(LedgerError::Rejected { violation, .. }) => violation,
        other => panic!("expected a refusal, got {other:?}"),
    };
    mv(&ledger, MovementKind::Earn, s.budget, s.alice, 90);
    assert!(matches!(
        refused(&ledger, 90),
        RuleViolation::ExpiryTooEarly { .. }
    ));
    time.advance(TimeDelta::days(200));
    // A gift received is a use: the year starts again from it.
    mv(&ledger, MovementKind::Earn, s.budget, s.bob, 30);
    mv(&ledger, MovementKind::Gift, s.bob, s.alice, 30);
    time.advance(TimeDelta::days(200));
    assert!(matches!(
        refused(&ledger, 120),
        RuleViolation::ExpiryTooEarly { .. }
    ));
    time.advance(TimeDelta::days(170));
    assert!(matches!(
        refused(&ledger, 90),
        RuleViolation::ExpiryNotWholeBalance { balance: 120, .. }
    ));
    let once = Request::single(s.admin, key("expire-1"), expire(120));
    let committed = ledger.submit_blocking(once.clone()).unwrap();
    assert_eq!(committed.entries[0].body.kind(), EntryKind::Expire);
    assert_eq!(balance(&ledger, s.alice), 0);
    let again = ledger.submit_blocking(once).unwrap();
    assert!(again.replayed, "a repeat is answered, not applied");
    assert_eq!(again.entries, committed.entries);
    assert_eq!(total(&ledger, &s), 0);
    drop(ledger);
    let ledger = Ledger::open(dir.path(), time.config()).unwrap();
    mv(&ledger, MovementKind::Earn, s.budget, s.alice, 15);
    time.advance(TimeDelta::days(366));
    assert!(matches!(
        refused(&ledger, 30),
        RuleViolation::ExpiryNotWholeBalance { balance: 15, .. }
    ));
}
