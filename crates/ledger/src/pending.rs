//! Staging entries on top of the committed state, before they are written.
//!
//! [`Pending`] is an overlay: the accounts, reversals and idempotency records changed by the
//! entries staged so far, over the committed state in sled. The writer stages every entry of a
//! batch here (so a later request in the same batch sees the earlier ones: no lost update, no
//! double spend), writes the batch's journal records, then adds the overlay to a sled state batch
//! ([`Staged::add_to`]). Replay at startup stages the journal's unapplied records through the
//! very same path.
//!
//! What a batch staged, [`Staged`], outlives its staging: until it is applied to sled, later
//! batches are staged over it (see [`Pending::over`]), so they see exactly what they would see
//! once it is applied. (The domain's `rules::Changes` are the account states one entry leaves;
//! [`Pending::stage`] gathers them into the batch's [`Staged`].)

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use timecredits_domain::rules::{self, AccountState, Original, RuleViolation};
use timecredits_domain::{AccountId, Entry, EntryBody};
use timecredits_tlog::merkle::{self, Frontier, Hash};
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::{JournalReader, RecordPos};
use crate::store::{HistoryRow, IdempotencyRecord, StateBatch, Store};

/// A point [`Pending::rollback`] can return to, so that a multi-part request stages all of its
/// entries or none.
pub struct Savepoint {
    entries: usize,
    undo: usize,
}

enum Undo {
    Account(AccountId, Option<AccountState>),
    Reversal(u64),
    Idempotency((Uuid, String), Option<IdempotencyRecord>),
}

/// What a batch staged: its entries, with their canonical bytes, and the state they change.
#[derive(Debug, Default)]
pub struct Staged {
    /// Sequence number of the first entry.
    base: u64,
    accounts: HashMap<AccountId, AccountState>,
    reversals: HashMap<u64, u64>,
    idempotency: HashMap<(Uuid, String), IdempotencyRecord>,
    entries: Vec<(Entry, Vec<u8>)>,
}

impl Staged {
    /// The staged entries and their canonical bytes.
    pub fn entries(&self) -> &[(Entry, Vec<u8>)] {
        &self.entries
    }

    /// The sequence number of the first entry.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The sequence number after the last entry.
    pub fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    fn entry(&self, seq: u64) -> Option<&Entry> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.entries.get(i).map(|(e, _)| e)
    }

    /// Appends the entries' leaves to `frontier` and returns the stored Merkle hashes each entry
    /// added (see [`Frontier::append`]).
    pub fn extend(&self, frontier: &mut Frontier) -> Vec<Vec<Hash>> {
        self.entries
            .iter()
            .map(|(entry, bytes)| {
                debug_assert_eq!(frontier.size(), entry.seq, "frontier follows the log");
                frontier.append(merkle::leaf_hash(bytes))
            })
            .collect()
    }

    /// Adds the entries, written at `positions` in the journal and adding `hashes` to the tree,
    /// to `batch`, which must continue exactly where `store` (and whatever `batch` holds
    /// already) ends. Several staged batches can go into one state batch, in order.
    pub fn add_to(
        &self,
        batch: &mut StateBatch,
        store: &Store,
        positions: &[RecordPos],
        hashes: &[Vec<Hash>],
    ) -> Result<(), LedgerError> {
        assert_eq!(
            (positions.len(), hashes.len()),
            (self.entries.len(), self.entries.len()),
            "one journal position and one set of hashes per entry"
        );
        let mut rows: HashMap<AccountId, Vec<HistoryRow>> = HashMap::new();
        for (((entry, _), pos), hashes) in self.entries.iter().zip(positions).zip(hashes) {
            batch.put_entry(store, entry.seq, entry.id, *pos, hashes)?;
            if let EntryBody::Key(_) = &entry.body {
                batch.put_key_entry(entry.seq);
            }
            let day = match &entry.body {
                EntryBody::Move(m) => m.effective,
                _ => entry.recorded.date_naive(),
            };
            for account in entry.body.accounts() {
                rows.entry(account).or_default().push(HistoryRow {
                    seq: entry.seq,
                    kind: entry.body.kind(),
                    day,
                });
            }
        }
        for state in self.accounts.values() {
            let rows = rows.remove(&state.id).unwrap_or_default();
            batch.put_account(store, state, &rows)?;
        }
        // Every entry changes each account it names, so no rows are left; should a rule ever
        // name an account without changing it, its history must still be kept.
        for (id, rows) in rows {
            let state = batch.account(store, id)?.ok_or_else(|| {
                LedgerError::Corrupt(format!("entry {} names an unknown account", rows[0].seq))
            })?;
            batch.put_account(store, &state, &rows)?;
        }
        for (seq, by) in &self.reversals {
            batch.put_reversal(*seq, *by);
        }
        for ((actor, key), record) in &self.idempotency {
            batch.put_idempotency(*actor, key, *record);
        }
        Ok(())
    }
}

