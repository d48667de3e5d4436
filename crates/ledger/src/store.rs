//! The derived state in sled: balances and indexes, all rebuilt from the journal if lost.
//!
//! Everything lives in sled's default tree under one-byte prefixes, so that one committed batch
//! is written with a single atomic `apply_batch`: after a crash sled holds either all of a batch
//! or none of it, and [`Meta::size`] always says exactly how many entries the state reflects.
//!
//! | key                               | value                                        |
//! |-----------------------------------|----------------------------------------------|
//! | `m` `size`                        | tree size applied (u64 BE)                   |
//! | `m` `journal_end`                 | journal offset after the last applied record |
//! | `a` account id (16)               | [`AccountState`], 50 bytes (see below)       |
//! | `e` seq (8 BE)                    | journal position: offset u64, len u32        |
//! | `i` entry id (16)                 | seq (8 BE)                                   |
//! | `h` stored hash index (8 BE)      | SHA-256 hash (32): the Merkle tree           |
//! | `x` account (16) seq (8 BE)       | kind code (1), day (4 BE, i32 since 1970)    |
//! | `k` actor (16) key (1..255)       | first seq (8 BE), parts (4 BE)               |
//! | `r` seq (8 BE)                    | seq of its reversal (8 BE)                   |
//! | `c` tree size (8 BE)              | the checkpoint signed at that size (note)    |
//!
//! Integers are big-endian in keys so that sled's byte order is numeric order: an account's
//! history is a range scan over `x` account.

use chrono::NaiveDate;
use timecredits_domain::{AccountId, AccountKind, AccountState, AccountStatus, EntryKind};
use timecredits_tlog::merkle::{Hash, HashReader, TreeError};
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::RecordPos;

const ACCOUNT: u8 = b'a';
const ENTRY: u8 = b'e';
const ENTRY_ID: u8 = b'i';
const HASH: u8 = b'h';
const HISTORY: u8 = b'x';
const IDEMPOTENCY: u8 = b'k';
const REVERSAL: u8 = b'r';
const CHECKPOINT: u8 = b'c';

const META_SIZE: &[u8] = b"msize";
const META_JOURNAL_END: &[u8] = b"mjournal_end";

/// One row of an account's history index: enough to filter without reading the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRow {
    pub seq: u64,
    pub kind: EntryKind,
    /// The effective date of a movement; the recording day of an open or close.
    pub day: NaiveDate,
}

/// Where an earlier request's entries are: the idempotency record of (actor, key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub first_seq: u64,
    pub parts: u32,
}

/// The sled-backed state. Cheap to clone; all clones share one database.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(prefix);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn be_u64(bytes: &[u8]) -> Result<u64, LedgerError> {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| LedgerError::Corrupt("short integer in the state".into()))
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

fn encode_account(a: &AccountState) -> [u8; ACCOUNT_LEN] {
    let mut v = [0u8; ACCOUNT_LEN];
    v[0] = account_kind_code(a.kind);
    v[1] = u8::from(a.status == AccountStatus::Closed);
    v[2..10].copy_from_slice(&a.balance.to_be_bytes());
    v[10..18].copy_from_slice(&a.opened.to_be_bytes());
    v[18..34].copy_from_slice(a.owner.unwrap_or_else(Uuid::nil).as_bytes());
    v[34..50].copy_from_slice(a.id.0.as_bytes());
    v
}

