//! The derived state in sled: balances and indexes, all rebuilt from the journal if lost.
//!
//! Account records live in the `accounts` tree, keyed by account id (16 bytes), so that reading a
//! balance costs the same whatever the size of the log. Everything else lives in sled's default
//! tree under one-byte prefixes. The `applied` record always says exactly how many entries the
//! state reflects.
//!
//! One file per role:
//!
//! | module   | what it holds |
//! |----------|---------------|
//! | `layout` | the trees, keys and values, [`LAYOUT`], and the codecs of every record |
//! | `batch`  | [`StateBatch`], the rows one commit writes, and [`Store::commit`], which writes them in an order that keeps readers and recovery sound |
//! | `cache`  | the commit path's copies of account records |
//! | `undo`   | the `undo` record, and undoing at open a batch a stop cut short |
//! | `reads`  | every read of the state |
//!
//! [`Store::open`] refuses a state it cannot read ([`OpenError::is_unreadable_state`]), so that the
//! ledger moves it aside and rebuilds it from the journal.

use std::fs::TryLockError;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod batch;
mod cache;
mod layout;
mod reads;
mod undo;

pub use batch::StateBatch;
#[cfg(test)]
pub(crate) use batch::CUT_NEXT_COMMIT;
pub use layout::{HistoryRow, IdempotencyRecord, CHUNK_ENTRIES, HEAD_ROWS, LAYOUT};

use crate::error::LedgerError;
use cache::AccountCache;
use layout::{ACCOUNTS_TREE, META_LAYOUT};

/// The sled-backed state. Cheap to clone; all clones share one database.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    /// The `accounts` tree.
    accounts: sled::Tree,
    cache: Arc<Mutex<AccountCache>>,
}

/// How long [`Store::open`] waits for sled's lock on the state: a state dropped in this process
/// releases it only when sled's I/O threads have finished, shortly after the drop.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Why [`Store::open`] refused a state.
#[derive(thiserror::Error, Debug)]
pub enum OpenError {
    /// sled failed: it could not open the database, or a read or write of it failed.
    #[error(transparent)]
    Sled(#[from] sled::Error),
    /// The state was written with another [`LAYOUT`].
    #[error("the state has layout {found}, this version reads layout {LAYOUT}")]
    OtherLayout {
        /// The layout the state says it has (`1`: none, `unknown`: unreadable).
        found: String,
    },
    /// A batch a stop cut short cannot be undone: its `undo` record does not decode, or the state
    /// it would be applied to does not.
    #[error("the state's undo record cannot be used: {0}")]
    Undo(LedgerError),
}

impl OpenError {
    /// Whether the state itself is unreadable, so that the ledger may move it aside and rebuild
    /// it from the journal: sled found it corrupt or in a form it does not support (or hit one of
    /// its own bugs reading it), it has another layout, or a cut batch cannot be undone. Any
    /// other failure (I/O, a lock another process holds) says nothing against the state.
    pub fn is_unreadable_state(&self) -> bool {
        match self {
            OpenError::Sled(e) => matches!(
                e,
                sled::Error::Corruption { .. }
                    | sled::Error::ReportableBug(_)
                    | sled::Error::Unsupported(_)
            ),
            OpenError::OtherLayout { .. } | OpenError::Undo(_) => true,
        }
    }
}

impl From<OpenError> for LedgerError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Sled(e) => LedgerError::Sled(e),
            OpenError::Undo(e) => e,
            e @ OpenError::OtherLayout { .. } => LedgerError::Corrupt(e.to_string()),
        }
    }
}

