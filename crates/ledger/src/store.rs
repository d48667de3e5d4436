//! The derived state in sled: balances and indexes, all rebuilt from the journal if lost.
//!
//! Account records live in the `accounts` tree, keyed by account id (16 bytes), so that reading a
//! balance costs the same whatever the size of the log. Everything else lives in sled's default
//! tree under one-byte prefixes. The `applied` record always says exactly how many entries the
//! state reflects.
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
//! When a stop cuts a batch short, [`Store::open`] finds an `undo` record for the size the
//! state still has, puts the accounts' previous records back and removes every index record the
//! batch wrote: the replay of the journal then starts from exactly the state before the batch.
//! Removing them matters because the replay *reads* indexes while it decides the entries again:
//! a reversal record left by the cut batch would say the original was already reversed by the
//! very reversal being replayed, and the replay would refuse the ledger. Every index record is
//! new when a batch writes it (each is keyed by something only that batch's entries have: an
//! entry id, a reversed entry, an actor's idempotency key, a key entry, a history overflow's
//! first row), so removing it restores the state exactly. Log chunks need no undo: a chunk the
//! batch began is rewritten when the replay reaches it, and one it continued is cut back to where
//! the state ends when it is continued again. Checkpoints cut off after the `applied` record are
//! replaced by the one the ledger signs at open.
//!
//! | key                          | value                                                      |
//! |------------------------------|------------------------------------------------------------|
//! | `m` `applied`                | tree size (u64 BE), journal offset after its last entry (u64 BE), greatest entry id (16) |
//! | `m` `layout`                 | [`LAYOUT`] (u32 BE), the version of this table             |
//! | `m` `undo`                   | size before the last batch (u64 BE), accounts it wrote (u32 BE), per account: id (16), length (u32 BE, 0: none), previous record; then per index record it wrote: key length (u16 BE), key |
//! | `accounts` tree: id (16)     | [`AccountState`] (50 bytes), then its newest history rows  |
//! | `x` account (16) seq (8 BE)  | older history rows of the account, from `seq` on           |
//! | `s` chunk number (8 BE)      | the log chunk of entries `16n ..= 16n + 15`                |
//! | `j` entry id (16)            | the number of the log chunk holding that entry (8 BE)      |
//! | `i` entry id (16)            | seq (8 BE), only for an id below an earlier one            |
//! | `k` actor (16) key (1..255)  | first seq (8 BE), parts (4 BE)                             |
//! | `r` seq (8 BE)               | seq of its reversal (8 BE)                                 |
//! | `v` seq (8 BE)               | empty: entry `seq` is a `key` entry (a key rotation)       |
//! | `c` tree size (8 BE)         | the checkpoint signed at that size (note)                  |
//!
//! Integers are big-endian in keys so that sled's byte order is numeric order.
//!
//! # Few inserts per entry
//! A sled insert costs microseconds whatever its size (it copies a tree node and reserves log
//! space), and the single writer pays for every one of them, so the layout keeps them few: in a
//! batch of many entries, about one per request (its idempotency record) and one per account
//! moved (its state).
//!
//! - **Log chunks.** What an entry adds to the log is sequential: its journal position, its id
//!   and the Merkle hashes it completes. Entries are grouped by [`CHUNK_ENTRIES`]: chunk `n`
//!   holds the journal offset of entry `16n` (u64 BE), then for each entry its record length
//!   (u32 BE), its id (16) and the stored hashes it added (`1 + trailing_ones(seq)` hashes of 32
//!   bytes, in stored-hash index order, as
//!   [`Frontier::append`](timecredits_tlog::merkle::Frontier::append) returns them). Journal
//!   records are contiguous, so offsets follow from lengths. A batch writes each chunk it
//!   touches once, whatever its number of entries.
//! - **A sparse id index.** Entry ids are UUID v7, made by the writer in sequence order, so they
//!   almost always grow with the sequence number. An id greater than every earlier one is found
//!   through the `j` key of the first such id a batch put in its chunk: the greatest `j` key not
//!   above it names the chunk, which lists the ids. Any other id (a clock set back between two
//!   runs) gets its own `i` key.
//! - **History beside the balance.** An entry changes the balance of every account it names, so
//!   the account record is written anyway; it also carries the account's newest history rows (at
//!   most [`HEAD_ROWS`]). When more arrive, the oldest [`HEAD_ROWS`] move to an `x` record keyed
//!   by their first sequence number. A history row is seq (8 BE), kind code (1), day (4 BE, i32
//!   days since 1970). Newest first, an account's history is its head rows reversed, then a
//!   reverse range scan over `x` account.
//!
//! A state written with another layout is refused by [`Store::open`] with
//! [`sled::Error::Unsupported`], so the ledger moves it aside and rebuilds it from the journal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::NaiveDate;
use timecredits_domain::{AccountId, AccountKind, AccountState, AccountStatus, EntryKind};
use timecredits_tlog::merkle::{split_stored_hash_index, Hash, HashReader, TreeError};
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::RecordPos;

