//! Staging entries on top of the committed state, before they are written.
//!
//! [`Pending`] is an overlay: the accounts, reversals and idempotency records changed by the
//! entries staged so far, over the committed state in sled. The writer stages every entry of a
//! batch here (so a later request in the same batch sees the earlier ones: no lost update, no
//! double spend), writes the batch's journal records, then turns the overlay into one atomic sled
//! batch. Replay at startup stages the journal's unapplied records through the very same path.

use std::collections::HashMap;

use timecredits_domain::rules::{self, AccountState, Original, RuleViolation};
use timecredits_domain::{AccountId, Entry, EntryBody};
use timecredits_tlog::merkle::{self, stored_hash_index, Frontier};
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

/// Entries staged on top of the committed state.
pub struct Pending<'a> {
    store: &'a Store,
    journal: &'a JournalReader,
    /// Size of the committed log: the first staged entry gets this sequence number.
    base: u64,
    accounts: HashMap<AccountId, AccountState>,
    reversals: HashMap<u64, u64>,
    idempotency: HashMap<(Uuid, String), IdempotencyRecord>,
    entries: Vec<(Entry, Vec<u8>)>,
    undo: Vec<Undo>,
}

impl<'a> Pending<'a> {
    /// An empty overlay over a committed log of `base` entries.
    pub fn new(store: &'a Store, journal: &'a JournalReader, base: u64) -> Self {
        Pending {
            store,
            journal,
            base,
            accounts: HashMap::new(),
            reversals: HashMap::new(),
            idempotency: HashMap::new(),
            entries: Vec::new(),
            undo: Vec::new(),
        }
    }

    /// The sequence number the next staged entry gets.
    pub fn next_seq(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// The staged entries and their canonical bytes.
    pub fn entries(&self) -> &[(Entry, Vec<u8>)] {
        &self.entries
    }

    /// An account's state including staged changes.
    pub fn account(&self, id: AccountId) -> Result<Option<AccountState>, LedgerError> {
        match self.accounts.get(&id) {
            Some(a) => Ok(Some(a.clone())),
            None => self.store.account(id),
        }
    }

    /// The entry at `seq`, staged or committed.
    pub fn entry(&self, seq: u64) -> Result<Option<Entry>, LedgerError> {
        if seq >= self.base {
            return Ok(self
                .entries
                .get((seq - self.base) as usize)
                .map(|(e, _)| e.clone()));
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
        match self.idempotency.get(&(actor, key.to_owned())) {
            Some(r) => Ok(Some(*r)),
            None => self.store.idempotency(actor, key),
        }
    }

    fn original(&self, seq: u64) -> Result<Option<Original>, LedgerError> {
        let Some(entry) = self.entry(seq)? else {
            return Ok(None);
        };
        let reversed_by = match self.reversals.get(&seq) {
            Some(by) => Some(*by),
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
            entries: self.entries.len(),
            undo: self.undo.len(),
        }
    }

    /// Undoes everything staged since `sp`.
    pub fn rollback(&mut self, sp: Savepoint) {
        self.entries.truncate(sp.entries);
        while self.undo.len() > sp.undo {
            match self
                .undo
                .pop()
                .expect("undo log is longer than the savepoint")
            {
                Undo::Account(id, Some(prev)) => {
                    self.accounts.insert(id, prev);
                }
                Undo::Account(id, None) => {
                    self.accounts.remove(&id);
                }
                Undo::Reversal(seq) => {
                    self.reversals.remove(&seq);
                }
                Undo::Idempotency(k, Some(prev)) => {
                    self.idempotency.insert(k, prev);
                }
                Undo::Idempotency(k, None) => {
                    self.idempotency.remove(&k);
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
        let refs: Vec<Option<&AccountState>> = current.iter().map(Option::as_ref).collect();
        let changes = match rules::apply(&entry, &refs, original.as_ref()) {
            Ok(changes) => changes,
            Err(violation) => return Ok(Err(violation)),
        };
        for state in changes {
            let prev = self.accounts.insert(state.id, state.clone());
            self.undo.push(Undo::Account(state.id, prev));
        }
        if let EntryBody::Move(m) = &entry.body {
            if let Some(orig) = m.reverses {
                self.reversals.insert(orig, entry.seq);
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
        let prev = self.idempotency.insert(idem_key.clone(), record);
        self.undo.push(Undo::Idempotency(idem_key, prev));
        let bytes = entry.encode();
        self.entries.push((entry, bytes));
        Ok(Ok(()))
    }

    /// Turns the staged entries, written at `positions` in the journal, into one atomic state
    /// batch, extending `frontier` with their leaves. Returns the batch and the new tree size.
    pub fn into_state_batch(self, positions: &[RecordPos], frontier: &mut Frontier) -> StateBatch {
        assert_eq!(
            positions.len(),
            self.entries.len(),
            "one journal position per entry"
        );
        let mut batch = StateBatch::default();
        for ((entry, bytes), pos) in self.entries.iter().zip(positions) {
            debug_assert_eq!(frontier.size(), entry.seq, "frontier follows the log");
            let first_index = stored_hash_index(0, entry.seq);
            for (i, hash) in frontier.append(merkle::leaf_hash(bytes)).iter().enumerate() {
                batch.put_hash(first_index + i as u64, hash);
            }
            batch.put_entry(entry.seq, entry.id, *pos);
            let day = match &entry.body {
                EntryBody::Move(m) => m.effective,
                _ => entry.recorded.date_naive(),
            };
            for account in entry.body.accounts() {
                batch.put_history(
                    account,
                    HistoryRow {
                        seq: entry.seq,
                        kind: entry.body.kind(),
                        day,
                    },
                );
            }
        }
        for state in self.accounts.values() {
            batch.put_account(state);
        }
        for (seq, by) in &self.reversals {
            batch.put_reversal(*seq, *by);
        }
        for ((actor, key), record) in &self.idempotency {
            batch.put_idempotency(*actor, key, *record);
        }
        let end = positions.last().map(RecordPos::end);
        if let Some(end) = end {
            batch.put_applied(frontier.size(), end);
        }
        batch
    }
}

/// Reads and decodes a committed entry.
pub fn read_entry(journal: &JournalReader, pos: RecordPos) -> Result<Entry, LedgerError> {
    let bytes = journal.read(pos)?;
    Entry::decode(&bytes)
        .map_err(|e| LedgerError::Corrupt(format!("entry at offset {}: {e}", pos.offset)))
}
