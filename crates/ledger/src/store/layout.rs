//! The state's layout: its trees, its keys and their values, the [`LAYOUT`] version, and the
//! codecs of every record. Nothing here touches sled; the rest of the store reads and writes
//! through these.
//!
//! # Invariants
//! - Integers in keys are big-endian, so that sled's byte order is numeric order.
//! - Any change to a key or a value below changes [`LAYOUT`]: a state of another layout is refused
//!   at open and rebuilt from the journal, never read with the wrong codecs.
//!
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

use chrono::NaiveDate;
use timecredits_domain::{AccountId, AccountKind, AccountState, AccountStatus, EntryKind};
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::RecordPos;

/// The version of the layout above.
pub const LAYOUT: u32 = 3;

/// Entries per log chunk.
pub const CHUNK_ENTRIES: u64 = 16;

/// History rows kept in an account record.
pub const HEAD_ROWS: usize = 32;

pub(super) const ENTRY_ID: u8 = b'i';
pub(super) const SPARSE_ID: u8 = b'j';
pub(super) const LOG_CHUNK: u8 = b's';
pub(super) const HISTORY: u8 = b'x';
pub(super) const IDEMPOTENCY: u8 = b'k';
pub(super) const REVERSAL: u8 = b'r';
pub(super) const KEY_ENTRY: u8 = b'v';
pub(super) const CHECKPOINT: u8 = b'c';

/// The tree of account records, apart so that reading one costs the same whatever the size of the
/// log.
pub(super) const ACCOUNTS_TREE: &str = "accounts";

pub(super) const META_APPLIED: &[u8] = b"mapplied";
pub(super) const META_LAYOUT: &[u8] = b"mlayout";
pub(super) const META_UNDO: &[u8] = b"mundo";

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

/// What an account record holds: the account's state and its newest history rows.
#[derive(Clone, Debug)]
pub(super) struct AccountRecord {
    pub(super) state: AccountState,
    pub(super) head: Vec<HistoryRow>,
}

pub(super) fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// The first `N` bytes of a stored integer.
pub(super) fn int_bytes<const N: usize>(bytes: &[u8]) -> Result<[u8; N], LedgerError> {
    bytes
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LedgerError::Corrupt("short integer in the state".into()))
}

pub(super) fn be_u64(bytes: &[u8]) -> Result<u64, LedgerError> {
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
pub(super) const ACCOUNT_LEN: usize = 50;

fn encode_account(a: &AccountState, out: &mut Vec<u8>) {
    out.push(account_kind_code(a.kind));
    out.push(u8::from(a.status == AccountStatus::Closed));
    out.extend_from_slice(&a.balance.to_be_bytes());
    out.extend_from_slice(&a.opened.to_be_bytes());
    out.extend_from_slice(a.owner.unwrap_or_else(Uuid::nil).as_bytes());
    out.extend_from_slice(a.id.0.as_bytes());
}

/// Decodes the account state at the start of an account record.
pub(super) fn decode_account(record: &[u8]) -> Result<AccountState, LedgerError> {
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
pub(super) const ROW_LEN: usize = 13;

pub(super) fn encode_rows(rows: &[HistoryRow], out: &mut Vec<u8>) {
    for row in rows {
        out.extend_from_slice(&row.seq.to_be_bytes());
        out.push(kind_code(row.kind));
        out.extend_from_slice(&day_number(row.day).to_be_bytes());
    }
}

pub(super) fn decode_rows(v: &[u8]) -> Result<Vec<HistoryRow>, LedgerError> {
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
pub(super) fn encode_record(record: &AccountRecord) -> Vec<u8> {
    let mut v = Vec::with_capacity(ACCOUNT_LEN + record.head.len() * ROW_LEN);
    encode_account(&record.state, &mut v);
    encode_rows(&record.head, &mut v);
    v
}

/// How many stored hashes entry `seq` adds to the tree.
pub(super) fn hashes_added(seq: u64) -> usize {
    1 + seq.trailing_ones() as usize
}

/// One entry of a log chunk.
pub(super) struct ChunkEntry<'a> {
    pub(super) seq: u64,
    pub(super) pos: RecordPos,
    pub(super) id: Uuid,
    /// The stored hashes the entry added, 32 bytes each.
    pub(super) hashes: &'a [u8],
}

/// The entries of a log chunk, in order.
pub(super) struct ChunkEntries<'a> {
    pub(super) seq: u64,
    pub(super) offset: u64,
    pub(super) rest: &'a [u8],
}

impl<'a> ChunkEntries<'a> {
    pub(super) fn new(chunk: u64, v: &'a [u8]) -> Result<Self, LedgerError> {
        Ok(ChunkEntries {
            seq: chunk * CHUNK_ENTRIES,
            offset: be_u64(v)?,
            rest: &v[8..],
        })
    }

    /// The first entry that `matches`, if the chunk has one.
    pub(super) fn find(
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
pub(super) struct Applied {
    /// Entries applied: the tree size.
    pub(super) size: u64,
    /// The journal offset just past the last of them.
    pub(super) journal_end: u64,
    /// The greatest entry id so far (see the sparse id index).
    pub(super) max_id: Uuid,
}
