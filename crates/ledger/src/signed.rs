//! The largest tree the ledger has signed, recorded in a file of its own (`signed-tree`), so that
//! the ledger never signs two different trees of the same size.
//!
//! The journal is the source of truth, and every checkpoint is signed only once the entries it
//! covers are synced to it. A journal can still come back shorter than a tree already signed: a
//! disk that lost writes it had confirmed, a file restored from an older backup or copied while
//! the service ran. Replaying such a journal and taking new writes would sign, for a size some
//! member, venue or auditor already holds a checkpoint of, a tree with other entries: a fork
//! that the signatures make look legitimate. So the ledger keeps the latest checkpoint it signed
//! beside the journal, in a file it replaces atomically, and at open it refuses a journal that
//! is shorter than that tree, or whose first entries are not that tree, or a signing key that did
//! not sign it (see `Ledger::open`).
//!
//! The file is rewritten at open, at most every [`RECORD_EVERY`] while writes are answered, once
//! writes pause for [`RECORD_EVERY`] (so a quiet ledger's file holds its whole tree: a backup
//! cuts there), and at shutdown; each rewrite is synced. So a tail lost within the last [`RECORD_EVERY`] of writes
//! before a power cut can still go unnoticed: the file narrows the window in which a lost tail
//! becomes a fork, it does not close it. The state's own copy of the latest checkpoint (in sled)
//! serves as the record of a ledger made before this file existed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::LedgerError;
use crate::keys::write_private_file;
use crate::ledger::layout;
use crate::SignedCheckpoint;

/// How often, at most, the writer records the latest checkpoint while it answers writes.
pub const RECORD_EVERY: Duration = Duration::from_millis(100);

/// The `signed-tree` file of a data directory.
#[derive(Debug)]
pub struct SignedTree {
    path: PathBuf,
    /// When the file was last written, and the tree size it then recorded.
    last: Option<(Instant, u64)>,
}

impl SignedTree {
    /// The record in `dir` (the file need not exist yet).
    pub fn new(dir: &Path) -> SignedTree {
        SignedTree {
            path: dir.join(layout::SIGNED_TREE),
            last: None,
        }
    }

    /// The latest checkpoint recorded, if the file exists.
    pub fn read(&self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        match std::fs::read_to_string(&self.path) {
            Ok(note) => SignedCheckpoint::from_stored(note).map(Some).map_err(|e| {
                LedgerError::Corrupt(format!("{} is unreadable: {e}", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records `checkpoint` now, synced.
    pub fn record(&mut self, checkpoint: &SignedCheckpoint) -> Result<(), LedgerError> {
        write_private_file(&self.path, checkpoint.note.as_bytes())?;
        self.last = Some((Instant::now(), checkpoint.checkpoint.size));
        Ok(())
    }

    /// Records `checkpoint` unless the file was written less than [`RECORD_EVERY`] ago or
    /// already holds its size. A failure is logged, not returned: the journal, not this file,
    /// holds the ledger, and the next record tries again. Returns whether the file holds
    /// `checkpoint`'s size afterwards (if not, the caller records it later).
    pub fn record_now_and_then(&mut self, checkpoint: &SignedCheckpoint) -> bool {
        let size = checkpoint.checkpoint.size;
        let due = self
            .last
            .is_none_or(|(at, recorded)| recorded != size && at.elapsed() >= RECORD_EVERY);
        if due {
            if let Err(e) = self.record(checkpoint) {
                tracing::error!(error = %e, path = %self.path.display(), "recording the latest signed checkpoint failed");
            }
        }
        self.last.is_some_and(|(_, recorded)| recorded == size)
    }
}
