//! The ledger's errors. Callers (the HTTP service) map each variant to a response in one place.

use timecredits_domain::{RuleViolation, ValidationError};

/// Why a ledger operation failed.
#[derive(thiserror::Error, Debug)]
pub enum LedgerError {
    /// The request is malformed; nothing was written.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Part `part` of the request breaks a ledger rule; nothing was written.
    #[error("part {part}: {violation}")]
    Rejected {
        part: usize,
        violation: RuleViolation,
    },
    /// The actor already used this idempotency key for a different request.
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyConflict { key: String },
    /// A proof was asked for sizes or indexes the tree does not have.
    #[error("{0}")]
    Proof(String),
    /// The writer stopped after a storage failure or at shutdown; no write is accepted.
    #[error("the ledger is not accepting writes: {0}")]
    Unavailable(String),
    /// The data directory was created with another checkpoint origin.
    #[error("this ledger's origin is {stored:?}, not {configured:?}")]
    OriginMismatch { stored: String, configured: String },
    /// Stored data does not match what the ledger wrote: it must not be served.
    #[error("ledger data is corrupt: {0}")]
    Corrupt(String),
    /// The signing key could not be created or read.
    #[error("signing key: {0}")]
    Key(String),
    /// An I/O failure.
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    /// A failure inside sled.
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// A failure in the journal.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}
