//! A real ledger for tests: its settings, requests submitted with fresh keys, accounts, and a
//! small scheme to move credits in.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{TimeDelta, Utc};

use timecredits_domain::{AccountId, AccountKind, Entry, EntryBody, Intent, MovementKind};
use timecredits_ledger::{Clock, Committed, Ledger, LedgerConfig, LedgerError, Request};
use uuid::Uuid;

use crate::intents::{fresh, transfer};

/// The origin (and signing key name) of the tests' ledgers.
pub const ORIGIN: &str = "ledger.example/timecredits";

/// The tests' settings: the defaults, with [`ORIGIN`] and a small cache.
pub fn config() -> LedgerConfig {
    LedgerConfig {
        origin: ORIGIN.into(),
        cache_bytes: 8 << 20,
        ..LedgerConfig::default()
    }
}

/// A clock a test moves forward, for what takes months (an expiry): the system's time plus an
/// offset that only grows.
#[derive(Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        self.0.fetch_add(
            by.num_microseconds().expect("a test's step fits"),
            Ordering::SeqCst,
        );
    }

    /// The ledger's clock that reads this one.
    pub fn clock(&self) -> Clock {
        let offset = Arc::clone(&self.0);
        Clock::new(move || Utc::now() + TimeDelta::microseconds(offset.load(Ordering::SeqCst)))
    }

    /// The tests' [`config`] with this clock.
    pub fn config(&self) -> LedgerConfig {
        LedgerConfig {
            clock: self.clock(),
            ..config()
        }
    }
}

/// Opens (or creates) the ledger in `dir` with the tests' [`config`].
pub fn open(dir: &Path) -> Ledger {
    Ledger::open(dir, config()).expect("ledger opens")
}

/// Submits `intent` alone for `actor`, with a fresh idempotency key.
pub fn submit(ledger: &Ledger, actor: Uuid, intent: Intent) -> Result<Committed, LedgerError> {
    ledger.submit_blocking(Request::single(actor, fresh(), intent))
}

/// Opens an account of `kind` (owned by a new partner if the kind has owners).
pub fn open_account(ledger: &Ledger, kind: AccountKind) -> AccountId {
    let open = Intent::Open {
        account_kind: kind,
        owner: kind.has_owner().then(Uuid::now_v7),
    };
    let committed = submit(ledger, Uuid::now_v7(), open).expect("the account opens");
    match committed.entries[0].body {
        EntryBody::Open { account, .. } => account,
        ref other => panic!("an open made {other:?}"),
    }
}

/// The balance of the account `id`, which must exist.
pub fn balance(ledger: &Ledger, id: AccountId) -> i64 {
    ledger
        .account(id)
        .expect("the account reads")
        .expect("the account exists")
        .balance
}

/// Every entry of `ledger`, in log order.
pub fn entries(ledger: &Ledger) -> Vec<Entry> {
    let size = ledger.size().expect("the size reads");
    (0..size)
        .map(|seq| {
            ledger
                .entry(seq)
                .expect("the entry reads")
                .expect("the entry exists")
        })
        .collect()
}

/// A small scheme: a budget, a venue and two members.
pub struct Scheme {
    /// The administrator that allocates.
    pub admin: Uuid,
    /// The programme account, which allocations debit.
    pub programme: AccountId,
    /// An earn partner's budget.
    pub budget: AccountId,
    /// A venue, where members spend.
    pub venue: AccountId,
    /// A member.
    pub alice: AccountId,
    /// Another member.
    pub bob: AccountId,
}

impl Scheme {
    /// A scheme whose budget was allocated `budget_minutes`.
    pub fn new(ledger: &Ledger, budget_minutes: u64) -> Scheme {
        let admin = Uuid::now_v7();
        let programme = ledger.programme_account();
        let budget = open_account(ledger, AccountKind::Budget);
        let venue = open_account(ledger, AccountKind::Venue);
        let alice = open_account(ledger, AccountKind::Member);
        let bob = open_account(ledger, AccountKind::Member);
        let allocate = transfer(MovementKind::Allocate, programme, budget, budget_minutes);
        submit(ledger, admin, allocate).expect("the budget is allocated");
        Scheme {
            admin,
            programme,
            budget,
            venue,
            alice,
            bob,
        }
    }

    /// A scheme whose budget has given all of its `minutes` to Alice.
    pub fn with_alice_holding(ledger: &Ledger, minutes: u64) -> Scheme {
        let s = Scheme::new(ledger, minutes);
        let earn = transfer(MovementKind::Earn, s.budget, s.alice, minutes);
        submit(ledger, s.admin, earn).expect("Alice earns");
        s
    }
}