/// Entries staged on top of the committed state.
pub struct Pending<'a> {
    store: &'a Store,
    journal: &'a JournalReader,
    /// Batches staged before this one and not yet in the store, oldest first.
    earlier: Vec<Arc<Staged>>,
    batch: Staged,
    undo: Vec<Undo>,
}

impl<'a> Pending<'a> {
    /// An empty overlay over a committed log of `base` entries.
    pub fn new(store: &'a Store, journal: &'a JournalReader, base: u64) -> Self {
        Pending {
            store,
            journal,
            earlier: Vec::new(),
            batch: Staged {
                base,
                ..Staged::default()
            },
            undo: Vec::new(),
        }
    }

    /// The same overlay, over `earlier` too: batches staged and written before this one but
    /// not yet in the store, oldest first, the last of them ending where this one starts.
    pub fn over(mut self, earlier: Vec<Arc<Staged>>) -> Self {
        debug_assert_eq!(
            earlier.last().map_or(self.batch.base, |c| c.end()),
            self.batch.base,
            "earlier batches end where this one starts"
        );
        self.earlier = earlier;
        self
    }

    /// The sequence number the next staged entry gets.
    pub fn next_seq(&self) -> u64 {
        self.batch.end()
    }

    /// What was staged.
    pub fn finish(self) -> Staged {
        self.batch
    }

    /// The newest staged value of something, in this batch or an earlier one.
    fn staged<T>(&self, find: impl Fn(&Staged) -> Option<T>) -> Option<T> {
        find(&self.batch).or_else(|| self.earlier.iter().rev().find_map(|c| find(c)))
    }

    /// An account's state including staged changes.
    pub fn account(&self, id: AccountId) -> Result<Option<AccountState>, LedgerError> {
        match self.staged(|c| c.accounts.get(&id).cloned()) {
            Some(a) => Ok(Some(a)),
            None => self.store.cached_account(id),
        }
    }

    /// The entry at `seq`, staged or committed.
    pub fn entry(&self, seq: u64) -> Result<Option<Entry>, LedgerError> {
        if seq >= self.batch.base {
            return Ok(self.batch.entry(seq).cloned());
        }
        if let Some(entry) = self.staged(|c| c.entry(seq).cloned()) {
            return Ok(Some(entry));
        }
        let Some(pos) = self.store.entry_pos(seq)? else {
            return Ok(None);
        };
        read_entry(self.journal, pos).map(Some)
    }

    /// The idempotency record of (actor, key), staged or committed.
    pub fn idempotency(
        &self,
        actor: Uuid,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, LedgerError> {
        let k = (actor, key.to_owned());
        match self.staged(|c| c.idempotency.get(&k).copied()) {
            Some(r) => Ok(Some(r)),
            None => self.store.idempotency(actor, key),
        }
    }

    /// When an entry last touched `account`, staged or committed: the newest staged entry that
    /// names it, else the newest row of its history index. Only an expiry asks, so the cost (a
    /// scan of the staged entries, one journal read) is paid rarely.
    fn last_use(&self, account: AccountId) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let newest_in = |staged: &Staged| {
            staged
                .entries
                .iter()
                .rev()
                .find(|(e, _)| e.body.accounts().contains(&account))
                .map(|(e, _)| e.recorded)
        };
        if let Some(recorded) = self.staged(newest_in) {
            return Ok(Some(recorded));
        }
        let Some(row) = self.store.history(account, None).next().transpose()? else {
            return Ok(None);
        };
        Ok(self.entry(row.seq)?.map(|e| e.recorded))
    }