/// The version of the layout above.
pub const LAYOUT: u32 = 3;

/// Entries per log chunk.
pub const CHUNK_ENTRIES: u64 = 16;

/// History rows kept in an account record.
pub const HEAD_ROWS: usize = 32;

const ENTRY_ID: u8 = b'i';
const SPARSE_ID: u8 = b'j';
const LOG_CHUNK: u8 = b's';
const HISTORY: u8 = b'x';
const IDEMPOTENCY: u8 = b'k';
const REVERSAL: u8 = b'r';
const KEY_ENTRY: u8 = b'v';
const CHECKPOINT: u8 = b'c';

/// The tree of account records, apart so that reading one costs the same whatever the size of the
/// log.
const ACCOUNTS_TREE: &str = "accounts";

const META_APPLIED: &[u8] = b"mapplied";
const META_LAYOUT: &[u8] = b"mlayout";
const META_UNDO: &[u8] = b"mundo";

#[cfg(test)]
thread_local! {
    /// Tests only: how many writes the next [`Store::commit`] on this thread makes before it
    /// stops as if the process had been killed (see `crate::recovery_tests`).
    pub(crate) static CUT_NEXT_COMMIT: std::cell::Cell<Option<usize>> =
        const { std::cell::Cell::new(None) };
}

/// One row of an account's history index: enough to filter without reading the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRow {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's kind, so a kind filter needs no entry read.
    pub kind: EntryKind,
    /// The effective date of a movement; the recording day of an open or close.
    pub day: NaiveDate,
}

/// Where an earlier request's entries are: the idempotency record of (actor, key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The sequence number of the request's first entry.
    pub first_seq: u64,
    /// How many entries the request made (they follow the first in order).
    pub parts: u32,
}

/// The sled-backed state. Cheap to clone; all clones share one database.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    /// The `accounts` tree.
    accounts: sled::Tree,
    cache: Arc<Mutex<AccountCache>>,
}

/// What an account record holds: the account's state and its newest history rows.
#[derive(Clone, Debug)]
struct AccountRecord {
    state: AccountState,
    head: Vec<HistoryRow>,
}

/// Copies of the account records the commit path read or wrote lately, so that staging a batch
/// and building its state batch do not read them from sled again (each read costs about as much
/// as staging the entry itself). Filled by [`Store::cached_account`] and by every commit, which
/// is the only way accounts change, so the copies are exact. Readers outside the commit path use
/// sled directly and never wait for this lock.
#[derive(Default)]
struct AccountCache(HashMap<AccountId, AccountRecord>);

impl AccountCache {
    /// Records kept at most (a few hundred bytes each); past it the cache starts again empty,
    /// which costs one sled read per account on its next use.
    const CAPACITY: usize = 1 << 16;

