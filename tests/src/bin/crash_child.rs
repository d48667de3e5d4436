//! A process for the crash test: it commits entries as fast as it can from several threads and
//! prints `ACK <seq> <key>` for each acknowledged one, until it is killed.
//!
//! Usage: `crash-child DATA_DIR`. On a new ledger it first opens a budget and member accounts and
//! allocates a large budget. Most threads earn for one member; each of the others earns for a
//! member of its own and then expires that member's whole balance once the wallet has gone
//! unused for the expiry period: the ledger's clock runs [`SPEED`] times faster than the wall
//! clock, so the period passes in about 32 ms and a kill can fall in an expiry's commit like in
//! any other.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::io::{Stdout, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use timecredits_domain::{AccountId, AccountKind, Intent, Minutes, MovementKind};
use timecredits_ledger::{Clock, Committed, Ledger, LedgerConfig, LedgerError, Request};
use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::{config, open_account, submit};
use timecredits_tests::accounts_of;
use uuid::Uuid;

/// Threads earning for the shared member.
const EARNERS: usize = 6;

/// Threads each earning for and expiring a member of their own.
const EXPIRERS: usize = 2;

/// How much faster the ledger's clock runs than the wall clock: the testkit's 12-month expiry
/// period in about 32 ms.
const SPEED: i32 = 1_000_000_000;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: crash-child DATA_DIR");
    // The clock keeps the wall clock's time until the ledger's first entry is known, then runs
    // SPEED times faster from that entry's time: the same mapping in every run of the child, so
    // time in the ledger never goes back across kills.
    let start: Arc<OnceLock<DateTime<Utc>>> = Arc::default();
    let clock = {
        let start = Arc::clone(&start);
        Clock::new(move || {
            let now = Utc::now();
            start
                .get()
                .map_or(now, |first| *first + (now - *first) * SPEED)
        })
    };
    let ledger =
        Ledger::open(dir.as_ref(), LedgerConfig { clock, ..config() }).expect("ledger opens");
    let first = ledger.entry(0).unwrap().expect("the genesis entry");
    start.set(first.recorded).unwrap();
    let ledger = Arc::new(ledger);
    if accounts_of(&ledger, AccountKind::Member)
        .unwrap()
        .is_empty()
    {
        let budget = open_account(&ledger, AccountKind::Budget);
        for _ in 0..=EXPIRERS {
            open_account(&ledger, AccountKind::Member);
        }
        let programme = ledger.programme_account();
        let allocate = transfer(MovementKind::Allocate, programme, budget, Minutes::MAX);
        submit(&ledger, Uuid::nil(), allocate).expect("setup commits");
    }
    let budget = accounts_of(&ledger, AccountKind::Budget).unwrap()[0];
    let members = accounts_of(&ledger, AccountKind::Member).unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    println!("READY");
    let mut workers = Vec::new();
    for _ in 0..EARNERS {
        let (ledger, out) = (Arc::clone(&ledger), Arc::clone(&out));
        let member = members[0];
        workers.push(std::thread::spawn(move || loop {
            let earn = transfer(MovementKind::Earn, budget, member, 1);
            commit(&ledger, &out, earn).expect("an earn commits");
        }));
    }
    for &member in &members[1..] {
        let (ledger, out) = (Arc::clone(&ledger), Arc::clone(&out));
        workers.push(std::thread::spawn(move || loop {
            let earn = transfer(MovementKind::Earn, budget, member, 5);
            commit(&ledger, &out, earn).expect("an earn commits");
            std::thread::sleep(Duration::from_millis(40));
            expire_all(&ledger, &out, member);
        }));
    }
    for w in workers {
        w.join().unwrap();
    }
}

/// Commits `intent` under a fresh key and prints its acknowledgement.
fn commit(ledger: &Ledger, out: &Mutex<Stdout>, intent: Intent) -> Result<Committed, LedgerError> {
    let key = fresh();
    let request = Request::single(Uuid::nil(), key.clone(), intent);
    let committed = ledger.submit_blocking(request)?;
    let mut out = out.lock().unwrap();
    writeln!(out, "ACK {} {}", committed.entries[0].seq, key.as_str()).unwrap();
    out.flush().unwrap();
    Ok(committed)
}

/// Expires `member`'s whole balance (this thread alone writes to the wallet, so the balance
/// read is the one the expiry finds).
fn expire_all(ledger: &Ledger, out: &Mutex<Stdout>, member: AccountId) {
    let balance = ledger.account(member).unwrap().map_or(0, |a| a.balance);
    let minutes = u64::try_from(balance).expect("a wallet never goes below zero");
    if minutes > 0 {
        let expire = transfer(
            MovementKind::Expire,
            member,
            ledger.programme_account(),
            minutes,
        );
        if let Err(e) = commit(ledger, out, expire) {
            panic!("the expiry of a wallet unused for its period was refused: {e}");
        }
    }
}
