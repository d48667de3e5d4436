//! The report's fast scan over a 1,000,000-entry ledger: `cargo bench -p timecredits-audit
//! --bench report`.
//!
//! The history is the test kit's synthetic one (10 earn partners, 10 venues, members joining up
//! to 200,000, every movement kind), spread over a year (one entry every 30 seconds), built once
//! before timing. Two measurements, both ending in the CSV written to a sink:
//! - `tally`: the report over entries already decoded (what the service's scan costs once it
//!   holds the entries);
//! - `decode_and_tally`: the same from each entry's canonical bytes, as stored in the ledger and
//!   in an export, so the cost of reading them is in the figure too.

#![allow(missing_docs)] // criterion_group! defines a public function without a doc comment

use std::io::sink;

use criterion::{criterion_group, criterion_main, Criterion};
use timecredits_domain::report::{report, write_csv, ReportSpec};
use timecredits_domain::Entry;
use timecredits_testkit::synthetic::{spread, History};

const ENTRIES: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let entries: Vec<Entry> = spread(History::new(1).take(ENTRIES), 30).collect();
    let lines: Vec<Vec<u8>> = entries.iter().map(Entry::encode).collect();
    let spec = ReportSpec::default();
    let rows = report(&entries, &spec).expect("a valid history").rows.len();
    eprintln!("{ENTRIES} entries, {rows} rows by month");
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.bench_function("tally", |b| {
        b.iter(|| {
            let report = report(&entries, &spec).expect("a valid history");
            write_csv(&report, &mut sink()).expect("a sink takes anything");
        })
    });
    group.bench_function("decode_and_tally", |b| {
        b.iter(|| {
            let decoded = lines
                .iter()
                .map(|line| Entry::decode(line).expect("canonical bytes"));
            let report = report(decoded, &spec).expect("a valid history");
            write_csv(&report, &mut sink()).expect("a sink takes anything");
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
