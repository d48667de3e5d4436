//! A process for the crash test: it commits entries as fast as it can from several threads and
//! prints `ACK <seq> <key>` for each acknowledged one, until it is killed.
//!
//! Usage: `crash-child DATA_DIR`. On a new ledger it first opens a budget and a member account and
//! allocates a large budget.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::io::Write;
use std::sync::{Arc, Mutex};

use timecredits_domain::{AccountKind, Minutes, MovementKind};
use timecredits_ledger::Request;
use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::{open, open_account, submit};
use timecredits_tests::first_account;
use uuid::Uuid;

const THREADS: usize = 8;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: crash-child DATA_DIR");
    let ledger = Arc::new(open(dir.as_ref()));
    if first_account(&ledger, AccountKind::Member)
        .unwrap()
        .is_none()
    {
        open_account(&ledger, AccountKind::Budget);
        open_account(&ledger, AccountKind::Member);
        let budget = first_account(&ledger, AccountKind::Budget)
            .unwrap()
            .unwrap();
        let programme = ledger.programme_account();
        let allocate = transfer(MovementKind::Allocate, programme, budget, Minutes::MAX);
        submit(&ledger, Uuid::nil(), allocate).expect("setup commits");
    }
    let budget = first_account(&ledger, AccountKind::Budget)
        .unwrap()
        .unwrap();
    let member = first_account(&ledger, AccountKind::Member)
        .unwrap()
        .unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    println!("READY");
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (ledger, out) = (Arc::clone(&ledger), Arc::clone(&out));
            std::thread::spawn(move || loop {
                let key = fresh();
                let intent = transfer(MovementKind::Earn, budget, member, 1);
                let request = Request::single(Uuid::nil(), key.clone(), intent);
                let committed = ledger.submit_blocking(request).expect("commit");
                let mut out = out.lock().unwrap();
                writeln!(out, "ACK {} {}", committed.entries[0].seq, key.as_str()).unwrap();
                out.flush().unwrap();
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
