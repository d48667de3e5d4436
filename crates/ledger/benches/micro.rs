//! Micro benchmarks (criterion) on a small ledger: one durable commit at low load, one request
//! of many entries, and a balance read. The figures at scale are in `scale.rs`.

#![allow(clippy::unwrap_used)]
#![allow(missing_docs)] // criterion_group! defines a public function without a doc comment // test code, helpers included: a panic is how it fails

mod support;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use timecredits_ledger::{Ledger, Request};

use timecredits_domain::{Intent, Minutes, MovementKind};
use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::Scheme;
use timecredits_testkit::rng::Rng;

/// Members in the small ledger.
const MEMBERS: usize = 10_000;
/// Entries in the multi-entry request.
const REQUEST_PARTS: usize = 100;

/// The allocator the `timecredits` binary uses, so that the figures are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn benches(c: &mut Criterion) {
    let dir = support::scratch();
    let ledger = Ledger::open(dir.path(), support::config()).expect("ledger opens");
    let scheme = Scheme::new(&ledger, Minutes::MAX);
    let members = support::open_members(&ledger, MEMBERS);
    let mut rng = Rng::new(1);

    let mut commit = c.benchmark_group("commit");
    // Every iteration waits for an fdatasync: fewer, longer samples than criterion's default.
    commit.sample_size(50);
    commit.bench_function("one entry (low load, durable)", |b| {
        b.iter_batched(
            || support::earn(&scheme, *rng.pick(&members), 1),
            |request| ledger.submit_blocking(request).expect("commits"),
            BatchSize::SmallInput,
        )
    });
    commit.throughput(Throughput::Elements(REQUEST_PARTS as u64));
    commit.bench_function(format!("one request of {REQUEST_PARTS} entries"), |b| {
        b.iter_batched(
            || Request {
                actor: scheme.admin,
                key: fresh(),
                intents: (0..REQUEST_PARTS)
                    .map(|_| transfer(MovementKind::Earn, scheme.budget, *rng.pick(&members), 1))
                    .collect::<Vec<Intent>>(),
            },
            |request| ledger.submit_blocking(request).expect("commits"),
            BatchSize::SmallInput,
        )
    });
    commit.finish();

    let mut read = c.benchmark_group("read");
    read.bench_function(format!("balance (any of {MEMBERS} members)"), |b| {
        b.iter_batched(
            || *rng.pick(&members),
            |member| ledger.account(member).expect("reads"),
            BatchSize::SmallInput,
        )
    });
    read.finish();
}

criterion_group!(micro, benches);
criterion_main!(micro);
