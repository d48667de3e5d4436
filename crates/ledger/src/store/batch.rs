//! The state batch: the rows one commit writes, and [`Store::commit`], which writes them.
//!
//! # Invariants
//! - A batch continues the state exactly: its first entry is the one right after what the store
//!   holds, at the journal offset where the state ends ([`StateBatch::put_entry`] checks it).
//! - Its writes go in one fixed order (below): the `undo` record first, the `applied` record after
//!   every row it makes part of the state, checkpoints last.
//! - The account cache learns a batch's records only once every write of the batch is made.
//!
//! # Plain inserts, undone when a stop cuts a batch
//! A committed batch is written with plain sled inserts, not with sled's atomic `apply_batch` or
//! a transaction. Those take a process-wide lock for the whole batch that holds back *every*
//! sled read meanwhile (the writer's idempotency look-ups and every balance read of the
//! service), and each forces two writes of sled's log buffer. Their one benefit, all or nothing
//! after a crash, is had another way, relying on what sled does guarantee: after a crash it
//! recovers a prefix of its writes, in the order they were made. [`Store::commit`] writes, in
//! this order:
//!
//! 1. the `undo` record: the state's size before the batch, the previous record of every
//!    account the batch writes, and the key of every index record it writes;
//! 2. the log chunks (everything else may point into them, so a reader never follows an index
//!    to an entry the chunks do not have yet);
//! 3. the index records (ids, older history rows, reversals, key entries, idempotency);
//! 4. the account records;
//! 5. the `applied` record, which makes the batch part of the state;
//! 6. the batch's checkpoints (so a reader never gets a checkpoint for a tree the state does not
//!    hold yet).
//!
//! How [`Store::open`] undoes a batch a stop cut short is in the `undo` module.

use std::collections::HashMap;

use timecredits_domain::{AccountId, AccountState};
use timecredits_tlog::merkle::Hash;
use uuid::Uuid;

use super::layout::{
    encode_record, encode_rows, hashes_added, key, AccountRecord, Applied, CHECKPOINT,
    CHUNK_ENTRIES, ENTRY_ID, HEAD_ROWS, HISTORY, IDEMPOTENCY, KEY_ENTRY, LOG_CHUNK, META_APPLIED,
    META_UNDO, REVERSAL, ROW_LEN, SPARSE_ID,
};
use super::undo::encode_undo;
use super::{HistoryRow, IdempotencyRecord, Store};
use crate::error::LedgerError;
use crate::journal::RecordPos;

#[cfg(test)]
thread_local! {
    /// Tests only: how many writes the next [`Store::commit`] on this thread makes before it
    /// stops as if the process had been killed (see `crate::recovery_tests`).
    pub(crate) static CUT_NEXT_COMMIT: std::cell::Cell<Option<usize>> =
        const { std::cell::Cell::new(None) };
}

/// The log chunk a batch is filling.
struct OpenChunk {
    number: u64,
    bytes: Vec<u8>,
    /// Whether this batch has already indexed an id in this chunk.
    id_indexed: bool,
}

/// Plain sled writes, in the order they are made.
pub(super) type Writes = Vec<(Vec<u8>, Vec<u8>)>;

/// The writes of one committed batch, made by [`Store::commit`] in an order that keeps readers
/// and crash recovery sound (see the module documentation).
#[derive(Default)]
pub struct StateBatch {
    /// Log chunks, written first: everything else may point into them.
    chunks: Writes,
    /// Index records (ids, history overflow, reversals, key entries, idempotency).
    index: Writes,
    /// The account records to write, each once however many entries moved it; into the cache
    /// too once they are committed.
    accounts: HashMap<AccountId, AccountRecord>,
    /// The committed record of each account in `accounts` (none for an account this batch
    /// opens), kept in the undo record until the batch's `applied` record is written.
    previous: Vec<(AccountId, Option<AccountRecord>)>,
    /// Checkpoints, written last, so that a reader never sees one for a tree the state does not
    /// hold yet.
    checkpoints: Writes,
    /// The log chunk being filled, written out when the batch moves on to the next chunk or is
    /// committed.
    chunk: Option<OpenChunk>,
    /// Where the state stands after the entries put so far (none put: unchanged).
    applied: Option<Applied>,
}

