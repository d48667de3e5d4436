//! Shared fixtures for the ledger's integration tests: a scheme with a programme, partners and
//! members, and short constructors for requests.
#![allow(dead_code)] // Each test file uses a different subset.

use std::path::Path;

use timecredits_domain::{
    AccountId, AccountKind, Details, IdempotencyKey, Intent, Minutes, MovementKind, ShortText,
    Transfer,
};
use timecredits_ledger::{Committed, Ledger, LedgerConfig, LedgerError, Request};
use uuid::Uuid;

pub const ORIGIN: &str = "test.example/ledger";

pub fn config() -> LedgerConfig {
    LedgerConfig {
        origin: ORIGIN.into(),
        cache_bytes: 8 << 20,
        ..LedgerConfig::default()
    }
}

pub fn open(dir: &Path) -> Ledger {
    Ledger::open(dir, config()).expect("ledger opens")
}

pub fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new(k).unwrap()
}

/// A fresh idempotency key.
pub fn fresh() -> IdempotencyKey {
    key(&Uuid::now_v7().to_string())
}

pub fn text(s: &str) -> ShortText {
    ShortText::new("test", s).unwrap()
}

pub fn details(kind: MovementKind) -> Details {
    match kind {
        MovementKind::Earn => Details {
            activity: Some(text("befriending")),
            ..Details::default()
        },
        MovementKind::Spend => Details {
            activity: Some(text("swimming")),
            adults: Some(1),
            children: Some(1),
            ..Details::default()
        },
        _ => Details::default(),
    }
}

pub fn transfer(kind: MovementKind, debit: AccountId, credit: AccountId, minutes: u64) -> Intent {
    Intent::Transfer(Transfer {
        kind,
        debit,
        credit,
        minutes: Minutes::new(minutes).unwrap(),
        effective: None,
        details: details(kind),
    })
}

pub fn submit(ledger: &Ledger, actor: Uuid, intent: Intent) -> Result<Committed, LedgerError> {
    ledger.submit_blocking(Request::single(actor, fresh(), intent))
}

pub fn open_account(ledger: &Ledger, kind: AccountKind) -> AccountId {
    let owner = kind.has_owner().then(Uuid::now_v7);
    let committed = submit(
        ledger,
        Uuid::now_v7(),
        Intent::Open {
            account_kind: kind,
            owner,
        },
    )
    .unwrap();
    match &committed.entries[0].body {
        timecredits_domain::EntryBody::Open { account, .. } => *account,
        other => panic!("open made {other:?}"),
    }
}

pub fn balance(ledger: &Ledger, id: AccountId) -> i64 {
    ledger.account(id).unwrap().expect("account exists").balance
}

/// A small scheme: a budget allocated `budget_minutes`, a venue and two members.
pub struct Scheme {
    pub admin: Uuid,
    pub programme: AccountId,
    pub budget: AccountId,
    pub venue: AccountId,
    pub alice: AccountId,
    pub bob: AccountId,
}

impl Scheme {
    pub fn new(ledger: &Ledger, budget_minutes: u64) -> Scheme {
        let admin = Uuid::now_v7();
        let programme = ledger.programme_account();
        let budget = open_account(ledger, AccountKind::Budget);
        let venue = open_account(ledger, AccountKind::Venue);
        let alice = open_account(ledger, AccountKind::Member);
        let bob = open_account(ledger, AccountKind::Member);
        submit(
            ledger,
            admin,
            transfer(MovementKind::Allocate, programme, budget, budget_minutes),
        )
        .unwrap();
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
        submit(
            ledger,
            s.admin,
            transfer(MovementKind::Earn, s.budget, s.alice, minutes),
        )
        .unwrap();
        s
    }
}
