//! `timecredits-testkit`: the one copy of what the tests and benchmarks of the workspace share.
//!
//! - [`intents`]: idempotency keys, texts, details and transfers, built from the domain types.
//! - [`entries`]: one committed entry of every kind, each with every field its kind carries.
//! - [`ledger`]: a real ledger for tests, its accounts and a small scheme.
//! - [`rng`]: a seeded generator, so that randomised tests and benchmarks can be repeated.
//! - [`synthetic`]: realistic, valid histories of any length and signed exports of them.
//!
//! It is test code (`publish = false`): a builder panics on what cannot happen in a test, and
//! the crates whose tests use it take it as a dev-dependency.

#![forbid(unsafe_code)]

pub mod entries;
pub mod intents;
pub mod ledger;
pub mod rng;
pub mod synthetic;