fn decode_account(v: &[u8]) -> Result<AccountState, LedgerError> {
    let corrupt = || LedgerError::Corrupt("malformed account state".into());
    let v: &[u8; ACCOUNT_LEN] = v.try_into().map_err(|_| corrupt())?;
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

/// The writes of one committed batch, applied to sled atomically by [`Store::commit`].
#[derive(Default)]
pub struct StateBatch {
    batch: sled::Batch,
}

impl StateBatch {
    /// Records an account's new state.
    pub fn put_account(&mut self, a: &AccountState) {
        self.batch
            .insert(key(ACCOUNT, &[a.id.0.as_bytes()]), &encode_account(a)[..]);
    }

    /// Records where entry `seq` is in the journal and its id.
    pub fn put_entry(&mut self, seq: u64, id: Uuid, pos: RecordPos) {
        let mut v = [0u8; 12];
        v[..8].copy_from_slice(&pos.offset.to_be_bytes());
        v[8..].copy_from_slice(&pos.len.to_be_bytes());
        self.batch.insert(key(ENTRY, &[&seq.to_be_bytes()]), &v[..]);
        self.batch
            .insert(key(ENTRY_ID, &[id.as_bytes()]), &seq.to_be_bytes()[..]);
    }

    /// Records a stored Merkle hash.
    pub fn put_hash(&mut self, index: u64, hash: &Hash) {
        self.batch
            .insert(key(HASH, &[&index.to_be_bytes()]), &hash[..]);
    }

    /// Adds entry `row.seq` to an account's history.
    pub fn put_history(&mut self, account: AccountId, row: HistoryRow) {
        let mut v = [0u8; 5];
        v[0] = kind_code(row.kind);
        v[1..5].copy_from_slice(&day_number(row.day).to_be_bytes());
        self.batch.insert(
            key(HISTORY, &[account.0.as_bytes(), &row.seq.to_be_bytes()]),
            &v[..],
        );
    }

    /// Records the entries made for (actor, key).
    pub fn put_idempotency(&mut self, actor: Uuid, idem_key: &str, record: IdempotencyRecord) {
        let mut v = [0u8; 12];
        v[..8].copy_from_slice(&record.first_seq.to_be_bytes());
        v[8..].copy_from_slice(&record.parts.to_be_bytes());
        self.batch.insert(
            key(IDEMPOTENCY, &[actor.as_bytes(), idem_key.as_bytes()]),
            &v[..],
        );
    }

    /// Records that entry `seq` was reversed by entry `by`.
    pub fn put_reversal(&mut self, seq: u64, by: u64) {
        self.batch
            .insert(key(REVERSAL, &[&seq.to_be_bytes()]), &by.to_be_bytes()[..]);
    }

    /// Sets the applied size and journal end: the last write of every batch.
    pub fn put_applied(&mut self, size: u64, journal_end: u64) {
        self.batch.insert(META_SIZE, &size.to_be_bytes()[..]);
        self.batch
            .insert(META_JOURNAL_END, &journal_end.to_be_bytes()[..]);
    }

    /// Records the checkpoint signed for the tree of `size` entries. Every batch keeps its own,
    /// so a repeated request is answered with the very checkpoint its first answer carried.
    pub fn put_checkpoint(&mut self, size: u64, note: &str) {
        self.batch
            .insert(key(CHECKPOINT, &[&size.to_be_bytes()]), note.as_bytes());
    }
}

impl Store {
    /// Opens the sled database at `path`.
    pub fn open(path: &std::path::Path, cache_bytes: u64) -> Result<Store, sled::Error> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Durability comes from the journal; sled's own background flush only bounds how much
            // journal is replayed after a crash.
            .flush_every_ms(Some(1000))
            .open()?;
        Ok(Store { db })
    }

    /// Applies a batch atomically.
    pub fn commit(&self, batch: StateBatch) -> Result<(), LedgerError> {
        self.db.apply_batch(batch.batch)?;
        Ok(())
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
        let size = self
            .get(META_SIZE)?
            .map(|v| be_u64(&v))
            .transpose()?
            .unwrap_or(0);
        let end = self
            .get(META_JOURNAL_END)?
            .map(|v| be_u64(&v))
            .transpose()?
            .unwrap_or(0);
        Ok((size, end))
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
        self.get(key(ACCOUNT, &[id.0.as_bytes()]))?
            .map(|v| decode_account(&v))
            .transpose()
    }

    /// Where entry `seq` is in the journal.
    pub fn entry_pos(&self, seq: u64) -> Result<Option<RecordPos>, LedgerError> {
        self.get(key(ENTRY, &[&seq.to_be_bytes()]))?
            .map(|v| {
                let len = v
                    .get(8..12)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
                    .ok_or_else(|| LedgerError::Corrupt("malformed entry position".into()))?;
                Ok(RecordPos {
                    offset: be_u64(&v)?,
                    len,
                })
            })
            .transpose()
    }

    /// The sequence number of the entry with this id.
    pub fn seq_of(&self, id: Uuid) -> Result<Option<u64>, LedgerError> {
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
                let parts = v
                    .get(8..12)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
                    .ok_or_else(|| LedgerError::Corrupt("malformed idempotency record".into()))?;
                Ok(IdempotencyRecord {
                    first_seq: be_u64(&v)?,
                    parts,
                })
            })
            .transpose()
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
        let start = key(HISTORY, &[account.0.as_bytes(), &0u64.to_be_bytes()]);
        let end = key(
            HISTORY,
            &[
                account.0.as_bytes(),
                &before.unwrap_or(u64::MAX).to_be_bytes(),
            ],
        );
        self.db.range(start..end).rev().map(|item| {
            let (k, v) = item?;
            let corrupt = || LedgerError::Corrupt("malformed history row".into());
            let seq = be_u64(k.get(17..).ok_or_else(corrupt)?)?;
            let kind = *EntryKind::ALL
                .get(usize::from(*v.first().ok_or_else(corrupt)?))
                .ok_or_else(corrupt)?;
            let day = i32::from_be_bytes(
                v.get(1..5)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(corrupt)?,
            );
            let day = from_day_number(day).ok_or_else(corrupt)?;
            Ok(HistoryRow { seq, kind, day })
        })
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

