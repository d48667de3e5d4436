//! The time-credit ledger: an append-only, double-entry ledger whose entries form an RFC 6962
//! Merkle tree, sealed after every commit by an ed25519-signed C2SP checkpoint.
//!
//! # Storage, in one paragraph
//! A data directory holds three things (see [`layout`]): the **journal**, an append-only file of
//! checksummed canonical entry records that is the source of truth and is `fdatasync`ed before any
//! write is acknowledged; the **state**, a sled database of everything derived from the journal
//! (balances, indexes, Merkle hashes, the latest checkpoint) that is never trusted for durability
//! and is rebuilt from the journal when it lags or is lost; and the **signing key**.
//!
//! # Writing
//! All writes go through one [`Ledger::submit`] queue served by the writer with group commit:
//! one thread decides every request, syncs the journal and signs the checkpoint; a second answers
//! the callers, then applies their batches to the state, several at a time when they queue up
//! (see the `writer` module). Reads go straight to the state and the journal; while a batch already
//! answered is not yet applied, a read waits for it (about a millisecond), so nobody reads a
//! state older than an answer they were given.
//!
//! # Evidence
//! [`Ledger::export`] streams an auditor's export (the format of `timecredits_domain::export`,
//! documented in `AUDIT.md`) and [`Ledger::receipt`] gives a member a `tlog-proof@v1` for an
//! entry; both are checked offline by the `timecredits-audit` verifier.
//!
//! # Invariants the ledger maintains
//! - Every acknowledged entry is on disk and survives `kill -9`.
//! - Entry `n` is Merkle leaf `n`; the stored tree always equals the tree of the journal's entries.
//! - The state always reflects a prefix of the journal, batch by batch: a batch a stop cuts
//!   short is undone at open and replayed (see `store::undo` and the `recovery` module).
//! - The rules of [`timecredits_domain::rules`] hold after every entry.

#![forbid(unsafe_code)]

pub mod check;
mod error;
pub mod export;
pub mod journal;
pub mod keys;
mod ledger;
pub mod observer;
mod pending;
mod recovery;
#[cfg(test)]
mod recovery_tests;
mod scan;
pub mod signed;
pub mod store;
mod writer;

pub use check::CheckReport;
pub use error::LedgerError;
pub use export::{Export, ExportRange};
pub use ledger::{
    layout, Clock, Committed, HistoryPage, HistoryQuery, Ledger, LedgerConfig, Request,
    SignedCheckpoint,
};
pub use scan::Entries;