    fn insert(&mut self, record: AccountRecord) {
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

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The first `N` bytes of a stored integer.
fn int_bytes<const N: usize>(bytes: &[u8]) -> Result<[u8; N], LedgerError> {
    bytes
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LedgerError::Corrupt("short integer in the state".into()))
}

fn be_u64(bytes: &[u8]) -> Result<u64, LedgerError> {
    int_bytes(bytes).map(u64::from_be_bytes)
}

fn kind_code(kind: EntryKind) -> u8 {
    EntryKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in ALL") as u8
}

fn account_kind_code(kind: AccountKind) -> u8 {
    match kind {
        AccountKind::Programme => 0,
        AccountKind::Budget => 1,
        AccountKind::Venue => 2,
        AccountKind::Member => 3,
    }
}

/// Length of an encoded [`AccountState`]: kind (1), status (1), balance (8, i64 BE), opened (8),
/// owner (16, nil when none), id (16).
const ACCOUNT_LEN: usize = 50;

fn encode_account(a: &AccountState, out: &mut Vec<u8>) {
    out.push(account_kind_code(a.kind));
    out.push(u8::from(a.status == AccountStatus::Closed));
    out.extend_from_slice(&a.balance.to_be_bytes());
    out.extend_from_slice(&a.opened.to_be_bytes());
    out.extend_from_slice(a.owner.unwrap_or_else(Uuid::nil).as_bytes());
    out.extend_from_slice(a.id.0.as_bytes());
}

/// Decodes the account state at the start of an account record.
fn decode_account(record: &[u8]) -> Result<AccountState, LedgerError> {
    let corrupt = || LedgerError::Corrupt("malformed account state".into());
    let v: &[u8; ACCOUNT_LEN] = record
        .get(..ACCOUNT_LEN)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(corrupt)?;
    let kind = match v[0] {
        0 => AccountKind::Programme,
        1 => AccountKind::Budget,
        2 => AccountKind::Venue,
        3 => AccountKind::Member,
        _ => return Err(corrupt()),
    };
    let status = match v[1] {
        0 => AccountStatus::Open,
        1 => AccountStatus::Closed,
        _ => return Err(corrupt()),
    };
    let uuid = |b: &[u8]| Uuid::from_slice(b).map_err(|_| corrupt());
    let owner = uuid(&v[18..34])?;
    Ok(AccountState {
        id: AccountId(uuid(&v[34..50])?),
        kind,
        owner: (!owner.is_nil()).then_some(owner),
        status,
        balance: i64::from_be_bytes(v[2..10].try_into().expect("8 bytes")),
        opened: be_u64(&v[10..18])?,
    })
}

/// Days since 1970-01-01, the compact form of an effective date in the history index.
fn day_number(d: NaiveDate) -> i32 {
    (d - NaiveDate::default()).num_days() as i32
}

fn from_day_number(n: i32) -> Option<NaiveDate> {
    NaiveDate::default().checked_add_signed(chrono::TimeDelta::days(i64::from(n)))
}

/// Length of an encoded [`HistoryRow`].
const ROW_LEN: usize = 13;

fn encode_rows(rows: &[HistoryRow], out: &mut Vec<u8>) {
    for row in rows {
        out.extend_from_slice(&row.seq.to_be_bytes());
        out.push(kind_code(row.kind));
        out.extend_from_slice(&day_number(row.day).to_be_bytes());
    }
}

fn decode_rows(v: &[u8]) -> Result<Vec<HistoryRow>, LedgerError> {
    let corrupt = || LedgerError::Corrupt("malformed history row".into());
    if !v.len().is_multiple_of(ROW_LEN) {
        return Err(corrupt());
    }
    v.chunks_exact(ROW_LEN)
        .map(|r| {
            let kind = *EntryKind::ALL.get(usize::from(r[8])).ok_or_else(corrupt)?;
            let day = i32::from_be_bytes(r[9..13].try_into().expect("4 bytes"));
            Ok(HistoryRow {
                seq: be_u64(r)?,
                kind,
                day: from_day_number(day).ok_or_else(corrupt)?,
            })
        })
        .collect()
}

/// An account record's value: the account state, then its head rows.
fn encode_record(record: &AccountRecord) -> Vec<u8> {
    let mut v = Vec::with_capacity(ACCOUNT_LEN + record.head.len() * ROW_LEN);
    encode_account(&record.state, &mut v);
    encode_rows(&record.head, &mut v);
    v
}

/// The undo record: the state's size before the batch (u64 BE); the number of accounts the
/// batch writes (u32 BE) and for each its id (16), the length of its previous record (u32 BE, 0
/// when it had none) and that record; then the key of each index record the batch writes, as its
/// length (u16 BE) and its bytes.
fn encode_undo(
    from: u64,
    previous: &[(AccountId, Option<AccountRecord>)],
    index: &Writes,
) -> Vec<u8> {
    let mut v = from.to_be_bytes().to_vec();
    v.extend_from_slice(&(previous.len() as u32).to_be_bytes());
    for (id, record) in previous {
        let bytes = record.as_ref().map(encode_record).unwrap_or_default();
        v.extend_from_slice(id.0.as_bytes());
        v.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        v.extend_from_slice(&bytes);
    }
    for (k, _) in index {
        // Index keys are a prefix, ids and at most a 255-byte idempotency key.
        debug_assert!(
            k.len() <= usize::from(u16::MAX),
            "index key of {} bytes",
            k.len()
        );
        v.extend_from_slice(&(k.len() as u16).to_be_bytes());
        v.extend_from_slice(k);
    }
    v
}

/// A decoded undo record: what to put back when the batch it was written for stopped half-way.
struct UndoRecord {
    /// The state's size before the batch.
    from: u64,
    /// Each account the batch wrote and its previous record (`None`: the account did not exist).
    accounts: Vec<(AccountId, Option<Vec<u8>>)>,
    /// The keys of the index records the batch wrote, none of which existed before it.
    index: Vec<Vec<u8>>,
}

fn decode_undo(v: &[u8]) -> Result<UndoRecord, LedgerError> {
    let corrupt = || LedgerError::Corrupt("malformed undo record".into());
    let from = be_u64(v)?;
    let count = u32::from_be_bytes(int_bytes(v.get(8..).unwrap_or_default())?);
    let mut rest = &v[12..];
    let mut accounts = Vec::new();
    for _ in 0..count {
        let id = rest
            .get(..16)
            .and_then(|b| Uuid::from_slice(b).ok())
            .ok_or_else(corrupt)?;
        let len = u32::from_be_bytes(int_bytes(rest.get(16..).unwrap_or_default())?) as usize;
        let bytes = rest.get(20..20 + len).ok_or_else(corrupt)?;
        accounts.push((AccountId(id), (len > 0).then(|| bytes.to_vec())));
        rest = &rest[20 + len..];
    }
    let mut index = Vec::new();
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes(int_bytes(rest)?));
        index.push(rest.get(2..2 + len).ok_or_else(corrupt)?.to_vec());
        rest = &rest[2 + len..];
    }
    Ok(UndoRecord {
        from,
        accounts,
        index,
    })
}

/// How many stored hashes entry `seq` adds to the tree.
fn hashes_added(seq: u64) -> usize {
    1 + seq.trailing_ones() as usize
}