impl StateBatch {
    /// Records entry `seq`: where it is in the journal, its id, and the stored Merkle hashes it
    /// added. Entries must come in sequence order, the first one right after what `store` holds,
    /// so the batch also records the state's new size.
    pub fn put_entry(
        &mut self,
        store: &Store,
        seq: u64,
        id: Uuid,
        pos: RecordPos,
        hashes: &[Hash],
    ) -> Result<(), LedgerError> {
        debug_assert_eq!(
            hashes.len(),
            hashes_added(seq),
            "the hashes entry {seq} adds"
        );
        let applied = match self.applied {
            Some(applied) => applied,
            None => store.applied_record()?,
        };
        if (applied.size, applied.journal_end) != (seq, pos.offset) {
            return Err(LedgerError::Corrupt(format!(
                "entry {seq} at journal offset {} does not follow the state ({} entries, journal \
                 end {})",
                pos.offset, applied.size, applied.journal_end
            )));
        }
        let number = seq / CHUNK_ENTRIES;
        if self.chunk.as_ref().map(|c| c.number) != Some(number) {
            self.write_chunk();
            let bytes = if seq.is_multiple_of(CHUNK_ENTRIES) {
                pos.offset.to_be_bytes().to_vec()
            } else {
                store.continued_chunk(number, seq, pos.offset)?
            };
            self.chunk = Some(OpenChunk {
                number,
                bytes,
                id_indexed: false,
            });
        }
        let chunk = self.chunk.as_mut().expect("set above");
        let mut max_id = applied.max_id;
        if id > max_id {
            max_id = id;
            if !chunk.id_indexed {
                self.index.push((
                    key(SPARSE_ID, &[id.as_bytes()]),
                    number.to_be_bytes().to_vec(),
                ));
                chunk.id_indexed = true;
            }
        } else {
            self.index
                .push((key(ENTRY_ID, &[id.as_bytes()]), seq.to_be_bytes().to_vec()));
        }
        chunk.bytes.extend_from_slice(&pos.len.to_be_bytes());
        chunk.bytes.extend_from_slice(id.as_bytes());
        for hash in hashes {
            chunk.bytes.extend_from_slice(hash);
        }
        self.applied = Some(Applied {
            size: seq + 1,
            journal_end: pos.end(),
            max_id,
        });
        Ok(())
    }

    fn write_chunk(&mut self) {
        if let Some(chunk) = self.chunk.take() {
            self.chunks
                .push((key(LOG_CHUNK, &[&chunk.number.to_be_bytes()]), chunk.bytes));
        }
    }

    /// Records an account's new state and adds `rows` (in sequence order, all newer than the
    /// account's stored history) to its history.
    pub fn put_account(
        &mut self,
        store: &Store,
        a: &AccountState,
        rows: &[HistoryRow],
    ) -> Result<(), LedgerError> {
        let mut head = match self.accounts.remove(&a.id) {
            Some(record) => record.head,
            None => {
                let previous = store.cached_record(a.id)?;
                let head = previous.as_ref().map_or_else(Vec::new, |r| r.head.clone());
                self.previous.push((a.id, previous));
                head
            }
        };
        head.extend_from_slice(rows);
        let mut rest = &head[..];
        while rest.len() > HEAD_ROWS {
            let (older, newer) = rest.split_at(HEAD_ROWS);
            let mut v = Vec::with_capacity(HEAD_ROWS * ROW_LEN);
            encode_rows(older, &mut v);
            self.index.push((
                key(HISTORY, &[a.id.0.as_bytes(), &older[0].seq.to_be_bytes()]),
                v,
            ));
            rest = newer;
        }
        let head = rest.to_vec();
        self.accounts.insert(
            a.id,
            AccountRecord {
                state: a.clone(),
                head,
            },
        );
        Ok(())
    }

    /// An account's state as this batch leaves it.
    pub fn account(
        &self,
        store: &Store,
        id: AccountId,
    ) -> Result<Option<AccountState>, LedgerError> {
        match self.accounts.get(&id) {
            Some(record) => Ok(Some(record.state.clone())),
            None => store.cached_account(id),
        }
    }

    /// Records the entries made for (actor, key).
    pub fn put_idempotency(&mut self, actor: Uuid, idem_key: &str, record: IdempotencyRecord) {
        let mut v = [0u8; 12];
        v[..8].copy_from_slice(&record.first_seq.to_be_bytes());
        v[8..].copy_from_slice(&record.parts.to_be_bytes());
        self.index.push((
            key(IDEMPOTENCY, &[actor.as_bytes(), idem_key.as_bytes()]),
            v.to_vec(),
        ));
    }

