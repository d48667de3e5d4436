//! Integrity checks a ledger can be asked for: the **scrub**, which re-reads every journal record
//! and compares it with the Merkle leaf the state holds for it, and the **full check**, which also
//! replays every entry under the ledger rules and compares the result with the state.
//!
//! The journal is checked record by record only when a record is read, and at open only its last
//! record and the tail after it: a bit flipped in the middle by the disk would otherwise go
//! unnoticed until someone asks for that entry. The scrub runs in the background while the
//! service serves (see [`LedgerConfig::scrub_interval`](crate::LedgerConfig)); damage stops
//! writes, so that nothing is appended after known damage, and readiness says why.
//! `timecredits check` runs the full check on a stopped service.

use chrono::{DateTime, Utc};
use std::collections::HashMap;

use timecredits_domain::rules::{self, AccountState, Original};
use timecredits_domain::{AccountId, Entry, EntryBody};
use timecredits_tlog::merkle::{leaf_hash, stored_hash_index, HashReader};

use crate::error::LedgerError;
use crate::Ledger;

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Entries checked.
    pub entries: u64,
    /// Journal bytes read.
    pub bytes: u64,
    /// Accounts compared with a replay (the full check only).
    pub accounts: u64,
    /// Every problem found, each naming the entry or account; empty when the ledger is sound.
    pub damage: Vec<String>,
}

impl CheckReport {
    /// Whether nothing was found wrong.
    pub fn is_sound(&self) -> bool {
        self.damage.is_empty()
    }
}

/// At most this many problems are listed; a badly damaged journal would otherwise list millions.
pub const MAX_LISTED: usize = 100;

impl Ledger {
    /// Re-reads every journal record up to the current size and checks it against its checksum
    /// and the Merkle leaf the state holds for it. `progress` is called with (entries checked,
    /// entries in all) now and then.
    pub fn scrub(&self, progress: impl Fn(u64, u64)) -> Result<CheckReport, LedgerError> {
        self.walk(progress, |_, _| Ok(()))
    }

    /// [`Ledger::scrub`], then a replay of every entry under the ledger rules from nothing,
    /// compared account by account with the state.
    pub fn check(&self, progress: impl Fn(u64, u64)) -> Result<CheckReport, LedgerError> {
        let mut replay = Replay::default();
        let mut report = self.walk(progress, |entry, report| {
            let original = match &entry.body {
                EntryBody::Move(m) => match m.reverses {
                    Some(seq) => Some(Original {
                        seq,
                        movement: match self.entry(seq)?.map(|e| e.body) {
                            Some(EntryBody::Move(original)) => Some(original),
                            _ => None,
                        },
                        reversed_by: replay.reversed.get(&seq).copied(),
                    }),
                    None => None,
                },
                _ => None,
            };
            replay.apply(entry, original.as_ref(), report);
            Ok(())
        })?;
        for (id, replayed) in &replay.accounts {
            report.accounts += 1;
            let stored = self.account(*id)?;
            if stored.as_ref() != Some(replayed) {
                report.note(format!(
                    "account {id}: the state holds {stored:?}, a replay of the journal gives \
                     {replayed:?}"
                ));
            }
        }
        Ok(report)
    }

    /// Reads entries `0..size` from the journal, checks each, and hands each one that decodes to
    /// `visit`.
    fn walk(
        &self,
        progress: impl Fn(u64, u64),
        mut visit: impl FnMut(&Entry, &mut CheckReport) -> Result<(), LedgerError>,
    ) -> Result<CheckReport, LedgerError> {
        let size = self.size()?;
        let store = self.store_for_checks()?;
        let mut report = CheckReport::default();
        for seq in 0..size {
            if seq % 4096 == 0 {
                progress(seq, size);
            }
            report.entries += 1;
            let Some(pos) = store.entry_pos(seq)? else {
                report.note(format!("entry {seq}: the state does not say where it is"));
                continue;
            };
            report.bytes += pos.end() - pos.offset;
            let bytes = match self.journal_for_checks().read(pos) {
                Ok(bytes) => bytes,
                Err(e) => {
                    report.note(format!("entry {seq}: {e}"));
                    continue;
                }
            };
            let stored = store.read_hashes(&[stored_hash_index(0, seq)])?;
            if stored[0] != leaf_hash(&bytes) {
                report.note(format!(
                    "entry {seq} at journal offset {}: its bytes are not the Merkle leaf the \
                     ledger signed",
                    pos.offset
                ));
                continue;
            }
            match Entry::decode(&bytes) {
                Ok(entry) if entry.seq == seq => visit(&entry, &mut report)?,
                Ok(entry) => {
                    report.note(format!("entry {seq}: the record holds entry {}", entry.seq))
                }
                Err(e) => report.note(format!("entry {seq}: {e}")),
            }
        }
        progress(size, size);
        Ok(report)
    }
}

impl CheckReport {
    fn note(&mut self, problem: String) {
        if self.damage.len() < MAX_LISTED {
            self.damage.push(problem);
        }
    }
}

/// The accounts as the ledger rules make them, entry after entry.
#[derive(Default)]
struct Replay {
    accounts: HashMap<AccountId, AccountState>,
    /// The entries reversed so far, and by which entry.
    reversed: HashMap<u64, u64>,
    /// When an entry last touched each account, for the expiry rule.
    last_use: HashMap<AccountId, DateTime<Utc>>,
}

impl Replay {
    fn apply(&mut self, entry: &Entry, original: Option<&Original>, report: &mut CheckReport) {
        let ids = entry.body.accounts();
        let current: Vec<Option<&AccountState>> =
            ids.iter().map(|id| self.accounts.get(id)).collect();
        let last_use = rules::last_use_needed(entry).and_then(|id| self.last_use.get(&id).copied());
        let result = rules::apply(entry, &current, original, last_use);
        for id in ids {
            self.last_use.insert(id, entry.recorded);
        }
        match result {
            Ok(changes) => {
                for state in changes {
                    self.accounts.insert(state.id, state);
                }
                if let Some(original) = original {
                    self.reversed.insert(original.seq, entry.seq);
                }
            }
            Err(violation) => report.note(format!(
                "entry {}: breaks a ledger rule: {violation}",
                entry.seq
            )),
        }
    }
}