impl HashReader for Store {
    type Error = LedgerError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, LedgerError> {
        indexes
            .iter()
            .map(|&i| {
                let v = self
                    .get(key(HASH, &[&i.to_be_bytes()]))?
                    .ok_or_else(|| LedgerError::Corrupt(format!("stored hash {i} is missing")))?;
                v.as_ref()
                    .try_into()
                    .map_err(|_| LedgerError::Corrupt(format!("stored hash {i} is malformed")))
            })
            .collect()
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

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state"), 1 << 20).unwrap();
        (dir, s)
    }

    #[test]
    fn accounts_round_trip() {
        let (_d, s) = store();
        let a = AccountState {
            id: AccountId::new(),
            kind: AccountKind::Venue,
            owner: Some(Uuid::now_v7()),
            status: AccountStatus::Closed,
            balance: -42,
            opened: 9,
        };
        let mut b = StateBatch::default();
        b.put_account(&a);
        s.commit(b).unwrap();
        assert_eq!(s.account(a.id).unwrap(), Some(a));
        assert_eq!(s.account(AccountId::new()).unwrap(), None);
    }

    #[test]
    fn history_is_newest_first_and_per_account() {
        let (_d, s) = store();
        let (a, other) = (AccountId::new(), AccountId::new());
        let mut b = StateBatch::default();
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        for seq in [1u64, 5, 300, 70_000] {
            b.put_history(
                a,
                HistoryRow {
                    seq,
                    kind: EntryKind::Earn,
                    day,
                },
            );
        }
        b.put_history(
            other,
            HistoryRow {
                seq: 2,
                kind: EntryKind::Open,
                day,
            },
        );
        s.commit(b).unwrap();
        let seqs: Vec<u64> = s.history(a, None).map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, vec![70_000, 300, 5, 1]);
        let page: Vec<HistoryRow> = s.history(a, Some(300)).map(|r| r.unwrap()).collect();
        assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 1]);
        assert_eq!(page[0].day, day);
        let rows: Vec<HistoryRow> = s.history(other, None).map(|r| r.unwrap()).collect();
        assert_eq!(
            rows,
            vec![HistoryRow {
                seq: 2,
                kind: EntryKind::Open,
                day
            }]
        );
    }

    #[test]
    fn idempotency_and_meta_round_trip() {
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
        b.put_applied(13, 4096);
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
        assert_eq!(s.applied().unwrap(), (13, 4096));
        assert_eq!(s.reversed_by(4).unwrap(), Some(12));
        assert_eq!(s.reversed_by(5).unwrap(), None);
    }
}