impl Store {
    /// Opens the sled database at `path`: waits up to 5 s (`LOCK_WAIT`) for its lock, checks its
    /// [`LAYOUT`] (a new database gets the current one) and undoes a state batch a stop cut short
    /// (see the `undo` module). A lock still held after the wait belongs to another process, and
    /// sled's open fails.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, OpenError> {
        wait_for_lock(path);
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Durability comes from the journal; sled's own background flush only bounds how much
            // journal is replayed after a crash.
            .flush_every_ms(Some(1000))
            .open()?;
        check_layout(&db)?;
        let store = Store {
            accounts: db.open_tree(ACCOUNTS_TREE)?,
            db,
            cache: Arc::default(),
        };
        match store.undo_cut_batch() {
            Ok(0) => {}
            Ok(records) => {
                tracing::info!(records, "undid a state batch a stop interrupted");
            }
            Err(LedgerError::Sled(e)) => return Err(OpenError::Sled(e)),
            Err(e) => return Err(OpenError::Undo(e)),
        }
        Ok(store)
    }

    /// Flushes sled to disk (on clean shutdown, so the next open replays nothing).
    pub fn flush(&self) -> Result<(), LedgerError> {
        self.db.flush()?;
        Ok(())
    }

    /// Every key and value of both trees, for tests that compare whole states.
    #[cfg(test)]
    pub(crate) fn dump(&self) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let mut all = Vec::new();
        for (name, tree) in [("default", &*self.db), ("accounts", &self.accounts)] {
            for item in tree.iter() {
                let (k, v) = item.expect("a readable state");
                all.push((name.to_owned(), k.to_vec(), v.to_vec()));
            }
        }
        all
    }

    /// Disk space sled uses, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, LedgerError> {
        Ok(self.db.size_on_disk()?)
    }
}

/// Waits, up to [`LOCK_WAIT`], until nothing holds sled's lock on the state at `path`.
///
/// sled 0.34.7 reports a held lock only as an `io::ErrorKind::Other` error whose message says so
/// (the `flock` error is formatted into its text), so the store asks the OS instead: sled locks
/// the file `db` in the state's directory with `flock`, which `File::try_lock` uses too, and a
/// lock held through another open file, in this process or another, answers `WouldBlock`. A file
/// that cannot be opened or locked ends the wait: sled's open then meets the same failure and
/// says what it is.
fn wait_for_lock(path: &Path) {
    let deadline = Instant::now() + LOCK_WAIT;
    let locked = || {
        std::fs::File::open(path.join("db"))
            .is_ok_and(|db| matches!(db.try_lock(), Err(TryLockError::WouldBlock)))
    };
    while locked() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that `db` has the current [`LAYOUT`], giving an empty (new) one the current layout.
fn check_layout(db: &sled::Db) -> Result<(), OpenError> {
    match db.get(META_LAYOUT)? {
        Some(v) if v.as_ref() == LAYOUT.to_be_bytes() => Ok(()),
        None if db.is_empty() => {
            db.insert(META_LAYOUT, &LAYOUT.to_be_bytes()[..])?;
            Ok(())
        }
        None => Err(OpenError::OtherLayout { found: "1".into() }),
        Some(v) => Err(OpenError::OtherLayout {
            found: <[u8; 4]>::try_from(v.as_ref())
                .map_or_else(|_| "unknown".into(), |b| u32::from_be_bytes(b).to_string()),
        }),
    }
}

/// What the tests of every part of the store start from.
#[cfg(test)]
pub(crate) mod testing {
    use timecredits_domain::{AccountId, AccountKind, AccountState, AccountStatus};
    use uuid::Uuid;

    use super::Store;

    pub(crate) fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state"), 1 << 20).unwrap();
        (dir, s)
    }

    pub(crate) fn account(kind: AccountKind) -> AccountState {
        AccountState {
            id: AccountId::new(),
            kind,
            owner: Some(Uuid::now_v7()),
            status: AccountStatus::Closed,
            balance: -42,
            opened: 9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_of_another_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let db = sled::open(&path).unwrap();
        db.insert(b"msize", &1u64.to_be_bytes()[..]).unwrap();
        drop(db);
        assert!(matches!(
            Store::open(&path, 1 << 20),
            Err(e @ OpenError::OtherLayout { .. }) if e.is_unreadable_state()
        ));
        let new = dir.path().join("new");
        drop(Store::open(&new, 1 << 20).unwrap());
        assert!(
            Store::open(&new, 1 << 20).is_ok(),
            "a new state gets the current layout"
        );
    }

    #[test]
    fn opening_waits_for_a_state_that_is_being_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let held = Store::open(&path, 1 << 20).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        // Without the wait this fails at once: the lock is held for another 200 ms.
        Store::open(&path, 1 << 20).expect("opens once the lock is released");
        release.join().unwrap();
    }
}
