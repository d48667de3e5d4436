//! Reading the state: how far it goes, accounts and their history, the log's positions, ids and
//! hashes, idempotency records, reversals, key entries and checkpoints.
//!
//! # Invariants
//! - Reads never write, and never take the commit path's cache lock: a read costs the same while
//!   the writer commits.
//! - A reader never follows an index to a row the state lacks, because a state batch writes log
//!   chunks before the indexes into them, and checkpoints after the `applied` record (see the
//!   `batch` module); a missing row is corruption.

use timecredits_domain::{AccountId, AccountState};
use timecredits_tlog::merkle::{split_stored_hash_index, Hash, HashReader};
use uuid::Uuid;

use super::layout::{
    be_u64, decode_account, decode_rows, int_bytes, key, AccountRecord, Applied, ChunkEntries,
    ACCOUNT_LEN, CHECKPOINT, CHUNK_ENTRIES, ENTRY_ID, HISTORY, IDEMPOTENCY, KEY_ENTRY, LOG_CHUNK,
    META_APPLIED, REVERSAL, SPARSE_ID,
};
use super::{HistoryRow, IdempotencyRecord, Store};
use crate::error::LedgerError;
use crate::journal::RecordPos;

impl Store {
    fn get(&self, k: impl AsRef<[u8]>) -> Result<Option<sled::IVec>, LedgerError> {
        Ok(self.db.get(k)?)
    }

    /// Number of entries the state reflects, and the journal offset after the last of them.
    pub fn applied(&self) -> Result<(u64, u64), LedgerError> {
        let a = self.applied_record()?;
        Ok((a.size, a.journal_end))
    }

    pub(super) fn applied_record(&self) -> Result<Applied, LedgerError> {
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

    /// An account's state and the sequence number of the newest entry touching it. The
    /// account record holds both (its head of history rows is never empty: the `open` entry
    /// is the first row), so one keyed read.
    pub fn account_and_newest(
        &self,
        id: AccountId,
    ) -> Result<Option<(AccountState, u64)>, LedgerError> {
        let Some(record) = self.account_record(id)? else {
            return Ok(None);
        };
        let newest = record
            .head
            .last()
            .ok_or_else(|| LedgerError::Corrupt(format!("account {} has no history rows", id.0)))?;
        Ok(Some((record.state, newest.seq)))
    }

    pub(super) fn account_record(
        &self,
        id: AccountId,
    ) -> Result<Option<AccountRecord>, LedgerError> {
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

    pub(super) fn log_chunk(&self, number: u64) -> Result<Option<sled::IVec>, LedgerError> {
        self.get(key(LOG_CHUNK, &[&number.to_be_bytes()]))
    }

    /// The bytes of log chunk `number` before entry `seq`, which a batch continues with that
    /// entry at journal `offset`; checked to reach exactly there. Entries from `seq` on are
    /// dropped: a batch a stop interrupted may have written them (see [`Store::commit`]), and
    /// they are being written again.
    pub(super) fn continued_chunk(
        &self,
        number: u64,
        seq: u64,
        offset: u64,
    ) -> Result<Vec<u8>, LedgerError> {
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

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use timecredits_domain::{AccountKind, EntryKind};
    use timecredits_tlog::merkle::{leaf_hash, stored_hash_count, Frontier, MemoryHashes};

    use super::*;
    use crate::store::layout::hashes_added;
    use crate::store::testing::{account, store};
    use crate::store::{StateBatch, HEAD_ROWS};

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
            // The newest row is named by the account record alone, however the head overflowed.
            assert_eq!(
                s.account_and_newest(a.id).unwrap(),
                Some((a.clone(), *seqs.last().unwrap()))
            );
            assert_eq!(
                s.account_and_newest(other.id).unwrap(),
                Some((other.clone(), next))
            );
        }
        assert_eq!(s.account_and_newest(AccountId::new()).unwrap(), None);
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