    /// Records that entry `seq` was reversed by entry `by`.
    pub fn put_reversal(&mut self, seq: u64, by: u64) {
        self.index.push((
            key(REVERSAL, &[&seq.to_be_bytes()]),
            by.to_be_bytes().to_vec(),
        ));
    }

    /// Records that entry `seq` is a `key` entry.
    pub fn put_key_entry(&mut self, seq: u64) {
        self.index
            .push((key(KEY_ENTRY, &[&seq.to_be_bytes()]), Vec::new()));
    }

    /// Records the checkpoint signed for the tree of `size` entries. Every batch keeps its own,
    /// so a repeated request is answered with the very checkpoint its first answer carried.
    pub fn put_checkpoint(&mut self, size: u64, note: &str) {
        self.checkpoints.push((
            key(CHECKPOINT, &[&size.to_be_bytes()]),
            note.as_bytes().to_vec(),
        ));
    }
}

impl Store {
    /// Writes a batch. Its writes are plain sled inserts in a fixed order: the undo record, log
    /// chunks, index records, account records, the `applied` record, checkpoints. Should the
    /// process stop half-way, [`Store::open`] finds the undo record of a batch whose `applied`
    /// record is missing and puts the accounts' previous records back, so that the journal
    /// replay starts from exactly the state before the batch.
    pub fn commit(&self, batch: StateBatch) -> Result<(), LedgerError> {
        #[cfg(test)]
        if let Some(limit) = CUT_NEXT_COMMIT.take() {
            return self.commit_cut(batch, limit);
        }
        self.commit_first(batch, usize::MAX).map(drop)
    }

    /// Makes the first `limit` writes of a batch and fails, as a stop would, if it has more.
    #[cfg(test)]
    fn commit_cut(&self, batch: StateBatch, limit: usize) -> Result<(), LedgerError> {
        let total = self.commit_first(batch, limit)?;
        self.flush()?;
        if limit < total {
            return Err(LedgerError::Io(std::io::Error::other(format!(
                "a test stopped the state batch after {limit} of its {total} writes"
            ))));
        }
        Ok(())
    }

    /// Makes the first `limit` writes of a batch (all of them, except in tests that stop a batch
    /// half-way) and returns how many it has.
    pub(super) fn commit_first(
        &self,
        mut batch: StateBatch,
        limit: usize,
    ) -> Result<usize, LedgerError> {
        batch.write_chunk();
        let mut writes: Vec<(&sled::Tree, Vec<u8>, Vec<u8>)> = Vec::new();
        // Only a batch of checkpoints alone (written after `applied`) needs no undo.
        if batch.applied.is_some() || !batch.previous.is_empty() || !batch.index.is_empty() {
            let from = self.applied_record()?.size;
            // In key order, so that the same batch always writes the same bytes.
            batch.previous.sort_unstable_by_key(|(id, _)| id.0);
            batch.index.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            writes.push((
                &self.db,
                META_UNDO.to_vec(),
                encode_undo(from, &batch.previous, &batch.index),
            ));
        }
        for (k, v) in batch.chunks.drain(..).chain(batch.index.drain(..)) {
            writes.push((&self.db, k, v));
        }
        for record in batch.accounts.values() {
            let id = record.state.id.0.as_bytes().to_vec();
            writes.push((&self.accounts, id, encode_record(record)));
        }
        if let Some(a) = batch.applied {
            let mut v = Vec::with_capacity(32);
            v.extend_from_slice(&a.size.to_be_bytes());
            v.extend_from_slice(&a.journal_end.to_be_bytes());
            v.extend_from_slice(a.max_id.as_bytes());
            writes.push((&self.db, META_APPLIED.to_vec(), v));
        }
        for (k, v) in batch.checkpoints.drain(..) {
            writes.push((&self.db, k, v));
        }
        let total = writes.len();
        for (tree, k, v) in writes.into_iter().take(limit) {
            tree.insert(k, v)?;
        }
        if total <= limit {
            let mut cache = self.account_cache();
            for record in batch.accounts.into_values() {
                cache.insert(record);
            }
        }
        Ok(total)
    }
}
