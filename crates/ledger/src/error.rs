//! The ledger's errors. Callers (the HTTP service) map each variant to a response in one place.

use timecredits_domain::{RuleViolation, ValidationError};
use timecredits_tlog::merkle::TreeError;

/// Why a ledger operation failed.
#[derive(thiserror::Error, Debug)]
pub enum LedgerError {
    /// The request is malformed; nothing was written.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Part `part` of the request breaks a ledger rule; nothing was written.
    #[error("part {part}: {violation}")]
    Rejected {
        /// The index of the refused part within the request, from 0.
        part: usize,
        /// The rule it breaks.
        violation: RuleViolation,
    },
    /// The actor already used this idempotency key for a different request.
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyConflict {
        /// The key that was used twice.
        key: String,
    },
    /// A proof was asked for sizes or indexes the tree does not have.
    #[error("{0}")]
    Proof(String),
    /// An export was asked up to a tree size that has no signed checkpoint (one is signed at the
    /// end of every committed batch). `below` and `above` are the nearest sizes that have one.
    #[error("no signed checkpoint at tree size {size}; {}", nearest_sizes(*below, *above))]
    NoCheckpointAt {
        /// The size asked for.
        size: u64,
        /// The nearest smaller size with a checkpoint, if any.
        below: Option<u64>,
        /// The nearest larger size with a checkpoint, if any.
        above: Option<u64>,
    },
    /// An export was asked to start after the tree size it ends at.
    #[error("an export cannot start at entry {from}: it ends at tree size {size}")]
    ExportStartsPastEnd {
        /// The first entry asked for.
        from: u64,
        /// The tree size the export ends at.
        size: u64,
    },
    /// The writer stopped after a storage failure or at shutdown; no write is accepted.
    #[error("the ledger is not accepting writes: {0}")]
    Unavailable(String),
    /// The disk holding the journal is full: nothing was written, and writes resume by
    /// themselves once there is room.
    #[error("the disk holding the ledger's journal is full; nothing was written")]
    StorageFull,
    /// More requests wait for the writer than its queue holds; the request was not taken.
    #[error("the ledger has too many requests waiting; retry shortly")]
    Busy,
    /// A key rotation was asked for while another one is under way.
    #[error("another key rotation is under way")]
    RotationInProgress,
    /// A key rotation was asked for while the last one's overlap runs (see [`crate::keys`]).
    #[error(
        "the previous key rotation's overlap runs until {until}: the key before it still signs \
         checkpoints, and a rotation now would end that promise early"
    )]
    KeyOverlapRunning {
        /// When the overlap ends and a new rotation may start.
        until: chrono::DateTime<chrono::Utc>,
    },
    /// The data directory was created with another checkpoint origin.
    #[error("this ledger's origin is {stored:?}, not {configured:?}")]
    OriginMismatch {
        /// The origin the data directory was created with.
        stored: String,
        /// The origin this start was given.
        configured: String,
    },
    /// The journal holds fewer entries than a checkpoint the ledger already signed: its tail was
    /// lost (see [`crate::signed`]). Taking writes would sign a different tree of a size some
    /// holder of the checkpoint already has.
    #[error(
        "the journal holds {journal} entries, but this ledger already signed a checkpoint of \
         {signed} entries (signed-tree): the journal lost its last {} entries; restore a journal \
         that holds them from a backup",
        signed - journal
    )]
    LostTail {
        /// The size of the largest checkpoint already signed.
        signed: u64,
        /// The number of entries the journal holds.
        journal: u64,
    },
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

/// Names the sizes a caller could ask for instead.
fn nearest_sizes(below: Option<u64>, above: Option<u64>) -> String {
    match (below, above) {
        (Some(b), Some(a)) => format!("the nearest are {b} and {a}"),
        (Some(b), None) => format!("the latest is {b}"),
        (None, Some(a)) => format!("the first is {a}"),
        (None, None) => "there is none yet".into(),
    }
}

impl From<TreeError> for LedgerError {
    fn from(e: TreeError) -> Self {
        LedgerError::Proof(e.to_string())
    }
}
