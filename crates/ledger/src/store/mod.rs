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
//! A state written with another layout is refused by [`Store::open`] with
//! [`sled::Error::Unsupported`], so the ledger moves it aside and rebuilds it from the journal.

use std::sync::{Arc, Mutex};

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

impl Store {
    /// Opens the sled database at `path`, undoing a batch a stop interrupted (see
    /// [`Store::commit`]). A database written with another [`LAYOUT`], or whose undo record is
    /// unreadable, is refused with [`sled::Error::Unsupported`] (the ledger then rebuilds it from
    /// the journal).
    pub fn open(path: &std::path::Path, cache_bytes: u64) -> Result<Store, sled::Error> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Durability comes from the journal; sled's own background flush only bounds how much
            // journal is replayed after a crash.
            .flush_every_ms(Some(1000))
            .open()?;
        match db.get(META_LAYOUT)? {
            Some(v) if v.as_ref() == LAYOUT.to_be_bytes() => {}
            None if db.is_empty() => {
                db.insert(META_LAYOUT, &LAYOUT.to_be_bytes()[..])?;
            }
            found => {
                let found = match found {
                    None => "1".to_owned(),
                    Some(v) => <[u8; 4]>::try_from(v.as_ref())
                        .map_or_else(|_| "unknown".into(), |b| u32::from_be_bytes(b).to_string()),
                };
                return Err(sled::Error::Unsupported(format!(
                    "the state has layout {found}, this version reads layout {LAYOUT}"
                )));
            }
        }
        let store = Store {
            accounts: db.open_tree(ACCOUNTS_TREE)?,
            db,
            cache: Arc::default(),
        };
        match store.undo_interrupted_commit() {
            Ok(0) => {}
            Ok(records) => {
                tracing::info!(records, "undid a state batch a stop interrupted");
            }
            Err(LedgerError::Sled(e)) => return Err(e),
            // Only a state the ledger can rebuild from the journal is refused this way.
            Err(e) => return Err(sled::Error::Unsupported(e.to_string())),
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
            Err(sled::Error::Unsupported(_))
        ));
        let new = dir.path().join("new");
        drop(Store::open(&new, 1 << 20).unwrap());
        assert!(
            Store::open(&new, 1 << 20).is_ok(),
            "a new state gets the current layout"
        );
    }
}
