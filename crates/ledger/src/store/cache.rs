//! The commit path's copies of account records.
//!
//! # Invariants
//! - A copy is exact: accounts change only through [`Store::commit`], which puts every record it
//!   writes here once all its writes are made.
//! - Only the commit path (staging, building a state batch) takes the cache's lock; readers
//!   outside it read sled and never wait for it.

use std::collections::HashMap;
use std::sync::{MutexGuard, PoisonError};

use timecredits_domain::{AccountId, AccountState};

use super::layout::AccountRecord;
use super::Store;
use crate::error::LedgerError;

/// Copies of the account records the commit path read or wrote lately, so that staging a batch
/// and building its state batch do not read them from sled again (each read costs about as much
/// as staging the entry itself). Filled by [`Store::cached_account`] and by every commit, which
/// is the only way accounts change, so the copies are exact. Readers outside the commit path use
/// sled directly and never wait for this lock.
#[derive(Default)]
pub(super) struct AccountCache(HashMap<AccountId, AccountRecord>);

impl AccountCache {
    /// Records kept at most (a few hundred bytes each); past it the cache starts again empty,
    /// which costs one sled read per account on its next use.
    const CAPACITY: usize = 1 << 16;

    pub(super) fn insert(&mut self, record: AccountRecord) {
        if self.0.len() >= Self::CAPACITY {
            self.0.clear();
        }
        self.0.insert(record.state.id, record);
    }
}

impl std::fmt::Debug for AccountCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountCache({} records)", self.0.len())
    }
}

impl Store {
    pub(super) fn account_cache(&self) -> MutexGuard<'_, AccountCache> {
        // The cache holds only committed records, so one left by a panicking thread is sound.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An account's current state, as [`Store::account`], through the commit path's cache.
    pub fn cached_account(&self, id: AccountId) -> Result<Option<AccountState>, LedgerError> {
        self.with_cached_record(id, |r| r.state.clone())
    }

    pub(super) fn cached_record(
        &self,
        id: AccountId,
    ) -> Result<Option<AccountRecord>, LedgerError> {
        self.with_cached_record(id, AccountRecord::clone)
    }

    /// `read` of an account record, through the commit path's cache (which it fills on a miss).
    fn with_cached_record<T>(
        &self,
        id: AccountId,
        read: impl Fn(&AccountRecord) -> T,
    ) -> Result<Option<T>, LedgerError> {
        if let Some(record) = self.account_cache().0.get(&id) {
            return Ok(Some(read(record)));
        }
        let Some(record) = self.account_record(id)? else {
            return Ok(None);
        };
        let value = read(&record);
        self.account_cache().insert(record);
        Ok(Some(value))
    }
}
