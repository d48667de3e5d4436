//! Recovery from a state batch cut short, tried after every one of its writes, for batches of
//! every entry kind and mixes of them.
//!
//! Each case builds the situation a `kill -9` leaves when it lands while the applier writes a
//! batch to sled: the journal holds the batch's entries (they were synced before anyone was
//! answered), the state holds the log before them. Opening such a ledger replays the batch
//! through the same staging path as live commits and writes it as one state batch. The test
//! stops that state batch after its first `n` writes, for every `n`, then opens the ledger again
//! and requires the very state an uninterrupted open writes: every key and value of sled, the
//! checkpoint included.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{TimeDelta, Utc};

use timecredits_domain::{AccountId, AccountKind, EntryBody, Intent, MovementKind};
use timecredits_testkit::intents::{fresh, transfer};
use uuid::Uuid;

use crate::ledger::layout;
use crate::store::{Store, CUT_NEXT_COMMIT};
use crate::{Clock, Ledger, LedgerConfig, Request};

/// How far these ledgers' clock runs ahead of the system's, in microseconds: the expiry tail
/// moves it a year on (it only grows, so recorded times never go back).
static AHEAD: AtomicI64 = AtomicI64::new(0);

fn config() -> LedgerConfig {
    LedgerConfig {
        origin: "recovery.test/ledger".into(),
        cache_bytes: 4 << 20,
        clock: Clock::new(|| Utc::now() + TimeDelta::microseconds(AHEAD.load(Ordering::SeqCst))),
        ..LedgerConfig::default()
    }
}

/// The accounts of a small scheme, and entries the tails act on.
struct Scheme {
    admin: Uuid,
    programme: AccountId,
    budget: AccountId,
    venue: AccountId,
    alice: AccountId,
    bob: AccountId,
    /// An empty member account, for a close.
    carol: AccountId,
    /// An earn committed before the cut batch, for a reversal of an entry the state holds.
    earned: u64,
}

/// Commits one request and returns the sequence number of its first entry.
fn commit(ledger: &Ledger, actor: Uuid, intents: Vec<Intent>) -> u64 {
    let request = Request {
        actor,
        key: fresh(),
        intents,
    };
    ledger.submit_blocking(request).expect("commits").entries[0].seq
}

fn open_account(ledger: &Ledger, kind: AccountKind) -> AccountId {
    let intent = Intent::Open {
        account_kind: kind,
        owner: kind.has_owner().then(Uuid::now_v7),
    };
    let seq = commit(ledger, Uuid::now_v7(), vec![intent]);
    match ledger.entry(seq).expect("readable").expect("present").body {
        EntryBody::Open { account, .. } => account,
        other => panic!("an open made {other:?}"),
    }
}

impl Scheme {
    fn new(ledger: &Ledger) -> Scheme {
        let s = Scheme {
            admin: Uuid::now_v7(),
            programme: ledger.programme_account(),
            budget: open_account(ledger, AccountKind::Budget),
            venue: open_account(ledger, AccountKind::Venue),
            alice: open_account(ledger, AccountKind::Member),
            bob: open_account(ledger, AccountKind::Member),
            carol: open_account(ledger, AccountKind::Member),
            earned: 0,
        };
        let admin = s.admin;
        commit(ledger, admin, vec![s.allocate(6000)]);
        commit(ledger, admin, vec![s.earn(s.alice, 600)]);
        commit(ledger, admin, vec![s.earn(s.bob, 120)]);
        commit(ledger, admin, vec![s.spend(120)]);
        let earned = commit(ledger, admin, vec![s.earn(s.alice, 60)]);
        Scheme { earned, ..s }
    }

    fn allocate(&self, minutes: u64) -> Intent {
        transfer(MovementKind::Allocate, self.programme, self.budget, minutes)
    }

    fn earn(&self, member: AccountId, minutes: u64) -> Intent {
        transfer(MovementKind::Earn, self.budget, member, minutes)
    }

    fn spend(&self, minutes: u64) -> Intent {
        transfer(MovementKind::Spend, self.alice, self.venue, minutes)
    }

    fn gift(&self) -> Intent {
        transfer(MovementKind::Gift, self.alice, self.bob, 30)
    }

    fn retire(&self, from: AccountId, minutes: u64) -> Intent {
        transfer(MovementKind::Retire, from, self.programme, minutes)
    }

    /// The expiry of `member`'s whole balance, `minutes`, under a 12-month policy, a year and a
    /// day after the scheme was built.
    fn expire(&self, member: AccountId, minutes: u64) -> Intent {
        AHEAD.fetch_add(
            TimeDelta::days(366).num_microseconds().expect("fits"),
            Ordering::SeqCst,
        );
        let mut intent = transfer(MovementKind::Expire, member, self.programme, minutes);
        if let Intent::Transfer(t) = &mut intent {
            t.details.expiry_months = Some(12);
        }
        intent
    }

    fn reverse(&self, entry: u64) -> Intent {
        Intent::Reverse {
            entry,
            reference: None,
        }
    }
}

/// The requests of one cut batch.
type Tail = fn(&Ledger, &Scheme);