/// One entry of a log chunk.
struct ChunkEntry<'a> {
    seq: u64,
    pos: RecordPos,
    id: Uuid,
    /// The stored hashes the entry added, 32 bytes each.
    hashes: &'a [u8],
}

/// The entries of a log chunk, in order.
struct ChunkEntries<'a> {
    seq: u64,
    offset: u64,
    rest: &'a [u8],
}

impl<'a> ChunkEntries<'a> {
    fn new(chunk: u64, v: &'a [u8]) -> Result<Self, LedgerError> {
        Ok(ChunkEntries {
            seq: chunk * CHUNK_ENTRIES,
            offset: be_u64(v)?,
            rest: &v[8..],
        })
    }

    /// The first entry that `matches`, if the chunk has one.
    fn find(
        self,
        matches: impl Fn(&ChunkEntry) -> bool,
    ) -> Result<Option<ChunkEntry<'a>>, LedgerError> {
        for entry in self {
            let entry = entry?;
            if matches(&entry) {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }
}

impl<'a> Iterator for ChunkEntries<'a> {
    type Item = Result<ChunkEntry<'a>, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let hashes_end = 20 + 32 * hashes_added(self.seq);
        if self.rest.len() < hashes_end {
            self.rest = &[];
            return Some(Err(LedgerError::Corrupt(format!(
                "log chunk of entry {} is cut short",
                self.seq
            ))));
        }
        let entry = ChunkEntry {
            seq: self.seq,
            pos: RecordPos {
                offset: self.offset,
                len: u32::from_be_bytes(self.rest[..4].try_into().expect("4 bytes")),
            },
            id: Uuid::from_bytes(self.rest[4..20].try_into().expect("16 bytes")),
            hashes: &self.rest[20..hashes_end],
        };
        self.rest = &self.rest[hashes_end..];
        self.offset = entry.pos.end();
        self.seq += 1;
        Some(Ok(entry))
    }
}

/// The `applied` record: how far the state goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Applied {
    /// Entries applied: the tree size.
    size: u64,
    /// The journal offset just past the last of them.
    journal_end: u64,
    /// The greatest entry id so far (see the sparse id index).
    max_id: Uuid,
}

/// The log chunk a batch is filling.
struct OpenChunk {
    number: u64,
    bytes: Vec<u8>,
    /// Whether this batch has already indexed an id in this chunk.
    id_indexed: bool,
}

