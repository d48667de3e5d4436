//! The domain of a time-credit ledger, with no storage and no HTTP.
//!
//! A programme issues credits to partners' budgets; earn partners pass them to members for time
//! given; members spend them at venues or gift them to each other; venues retire what they
//! redeemed. Every change is an [`Entry`] appended to a log and never edited: a correction is a new
//! `reverse` entry that mirrors the original.
//!
//! The crate has six parts:
//! - [`amount`]: exact integer amounts in minutes (one credit is 60 minutes);
//! - [`entry`]: accounts, entries and the canonical JSON bytes that are hashed into the Merkle log;
//! - [`export`]: the header of the export file auditors verify;
//! - [`rules`]: what every entry must satisfy against the accounts it touches. The ledger applies
//!   these rules before it commits an entry, and the auditor's verifier applies the very same rules
//!   when it replays an export, so both agree by construction.
//! - [`profile`]: a member's optional profile (age band, district, consent), kept outside the
//!   ledger and never part of an entry;
//! - [`report`]: impact reports (figures per period, partner and activity) computed from the
//!   entries, by the service and by the auditor alike, and written as CSV or JSON.
//!
//! # Invariants
//! 1. The sum of all balances is zero: every movement debits one account and credits another by
//!    the same amount.
//! 2. Only the programme account may be negative; minus its balance is the credit in circulation.
//! 3. An entry is reversed at most once, and a reversal is never reversed.
//! 4. A closed account takes no movement.

#![forbid(unsafe_code)]

pub mod amount;
pub mod csv;
pub mod entry;
pub mod export;
pub mod profile;
pub mod report;
pub mod rules;
mod scan;

pub use amount::{Balance, Minutes, MINUTES_PER_CREDIT};
pub use entry::{
    AccountId, AccountKind, DecodeError, Details, Entry, EntryBody, EntryKind, IdempotencyKey,
    Intent, KeyRotation, Movement, MovementKind, ShortText, Transfer, ValidationError,
};
pub use rules::{AccountState, AccountStatus, Original, RuleViolation};