    fn original(&self, seq: u64) -> Result<Option<Original>, LedgerError> {
        let Some(entry) = self.entry(seq)? else {
            return Ok(None);
        };
        let reversed_by = match self.staged(|c| c.reversals.get(&seq).copied()) {
            Some(by) => Some(by),
            None => self.store.reversed_by(seq)?,
        };
        let movement = match entry.body {
            EntryBody::Move(m) => Some(m),
            _ => None,
        };
        Ok(Some(Original {
            seq,
            movement,
            reversed_by,
        }))
    }

    /// Marks the current state so that a failed request can be undone.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            entries: self.batch.entries.len(),
            undo: self.undo.len(),
        }
    }

    /// Undoes everything staged since `sp`.
    pub fn rollback(&mut self, sp: Savepoint) {
        let batch = &mut self.batch;
        batch.entries.truncate(sp.entries);
        while self.undo.len() > sp.undo {
            match self
                .undo
                .pop()
                .expect("undo log is longer than the savepoint")
            {
                Undo::Account(id, Some(prev)) => {
                    batch.accounts.insert(id, prev);
                }
                Undo::Account(id, None) => {
                    batch.accounts.remove(&id);
                }
                Undo::Reversal(seq) => {
                    batch.reversals.remove(&seq);
                }
                Undo::Idempotency(k, Some(prev)) => {
                    batch.idempotency.insert(k, prev);
                }
                Undo::Idempotency(k, None) => {
                    batch.idempotency.remove(&k);
                }
            }
        }
    }

    /// Checks `entry` against the rules and stages it. The entry must carry the next sequence
    /// number. On a rule violation nothing is staged.
    pub fn stage(&mut self, entry: Entry) -> Result<Result<(), RuleViolation>, LedgerError> {
        assert_eq!(
            entry.seq,
            self.next_seq(),
            "entries are staged in sequence order"
        );
        let ids = entry.body.accounts();
        let current = ids
            .iter()
            .map(|id| self.account(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let original = match &entry.body {
            EntryBody::Move(m) => match m.reverses {
                Some(seq) if seq < entry.seq => self.original(seq)?,
                _ => None,
            },
            _ => None,
        };
        let last_use = match rules::last_use_needed(&entry) {
            Some(wallet) => self.last_use(wallet)?,
            None => None,
        };
        let refs: Vec<Option<&AccountState>> = current.iter().map(Option::as_ref).collect();
        let states = match rules::apply(&entry, &refs, original.as_ref(), last_use) {
            Ok(states) => states,
            Err(violation) => return Ok(Err(violation)),
        };
        for state in states {
            let prev = self.batch.accounts.insert(state.id, state.clone());
            self.undo.push(Undo::Account(state.id, prev));
        }
        if let EntryBody::Move(m) = &entry.body {
            if let Some(orig) = m.reverses {
                self.batch.reversals.insert(orig, entry.seq);
                self.undo.push(Undo::Reversal(orig));
            }
        }
        // Each part overwrites the record with one more part, so that the last part of a
        // request leaves the whole range, live or in replay alike.
        let idem_key = (entry.actor, entry.key.as_str().to_owned());
        let record = IdempotencyRecord {
            first_seq: entry.seq - u64::from(entry.part),
            parts: entry.part + 1,
        };
        let prev = self.batch.idempotency.insert(idem_key.clone(), record);
        self.undo.push(Undo::Idempotency(idem_key, prev));
        let bytes = entry.encode();
        self.batch.entries.push((entry, bytes));
        Ok(Ok(()))
    }
}

/// Reads and decodes a committed entry.
pub fn read_entry(journal: &JournalReader, pos: RecordPos) -> Result<Entry, LedgerError> {
    let bytes = journal.read(pos)?;
    Entry::decode(&bytes)
        .map_err(|e| LedgerError::Corrupt(format!("entry at offset {}: {e}", pos.offset)))
}