/// Plain sled writes, in the order they are made.
type Writes = Vec<(Vec<u8>, Vec<u8>)>;

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
    fn commit_first(&self, mut batch: StateBatch, limit: usize) -> Result<usize, LedgerError> {
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

    /// Undoes a batch that stopped half-way (see [`Store::commit`]): when the undo record was
    /// written for the size the state still has, the batch's `applied` record never was, so its
    /// accounts get their previous records back and its index records are removed. Returns how
    /// many records it put back or removed. Undoing twice (a stop during the undo) is harmless:
    /// the undo record goes last.
    fn undo_interrupted_commit(&self) -> Result<usize, LedgerError> {
        let Some(v) = self.db.get(META_UNDO)? else {
            return Ok(0);
        };
        let undo = decode_undo(&v)?;
        if undo.from != self.applied_record()?.size {
            return Ok(0);
        }
        for (id, record) in &undo.accounts {
            match record {
                Some(bytes) => self.accounts.insert(id.0.as_bytes(), bytes.as_slice())?,
                None => self.accounts.remove(id.0.as_bytes())?,
            };
        }
        for k in &undo.index {
            self.db.remove(k)?;
        }
        self.db.remove(META_UNDO)?;
        Ok(undo.accounts.len() + undo.index.len())
    }

    fn account_cache(&self) -> std::sync::MutexGuard<'_, AccountCache> {
        // The cache holds only committed records, so one left by a panicking thread is sound.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Flushes sled to disk (on clean shutdown, so the next open replays nothing).
    pub fn flush(&self) -> Result<(), LedgerError> {
        self.db.flush()?;
        Ok(())
    }

    fn get(&self, k: impl AsRef<[u8]>) -> Result<Option<sled::IVec>, LedgerError> {
        Ok(self.db.get(k)?)
    }

    /// Number of entries the state reflects, and the journal offset after the last of them.
    pub fn applied(&self) -> Result<(u64, u64), LedgerError> {
        let a = self.applied_record()?;
        Ok((a.size, a.journal_end))
    }

    fn applied_record(&self) -> Result<Applied, LedgerError> {
        let Some(v) = self.get(META_APPLIED)? else {
            return Ok(Applied::default());
        };
        let max_id = v
            .get(16..32)
            .and_then(|b| Uuid::from_slice(b).ok())
            .ok_or_else(|| LedgerError::Corrupt("malformed applied record".into()))?;
        Ok(Applied {
            size: be_u64(&v)?,
            journal_end: be_u64(&v[8..])?,
            max_id,
        })
    }

    /// The latest signed checkpoint (note text).
    pub fn checkpoint(&self) -> Result<Option<String>, LedgerError> {
        self.db
            .scan_prefix([CHECKPOINT])
            .next_back()
            .transpose()?
            .map(|(_, v)| note_text(v))
            .transpose()
    }

    /// The checkpoint signed when the tree had exactly `size` entries, if one was.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<String>, LedgerError> {
        self.get(key(CHECKPOINT, &[&size.to_be_bytes()]))?
            .map(note_text)
            .transpose()
    }

    /// The first checkpoint whose tree includes entry `seq` (size > seq), if any.
    pub fn checkpoint_covering(&self, seq: u64) -> Result<Option<String>, LedgerError> {
        let start = key(CHECKPOINT, &[&(seq.saturating_add(1)).to_be_bytes()]);
        self.db
            .range(start..)
            .next()
            .transpose()?
            .filter(|(k, _)| k.first() == Some(&CHECKPOINT))
            .map(|(_, v)| note_text(v))
            .transpose()
    }

    /// The sizes that have a stored checkpoint nearest to `size`: the last one below and the
    /// first one above (for error messages that help choose a valid size).
    pub fn checkpoint_sizes_around(
        &self,
        size: u64,
    ) -> Result<(Option<u64>, Option<u64>), LedgerError> {
        let at = key(CHECKPOINT, &[&size.to_be_bytes()]);
        let size_of = |k: &[u8]| be_u64(&k[1..]);
        let below = match self.db.range(..at.clone()).next_back().transpose()? {
            Some((k, _)) if k.first() == Some(&CHECKPOINT) => Some(size_of(&k)?),
            _ => None,
        };
        let above = match self.db.range(at..).next().transpose()? {
            Some((k, _)) if k.first() == Some(&CHECKPOINT) => Some(size_of(&k)?),
            _ => None,
        };
        Ok((below, above))
    }

    /// An account's current state. One keyed read, whatever the account's history.
    pub fn account(&self, id: AccountId) -> Result<Option<AccountState>, LedgerError> {
        self.accounts
            .get(id.0.as_bytes())?
            .map(|v| decode_account(&v))
            .transpose()
    }

    /// An account's current state, as [`Store::account`], through the commit path's cache.
    pub fn cached_account(&self, id: AccountId) -> Result<Option<AccountState>, LedgerError> {
        self.with_cached_record(id, |r| r.state.clone())
    }

    fn cached_record(&self, id: AccountId) -> Result<Option<AccountRecord>, LedgerError> {
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

    fn account_record(&self, id: AccountId) -> Result<Option<AccountRecord>, LedgerError> {
        self.accounts
            .get(id.0.as_bytes())?
            .map(|v| {
                Ok(AccountRecord {
                    state: decode_account(&v)?,
                    head: decode_rows(&v[ACCOUNT_LEN..])?,
                })
            })
            .transpose()
    }

    fn log_chunk(&self, number: u64) -> Result<Option<sled::IVec>, LedgerError> {
        self.get(key(LOG_CHUNK, &[&number.to_be_bytes()]))
    }

    /// The bytes of log chunk `number` before entry `seq`, which a batch continues with that
    /// entry at journal `offset`; checked to reach exactly there. Entries from `seq` on are
    /// dropped: a batch a stop interrupted may have written them (see [`Store::commit`]), and
    /// they are being written again.
    fn continued_chunk(&self, number: u64, seq: u64, offset: u64) -> Result<Vec<u8>, LedgerError> {
        let broken = || {
            LedgerError::Corrupt(format!(
                "the log chunk before entry {seq} does not end where that entry starts"
            ))
        };
        let v = self.log_chunk(number)?.ok_or_else(broken)?;
        let mut entries = ChunkEntries::new(number, &v)?;
        while entries.seq < seq {
            entries.next().ok_or_else(broken)??;
        }
        if (entries.seq, entries.offset) != (seq, offset) {
            return Err(broken());
        }
        Ok(v[..v.len() - entries.rest.len()].to_vec())
    }

    /// Where entry `seq` is in the journal.
    pub fn entry_pos(&self, seq: u64) -> Result<Option<RecordPos>, LedgerError> {
        let number = seq / CHUNK_ENTRIES;
        match self.log_chunk(number)? {
            Some(v) => Ok(ChunkEntries::new(number, &v)?
                .find(|e| e.seq == seq)?
                .map(|e| e.pos)),
            None => Ok(None),
        }
    }

    /// The sequence number of the entry with this id: in the chunk the sparse index points to,
    /// or else (an id out of order) under its own key.
    pub fn seq_of(&self, id: Uuid) -> Result<Option<u64>, LedgerError> {
        let sparse = self
            .db
            .range(key(SPARSE_ID, &[])..=key(SPARSE_ID, &[id.as_bytes()]))
            .next_back()
            .transpose()?;
        if let Some((_, number)) = sparse {
            let number = be_u64(&number)?;
            if let Some(chunk) = self.log_chunk(number)? {
                if let Some(entry) = ChunkEntries::new(number, &chunk)?.find(|e| e.id == id)? {
                    return Ok(Some(entry.seq));
                }
            }
        }
        self.get(key(ENTRY_ID, &[id.as_bytes()]))?
            .map(|v| be_u64(&v))
            .transpose()
    }

    /// The entries an earlier request with (actor, key) made.
    pub fn idempotency(
        &self,
        actor: Uuid,
        idem_key: &str,
    ) -> Result<Option<IdempotencyRecord>, LedgerError> {
        self.get(key(IDEMPOTENCY, &[actor.as_bytes(), idem_key.as_bytes()]))?
            .map(|v| {
                Ok(IdempotencyRecord {
                    first_seq: be_u64(&v)?,
                    parts: u32::from_be_bytes(int_bytes(v.get(8..).unwrap_or_default())?),
                })
            })
            .transpose()
    }

    /// The sequence numbers of the `key` entries, in log order.
    pub fn key_entries(&self) -> Result<Vec<u64>, LedgerError> {
        self.db
            .scan_prefix([KEY_ENTRY])
            .map(|item| be_u64(&item?.0[1..]))
            .collect()
    }

    /// The entry that reversed entry `seq`, if any.
    pub fn reversed_by(&self, seq: u64) -> Result<Option<u64>, LedgerError> {
        self.get(key(REVERSAL, &[&seq.to_be_bytes()]))?
            .map(|v| be_u64(&v))
            .transpose()
    }

    /// An account's history rows, newest first, starting below `before` (a sequence number).
    pub fn history(
        &self,
        account: AccountId,
        before: Option<u64>,
    ) -> impl Iterator<Item = Result<HistoryRow, LedgerError>> {
        let before = before.unwrap_or(u64::MAX);
        let head = match self.account_record(account) {
            Ok(record) => newest_first_below(record.map_or_else(Vec::new, |r| r.head), before),
            Err(e) => vec![Err(e)],
        };
        let start = key(HISTORY, &[account.0.as_bytes(), &0u64.to_be_bytes()]);
        let end = key(HISTORY, &[account.0.as_bytes(), &before.to_be_bytes()]);
        let older = self.db.range(start..end).rev().flat_map(move |item| {
            match item
                .map_err(LedgerError::from)
                .and_then(|(_, v)| decode_rows(&v))
            {
                Ok(rows) => newest_first_below(rows, before),
                Err(e) => vec![Err(e)],
            }
        });
        head.into_iter().chain(older)
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

fn note_text(v: sled::IVec) -> Result<String, LedgerError> {
    String::from_utf8(v.to_vec())
        .map_err(|_| LedgerError::Corrupt("checkpoint is not UTF-8".into()))
}

/// History rows (oldest first) below `before`, newest first.
fn newest_first_below(rows: Vec<HistoryRow>, before: u64) -> Vec<Result<HistoryRow, LedgerError>> {
    rows.into_iter()
        .rev()
        .filter(|r| r.seq < before)
        .map(Ok)
        .collect()
}

impl HashReader for Store {
    type Error = LedgerError;

    /// Each stored hash is in the log chunk of the entry that completed its subtree.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, LedgerError> {
        let mut chunk: Option<(u64, sled::IVec)> = None;
        let mut hashes = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let missing = || LedgerError::Corrupt(format!("stored hash {index} is missing"));
            // Hash (level, n) covers leaves n·2^level .. (n+1)·2^level - 1: the last of them adds
            // it, as its `level`-th stored hash.
            let (level, n) = split_stored_hash_index(index);
            let seq = n
                .checked_add(1)
                .and_then(|m| m.checked_mul(1u64.checked_shl(level.into())?))
                .ok_or_else(missing)?
                - 1;
            let number = seq / CHUNK_ENTRIES;
            if chunk.as_ref().map(|(n, _)| *n) != Some(number) {
                chunk = Some((number, self.log_chunk(number)?.ok_or_else(missing)?));
            }
            let (_, v) = chunk.as_ref().expect("set above");
            let entry = ChunkEntries::new(number, v)?
                .find(|e| e.seq == seq)?
                .ok_or_else(missing)?;
            let at = usize::from(level) * 32;
            let hash = entry
                .hashes
                .get(at..at + 32)
                .and_then(|h| h.try_into().ok())
                .ok_or_else(missing)?;
            hashes.push(hash);
        }
        Ok(hashes)
    }
}

