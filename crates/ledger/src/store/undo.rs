//! Undoing a state batch a stop cut short, at open, and the `undo` record that makes it possible.
//!
//! # Invariants
//! - Every state batch but one of checkpoints alone writes its `undo` record first (see the
//!   `batch` module), naming the state's size before it.
//! - Every index record a batch writes is new (see below), so removing it restores the state
//!   exactly; an account record it writes is put back as it was.
//! - Undoing is idempotent: the `undo` record is removed last, so a stop during the undo leaves it
//!   to be done again.
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

use timecredits_domain::AccountId;
use uuid::Uuid;

use super::batch::Writes;
use super::layout::{be_u64, encode_record, int_bytes, AccountRecord, META_UNDO};
use super::Store;
use crate::error::LedgerError;

/// The undo record: the state's size before the batch (u64 BE); the number of accounts the
/// batch writes (u32 BE) and for each its id (16), the length of its previous record (u32 BE, 0
/// when it had none) and that record; then the key of each index record the batch writes, as its
/// length (u16 BE) and its bytes.
pub(super) fn encode_undo(
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

impl Store {
    /// Undoes a batch that stopped half-way (see [`Store::commit`]): when the undo record was
    /// written for the size the state still has, the batch's `applied` record never was, so its
    /// accounts get their previous records back and its index records are removed. Returns how
    /// many records it put back or removed. Undoing twice (a stop during the undo) is harmless:
    /// the undo record goes last.
    pub(super) fn undo_cut_batch(&self) -> Result<usize, LedgerError> {
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
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use timecredits_domain::{AccountKind, AccountState, EntryKind};
    use timecredits_tlog::merkle::{leaf_hash, Frontier};

    use super::*;
    use crate::journal::RecordPos;
    use crate::store::testing::account;
    use crate::store::{HistoryRow, IdempotencyRecord, StateBatch, HEAD_ROWS};

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
}