/// Every entry kind alone, then all of them together with a request of several parts and a
/// reversal of an entry of the same batch.
const TAILS: &[(&str, Tail)] = &[
    ("open", |l, _| {
        open_account(l, AccountKind::Member);
    }),
    ("close", |l, s| {
        let close = Intent::Close { account: s.carol };
        commit(l, s.admin, vec![close]);
    }),
    ("allocate", |l, s| {
        commit(l, s.admin, vec![s.allocate(60)]);
    }),
    ("earn", |l, s| {
        commit(l, s.admin, vec![s.earn(s.alice, 60)]);
    }),
    ("spend", |l, s| {
        commit(l, s.admin, vec![s.spend(60)]);
    }),
    ("gift", |l, s| {
        commit(l, s.admin, vec![s.gift()]);
    }),
    ("reverse", |l, s| {
        commit(l, s.admin, vec![s.reverse(s.earned)]);
    }),
    ("retire", |l, s| {
        commit(l, s.admin, vec![s.retire(s.venue, 60)]);
    }),
    ("retire from a budget", |l, s| {
        commit(l, s.admin, vec![s.retire(s.budget, 60)]);
    }),
    ("a member leaves", |l, s| {
        let close = Intent::Close { account: s.bob };
        commit(l, s.admin, vec![s.retire(s.bob, 120), close]);
    }),
    ("expire", |l, s| {
        commit(l, s.admin, vec![s.expire(s.bob, 120)]);
    }),
    ("key", |l, _| {
        l.rotate_key(Uuid::nil(), fresh()).expect("rotates");
    }),
    ("every kind", |l, s| {
        open_account(l, AccountKind::Venue);
        commit(l, s.admin, vec![Intent::Close { account: s.carol }]);
        commit(l, s.admin, vec![s.allocate(60)]);
        let earn = commit(l, s.admin, vec![s.earn(s.bob, 45)]);
        commit(
            l,
            s.admin,
            vec![s.earn(s.alice, 15), s.earn(s.bob, 30), s.earn(s.alice, 60)],
        );
        commit(l, s.admin, vec![s.spend(60)]);
        commit(l, s.admin, vec![s.gift()]);
        commit(l, s.admin, vec![s.reverse(s.earned)]);
        commit(l, s.admin, vec![s.reverse(earn)]);
        commit(l, s.admin, vec![s.retire(s.venue, 60)]);
        l.rotate_key(Uuid::nil(), fresh()).expect("rotates");
        commit(l, s.admin, vec![s.earn(s.alice, 90)]);
    }),
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates");
    for item in std::fs::read_dir(from).expect("lists") {
        let item = item.expect("lists");
        let target = to.join(item.file_name());
        if item.file_type().expect("stat").is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), &target).expect("copies");
        }
    }
}

/// Copies a data directory whose ledger was dropped: sled finishes writing its state shortly
/// after, so the copy waits for its lock and is made while nothing else can write.
fn copy_closed(dir: &Path, to: &Path) {
    let idle = Store::open(&dir.join(layout::STATE), 1 << 20).expect("the state opens");
    idle.flush().expect("flushes");
    copy_dir(dir, to);
    drop(idle);
}

/// Opens and closes the ledger in `dir`, and returns every key and value of its state.
fn open_and_dump(dir: &Path) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    drop(Ledger::open(dir, config()).expect("the ledger opens"));
    Store::open(&dir.join(layout::STATE), 1 << 20)
        .expect("the state opens")
        .dump()
}

/// A data directory whose journal holds `tail`'s entries and whose state does not.
fn journal_ahead_of_state(base: &Path, tail: Tail) -> PathBuf {
    let live = base.join("live");
    let ledger = Ledger::open(&live, config()).expect("a new ledger");
    let scheme = Scheme::new(&ledger);
    drop(ledger);
    let before = base.join("before");
    copy_closed(&live, &before);
    let ledger = Ledger::open(&live, config()).expect("reopens");
    tail(&ledger, &scheme);
    drop(ledger);
    let prepared = base.join("prepared");
    copy_closed(&live, &prepared);
    std::fs::remove_dir_all(prepared.join(layout::STATE)).expect("removes");
    copy_dir(&before.join(layout::STATE), &prepared.join(layout::STATE));
    prepared
}

#[test]
fn a_state_batch_cut_after_any_write_recovers_to_the_uninterrupted_state() {
    for (name, tail) in TAILS {
        let base = tempfile::tempdir().expect("a temporary directory");
        let prepared = journal_ahead_of_state(base.path(), *tail);
        let reference = base.path().join("reference");
        copy_dir(&prepared, &reference);
        let expected = open_and_dump(&reference);
        let mut cut = 0;
        loop {
            let attempt = base.path().join(format!("cut-{cut}"));
            copy_dir(&prepared, &attempt);
            CUT_NEXT_COMMIT.set(Some(cut));
            let first = Ledger::open(&attempt, config());
            CUT_NEXT_COMMIT.set(None);
            let whole = first.is_ok();
            drop(first);
            let found = open_and_dump(&attempt);
            let differ: Vec<String> = found
                .iter()
                .filter(|kv| !expected.contains(kv))
                .chain(expected.iter().filter(|kv| !found.contains(kv)))
                .map(|(tree, k, _)| format!("{tree} {:?}", String::from_utf8_lossy(k)))
                .collect();
            assert!(
                differ.is_empty(),
                "{name}: cut after {cut} writes, the recovered state differs in {differ:?}"
            );
            std::fs::remove_dir_all(&attempt).expect("removes");
            if whole {
                break;
            }
            cut += 1;
        }
        assert!(cut > 3, "{name}: the batch had only {cut} writes");
    }
}
