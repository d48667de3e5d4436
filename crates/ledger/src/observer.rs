//! What the writer tells a watcher about each batch it seals (the service turns it into
//! metrics). The ledger only reports; how the figures are kept is the watcher's business, so
//! the ledger knows nothing of any metrics format.
//!
//! The writer calls [`BatchObserver::sealed`] on its own thread, once per sealed batch (not per
//! request), after the batch is durable and signed and before its callers are answered: an
//! observer must be quick and must not block (adding to a counter or a histogram is).

use std::sync::Arc;
use std::time::Duration;

/// One sealed batch: a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedBatch {
    /// Requests the batch took from the queue (replays and refusals included).
    pub requests: usize,
    /// New entries the batch appended.
    pub entries: usize,
    /// How long the journal's `fdatasync` took.
    pub sync: Duration,
}

/// A watcher of the writer (see the module documentation).
pub trait BatchObserver: Send + Sync {
    /// A batch was sealed: its entries are durable and covered by a signed checkpoint.
    fn sealed(&self, batch: &SealedBatch);
}

/// A shared [`BatchObserver`], as [`crate::LedgerConfig`] holds it.
#[derive(Clone)]
pub struct Observer(pub Arc<dyn BatchObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}
