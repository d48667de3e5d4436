//! A process for the crash test: it commits entries as fast as it can from several threads and
//! prints `ACK <seq> <key>` for each acknowledged one, until it is killed.
//!
//! Usage: `crash-child DATA_DIR`. On a new ledger it first opens a budget and a member account and
//! allocates a large budget.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::io::Write;
use std::sync::{Arc, Mutex};

use timecredits_domain::{
    AccountKind, Details, IdempotencyKey, Intent, Minutes, MovementKind, ShortText, Transfer,
};
use timecredits_ledger::{Ledger, LedgerConfig, Request};
use timecredits_tests::first_account;
use uuid::Uuid;

const THREADS: usize = 8;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: crash-child DATA_DIR");
    let config = LedgerConfig {
        origin: "crash.test/ledger".into(),
        cache_bytes: 8 << 20,
        ..LedgerConfig::default()
    };
    let ledger = Arc::new(Ledger::open(dir.as_ref(), config).expect("ledger opens"));
    let actor = Uuid::nil();
    let submit = |intent: Intent| {
        let key = IdempotencyKey::new(Uuid::now_v7().to_string()).unwrap();
        ledger
            .submit_blocking(Request::single(actor, key, intent))
            .expect("setup commits")
    };
    if first_account(&ledger, AccountKind::Member)
        .unwrap()
        .is_none()
    {
        submit(Intent::Open {
            account_kind: AccountKind::Budget,
            owner: Some(Uuid::now_v7()),
        });
        submit(Intent::Open {
            account_kind: AccountKind::Member,
            owner: None,
        });
        let budget = first_account(&ledger, AccountKind::Budget)
            .unwrap()
            .unwrap();
        submit(Intent::Transfer(Transfer {
            kind: MovementKind::Allocate,
            debit: ledger.programme_account(),
            credit: budget,
            minutes: Minutes::new(Minutes::MAX).unwrap(),
            effective: None,
            details: Details::default(),
        }));
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
                let key = Uuid::now_v7().to_string();
                let intent = Intent::Transfer(Transfer {
                    kind: MovementKind::Earn,
                    debit: budget,
                    credit: member,
                    minutes: Minutes::new(1).unwrap(),
                    effective: None,
                    details: Details {
                        activity: Some(ShortText::new("activity", "crash test").unwrap()),
                        ..Details::default()
                    },
                });
                let request =
                    Request::single(actor, IdempotencyKey::new(key.clone()).unwrap(), intent);
                let committed = ledger.submit_blocking(request).expect("commit");
                let mut out = out.lock().unwrap();
                writeln!(out, "ACK {} {}", committed.entries[0].seq, key).unwrap();
                out.flush().unwrap();
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