impl From<TreeError> for LedgerError {
    fn from(e: TreeError) -> Self {
        LedgerError::Proof(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timecredits_tlog::merkle::{leaf_hash, stored_hash_count, Frontier, MemoryHashes};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state"), 1 << 20).unwrap();
        (dir, s)
    }

    fn account(kind: AccountKind) -> AccountState {
        AccountState {
            id: AccountId::new(),
            kind,
            owner: Some(Uuid::now_v7()),
            status: AccountStatus::Closed,
            balance: -42,
            opened: 9,
        }
    }

    #[test]
    fn accounts_round_trip() {
        let (_d, s) = store();
        let a = account(AccountKind::Venue);
        let mut b = StateBatch::default();
        b.put_account(&s, &a, &[]).unwrap();
        s.commit(b).unwrap();
        assert_eq!(s.account(a.id).unwrap(), Some(a));
        assert_eq!(s.account(AccountId::new()).unwrap(), None);
    }

    #[test]
    fn history_is_newest_first_per_account_across_head_and_older_records() {
        let (_d, s) = store();
        let (a, other) = (account(AccountKind::Budget), account(AccountKind::Member));
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let row = |seq| HistoryRow {
            seq,
            kind: EntryKind::Earn,
            day,
        };
        // Batches of different sizes, so that rows overflow the head in several ways.
        let mut seqs = Vec::new();
        let mut next = 3;
        for size in [1, HEAD_ROWS + 8, 7, 2 * HEAD_ROWS + 5, HEAD_ROWS, 1] {
            let rows: Vec<HistoryRow> = (0..size).map(|i| row(next + 2 * i as u64)).collect();
            seqs.extend(rows.iter().map(|r| r.seq));
            next += 2 * size as u64;
            let mut b = StateBatch::default();
            b.put_account(&s, &a, &rows).unwrap();
            b.put_account(&s, &other, &[row(next)]).unwrap();
            s.commit(b).unwrap();
        }
        assert_eq!(s.account(a.id).unwrap(), Some(a.clone()));
        let newest_first: Vec<u64> = seqs.iter().rev().copied().collect();
        let history =
            |before| -> Vec<u64> { s.history(a.id, before).map(|r| r.unwrap().seq).collect() };
        assert_eq!(history(None), newest_first);
        for before in [0, 3, 4, 5, 40, 41, 100, next - 2, next - 1, next, u64::MAX] {
            let expected: Vec<u64> = newest_first
                .iter()
                .copied()
                .filter(|s| *s < before)
                .collect();
            assert_eq!(history(Some(before)), expected, "before {before}");
        }
        assert_eq!(
            s.history(a.id, None).next().unwrap().unwrap(),
            row(next - 2)
        );
        assert_eq!(s.history(other.id, None).count(), 6);
        assert_eq!(s.history(AccountId::new(), None).count(), 0);
    }

    #[test]
    fn log_chunks_give_back_every_position_id_and_stored_hash() {
        let (_d, s) = store();
        let mut frontier = Frontier::new();
        let (mut leaves, mut positions, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        let mut offset = 0;
        // Batches that start and end anywhere in a chunk, and one that spans several.
        for size in [1u64, 2, 13, 16, 40, 1, 1, 30] {
            let mut b = StateBatch::default();
            for _ in 0..size {
                let seq = frontier.size();
                let leaf = leaf_hash(&seq.to_be_bytes());
                let pos = RecordPos {
                    offset,
                    len: 100 + (seq % 7) as u32,
                };
                offset = pos.end();
                // Now and then an id below the earlier ones, as after the clock was set back.
                let id = if seq % 11 == 5 {
                    Uuid::from_u128(u128::from(seq))
                } else {
                    Uuid::now_v7()
                };
                b.put_entry(&s, seq, id, pos, &frontier.append(leaf))
                    .unwrap();
                leaves.push(leaf);
                positions.push(pos);
                ids.push(id);
            }
            s.commit(b).unwrap();
        }
        let n = frontier.size();
        assert_eq!(s.applied().unwrap(), (n, offset));
        for (seq, (pos, id)) in positions.iter().zip(&ids).enumerate() {
            assert_eq!(s.entry_pos(seq as u64).unwrap(), Some(*pos));
            assert_eq!(
                s.seq_of(*id).unwrap(),
                Some(seq as u64),
                "id of entry {seq}"
            );
        }
        assert_eq!(s.entry_pos(n).unwrap(), None);
        assert_eq!(s.seq_of(Uuid::now_v7()).unwrap(), None);
        assert_eq!(s.seq_of(Uuid::from_u128(1)).unwrap(), None);
        let indexes: Vec<u64> = (0..stored_hash_count(n)).collect();
        let expected = MemoryHashes::from_leaves(leaves)
            .read_hashes(&indexes)
            .unwrap();
        assert_eq!(s.read_hashes(&indexes).unwrap(), expected);
        assert_eq!(Frontier::from_reader(n, &s).unwrap(), frontier);
        assert!(s.read_hashes(&[stored_hash_count(n)]).is_err());

        // A batch must continue the log exactly where the state ends.
        for (seq, offset) in [(n, offset + 1), (n + 1, offset), (n - 1, offset)] {
            let pos = RecordPos { offset, len: 10 };
            let hashes = vec![[0; 32]; hashes_added(seq)];
            assert!(matches!(
                StateBatch::default().put_entry(&s, seq, Uuid::now_v7(), pos, &hashes),
                Err(LedgerError::Corrupt(_))
            ));
        }
    }

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

    #[test]
    fn a_batch_stopped_after_any_write_is_undone_at_open_and_then_written_again_exactly() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let (a, b, new) = (
            account(AccountKind::Budget),
            account(AccountKind::Member),
            account(AccountKind::Member),
        );
        let ids: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
        // Entries `from..to`, each moving `accounts`, with everything a batch writes.
        let batch = |s: &Store, from: u64, to: u64, accounts: &[&AccountState]| {
            let mut frontier = Frontier::from_reader(from, s).unwrap_or_else(|_| Frontier::new());
            let mut batch = StateBatch::default();
            let mut rows = Vec::new();
            for seq in from..to {
                let step = RecordPos {
                    offset: 0,
                    len: 100,
                }
                .end();
                let pos = RecordPos {
                    offset: seq * step,
                    len: 100,
                };
                let hashes = frontier.append(leaf_hash(&seq.to_be_bytes()));
                batch
                    .put_entry(s, seq, ids[seq as usize], pos, &hashes)
                    .unwrap();
                rows.push(HistoryRow {
                    seq,
                    kind: EntryKind::Earn,
                    day,
                });
                batch.put_idempotency(
                    ids[0],
                    &format!("key-{seq}"),
                    IdempotencyRecord {
                        first_seq: seq,
                        parts: 1,
                    },
                );
            }
            for (i, state) in accounts.iter().enumerate() {
                let moved = AccountState {
                    balance: state.balance + (to - from) as i64 * (i as i64 + 1),
                    ..(*state).clone()
                };
                batch.put_account(s, &moved, &rows).unwrap();
            }
            batch.put_reversal(from, to - 1);
            batch.put_checkpoint(to, &format!("checkpoint {to}"));
            batch
        };
        // The first batch leaves `a` a head one row short of overflowing, and a chunk open.
        let first = |s: &Store| batch(s, 0, HEAD_ROWS as u64 - 1, &[&a, &b]);
        let a_after = AccountState {
            balance: a.balance + HEAD_ROWS as i64 - 1,
            ..a.clone()
        };
        let b_after = AccountState {
            balance: b.balance + 2 * (HEAD_ROWS as i64 - 1),
            ..b.clone()
        };
        let second = |s: &Store| batch(s, HEAD_ROWS as u64 - 1, 38, &[&a_after, &b_after, &new]);

        let dir = tempfile::tempdir().unwrap();
        let (expected, writes) = {
            let s = Store::open(&dir.path().join("whole"), 1 << 20).unwrap();
            s.commit(first(&s)).unwrap();
            let writes = s.commit_first(second(&s), usize::MAX).unwrap();
            (s.dump(), writes)
        };
        for n in 0..=writes {
            let path = dir.path().join(format!("stopped-{n}"));
            {
                let s = Store::open(&path, 1 << 20).unwrap();
                s.commit(first(&s)).unwrap();
                s.commit_first(second(&s), n).unwrap();
                s.flush().unwrap();
            }
            let s = Store::open(&path, 1 << 20).unwrap();
            if n < writes - 1 {
                // Stopped before its `applied` record: the state is back where the first
                // batch left it, so the second can be written again.
                assert_eq!(
                    s.applied().unwrap().0,
                    HEAD_ROWS as u64 - 1,
                    "stopped after {n}"
                );
                assert_eq!(s.account(a.id).unwrap(), Some(a_after.clone()));
                assert_eq!(s.account(new.id).unwrap(), None, "stopped after {n}");
                s.commit(second(&s)).unwrap();
            }
            if n == writes - 1 {
                // Only the checkpoint, written after the `applied` record, is missing: the
                // ledger signs one for the state it finds at open.
                assert_eq!(s.checkpoint_at(38).unwrap(), None);
                let mut checkpoint = StateBatch::default();
                checkpoint.put_checkpoint(38, "checkpoint 38");
                s.commit(checkpoint).unwrap();
            }
            let found = s.dump();
            let differ: Vec<_> = found
                .iter()
                .filter(|kv| !expected.contains(kv))
                .chain(expected.iter().filter(|kv| !found.contains(kv)))
                .map(|(tree, k, _)| {
                    format!("{tree} {}", String::from_utf8_lossy(&k[..k.len().min(8)]))
                })
                .collect();
            assert!(differ.is_empty(), "stopped after {n} writes: {differ:?}");
        }
    }

    #[test]
    fn idempotency_and_reversals_round_trip() {
        let (_d, s) = store();
        let actor = Uuid::now_v7();
        let mut b = StateBatch::default();
        b.put_idempotency(
            actor,
            "key-1",
            IdempotencyRecord {
                first_seq: 10,
                parts: 3,
            },
        );
        b.put_reversal(4, 12);
        s.commit(b).unwrap();
        assert_eq!(
            s.idempotency(actor, "key-1").unwrap(),
            Some(IdempotencyRecord {
                first_seq: 10,
                parts: 3
            })
        );
        assert_eq!(s.idempotency(actor, "key-2").unwrap(), None);
        assert_eq!(s.idempotency(Uuid::now_v7(), "key-1").unwrap(), None);
        assert_eq!(
            s.applied().unwrap(),
            (0, 0),
            "no entries, no change of size"
        );
        assert_eq!(s.reversed_by(4).unwrap(), Some(12));
        assert_eq!(s.reversed_by(5).unwrap(), None);
    }
}
