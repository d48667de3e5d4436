//! The single writer: the only code that appends to the ledger.
//!
//! Requests arrive on a queue. The writer takes every request waiting (up to a bound), stages them
//! one after the other against the committed state plus what the batch already staged, writes all
//! new entries to the journal with **one** `fdatasync`, applies the derived state to sled in one
//! atomic batch, signs **one** checkpoint, and only then answers every caller. Batches grow with
//! load (group commit): under light load a batch is one request, under heavy load hundreds share a
//! sync. Because one thread decides every balance change in order, there is no lost update and no
//! double spend, by construction.
//!
//! # Two stages
//! The work is split between two threads so that a batch's journal sync, the longest wait of a
//! commit, overlaps the sled work of the batch before it instead of adding to it:
//!
//! - the **stager** takes requests, decides them (the only thread that does), writes the new
//!   entries to the journal and syncs it;
//! - the **applier** applies each synced batch to sled, signs its checkpoint and answers its
//!   callers, in the stager's order.
//!
//! While the applier works on one batch, the stager stages the next one over the first one's
//! changes, which stay in memory until they are applied (see [`Pending::over`]): it decides
//! against exactly the state it would see after the first one is applied. At most two synced
//! batches wait to be applied (one being applied, one handed over). A caller is still answered
//! only once its entries are durable, applied and covered by a signed checkpoint, and after a
//! storage failure both stages stop taking writes.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, SendError};
use timecredits_domain::entry::truncate_to_micros;
use timecredits_domain::{AccountId, Entry, EntryBody, Intent, Movement, RuleViolation};
use timecredits_tlog::checkpoint::{sign_checkpoint, Checkpoint};
use timecredits_tlog::merkle::Frontier;
use timecredits_tlog::note::NoteSigner;
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::{Journal, JournalReader, RecordPos};
use crate::keys::Keyring;
use crate::pending::{Changes, Pending};
use crate::store::Store;
use crate::{Committed, Request, SignedCheckpoint};

/// A request and the channel its answer goes back on.
pub struct Job {
    pub request: Request,
    pub reply: tokio::sync::oneshot::Sender<Result<Committed, LedgerError>>,
}

/// What staging one request produced.
enum Outcome {
    /// New entries, by sequence number.
    Staged(Range<u64>),
    /// The same request was committed before (or earlier in this batch): these are its entries.
    Replayed(Vec<Entry>),
    Failed(LedgerError),
}

/// The writer's state. [`Writer::run`] splits it between the stager and the applier.
pub struct Writer {
    pub store: Store,
    pub journal: Journal,
    pub reader: Arc<JournalReader>,
    pub frontier: Frontier,
    pub keys: Arc<Mutex<Keyring>>,
    pub origin: String,
    pub last_recorded: DateTime<Utc>,
    pub checkpoint: SignedCheckpoint,
    pub max_batch: usize,
    /// Set after a storage failure: the on-disk state is unknown, so no further write is taken.
    pub poisoned: Option<String>,
}

/// What the stager and the applier share.
struct Shared {
    /// Batches written to the journal and not yet applied to the store, oldest first.
    unapplied: Mutex<VecDeque<Arc<Changes>>>,
    /// Why writes stopped, after a storage failure in either stage.
    halted: Mutex<Option<String>>,
}

impl Shared {
    fn new(halted: Option<String>) -> Self {
        Shared {
            unapplied: Mutex::default(),
            halted: Mutex::new(halted),
        }
    }

    fn halted(&self) -> Option<String> {
        self.halted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn halt(&self, reason: &str) {
        self.halted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| reason.to_owned());
    }

    fn unapplied(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Changes>>> {
        // Only ever pushed and popped whole, so a panicking holder leaves it consistent.
        self.unapplied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A batch on its way from the stager to the applier.
struct Written {
    jobs: Vec<Job>,
    outcomes: Vec<Outcome>,
    changes: Arc<Changes>,
    /// Where the new entries are in the journal, or why writing them failed.
    positions: Result<Vec<RecordPos>, String>,
}

/// The first stage: deciding requests and making their entries durable.
struct Stager<'w> {
    store: &'w Store,
    journal: &'w mut Journal,
    reader: &'w JournalReader,
    last_recorded: &'w mut DateTime<Utc>,
    /// The sequence number of the next entry.
    next_seq: u64,
    max_batch: usize,
    keys: &'w Mutex<Keyring>,
    shared: &'w Shared,
}

/// The second stage: applying durable batches to the store, signing, answering.
struct Applier<'w> {
    store: &'w Store,
    frontier: &'w mut Frontier,
    keys: &'w Mutex<Keyring>,
    origin: &'w str,
    checkpoint: &'w mut SignedCheckpoint,
    shared: &'w Shared,
}

impl Writer {
    fn stages<'w>(&'w mut self, shared: &'w Shared) -> (Stager<'w>, Applier<'w>) {
        let stager = Stager {
            store: &self.store,
            journal: &mut self.journal,
            reader: &self.reader,
            last_recorded: &mut self.last_recorded,
            next_seq: self.frontier.size(),
            max_batch: self.max_batch,
            keys: &self.keys,
            shared,
        };
        let applier = Applier {
            store: &self.store,
            frontier: &mut self.frontier,
            keys: &self.keys,
            origin: &self.origin,
            checkpoint: &mut self.checkpoint,
            shared,
        };
        (stager, applier)
    }

    /// Serves the queue until every sender is gone, then flushes the state.
    pub fn run(mut self, rx: Receiver<Job>) {
        let shared = &Shared::new(self.poisoned.take());
        std::thread::scope(|scope| {
            let (stager, mut applier) = self.stages(shared);
            // Capacity one: one batch waits while another is applied and a third is staged.
            let (to_applier, written) = crossbeam_channel::bounded::<Written>(1);
            let applying = std::thread::Builder::new()
                .name("ledger-applier".into())
                .spawn_scoped(scope, move || {
                    for batch in written {
                        applier.apply(batch);
                    }
                });
            if let Err(e) = applying {
                shared.halt(&format!(
                    "the ledger could not start its applier thread: {e}"
                ));
            }
            stager.run(&rx, move |batch| {
                if let Err(SendError(batch)) = to_applier.send(batch) {
                    let reason = "the ledger's applier thread has stopped";
                    shared.halt(reason);
                    refuse(batch.jobs, reason);
                }
            });
        });
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "flushing the state at shutdown failed; the next start replays the journal");
        }
    }

    /// Stages, commits and answers one batch of jobs on the calling thread.
    pub fn run_batch(&mut self, jobs: Vec<Job>) {
        let shared = Shared::new(self.poisoned.take());
        let (mut stager, mut applier) = self.stages(&shared);
        if let Some(batch) = stager.stage(jobs) {
            applier.apply(batch);
        }
        self.poisoned = shared.halted();
    }
}

/// Answers every job with [`LedgerError::Unavailable`].
fn refuse(jobs: Vec<Job>, reason: &str) {
    for job in jobs {
        let _ = job
            .reply
            .send(Err(LedgerError::Unavailable(reason.to_owned())));
    }
}

impl Stager<'_> {
    /// Stages batches from the queue, handing each to `apply`, until every sender is gone. A
    /// batch takes every request waiting, up to `max_batch`: while one batch is synced, the next
    /// one gathers.
    fn run(mut self, rx: &Receiver<Job>, mut apply: impl FnMut(Written)) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            if let Some(batch) = self.stage(jobs) {
                apply(batch);
            }
        }
    }

    /// Stages a batch over the batches not yet applied and makes its new entries durable.
    /// Returns `None` when writes have stopped (the jobs are then answered already).
    fn stage(&mut self, jobs: Vec<Job>) -> Option<Written> {
        if let Some(reason) = self.shared.halted() {
            refuse(jobs, &reason);
            return None;
        }
        let now = truncate_to_micros(Utc::now()).max(*self.last_recorded);
        let earlier: Vec<Arc<Changes>> = self.shared.unapplied().iter().cloned().collect();
        let mut pending = Pending::new(self.store, self.reader, self.next_seq).over(earlier);
        let outcomes: Vec<Outcome> = jobs
            .iter()
            .map(|job| stage_request(&mut pending, &job.request, now, self.keys))
            .collect();
        let changes = Arc::new(pending.finish());
        let positions = if changes.entries().is_empty() {
            Ok(Vec::new())
        } else {
            self.write(&changes)
        };
        match &positions {
            Ok(_) if !changes.entries().is_empty() => {
                self.next_seq = changes.end();
                *self.last_recorded = now;
                self.shared.unapplied().push_back(Arc::clone(&changes));
            }
            Ok(_) => {}
            Err(reason) => self.shared.halt(reason),
        }
        Some(Written {
            jobs,
            outcomes,
            changes,
            positions,
        })
    }

    /// Appends the batch's entries to the journal and syncs it. A failure stops all writes: the
    /// callers learn the outcome is unknown, and a restart recovers from the journal.
    fn write(&mut self, changes: &Changes) -> Result<Vec<RecordPos>, String> {
        let payloads: Vec<&[u8]> = changes
            .entries()
            .iter()
            .map(|(_, b)| b.as_slice())
            .collect();
        let written = self.journal.append(&payloads).and_then(|positions| {
            self.journal.sync()?;
            Ok(positions)
        });
        written.map_err(|e| {
            tracing::error!(error = %e, "journal write failed; the ledger stops taking writes");
            stopped_by(&e)
        })
    }
}

/// Why writes stopped after `e`.
fn stopped_by(e: &dyn std::fmt::Display) -> String {
    format!("a commit failed and the ledger stopped taking writes until restarted: {e}")
}

impl Applier<'_> {
    /// Applies a written batch, signs its checkpoint and answers its callers.
    fn apply(&mut self, batch: Written) {
        let Written {
            jobs,
            outcomes,
            changes,
            positions,
        } = batch;
        // After a failure to apply an earlier batch, this one, durable or not, cannot be applied.
        let committed = match (positions, self.shared.halted()) {
            (Err(reason), _) | (Ok(_), Some(reason)) => Err(reason),
            (Ok(_), None) if changes.entries().is_empty() => Ok(()),
            (Ok(positions), None) => self.commit(&changes, &positions),
        };
        if committed.is_ok() && !changes.entries().is_empty() {
            let applied = self.shared.unapplied().pop_front();
            debug_assert!(
                applied.is_some_and(|a| Arc::ptr_eq(&a, &changes)),
                "batches are applied in the order they were written"
            );
        }
        let applied_size = self.checkpoint.checkpoint.size;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let answer = match (&committed, outcome) {
                (Err(e), Outcome::Staged(_)) => Err(LedgerError::Unavailable(e.clone())),
                // A repeat of a request whose entries were never applied failed with them.
                (Err(e), Outcome::Replayed(entries))
                    if entries.iter().any(|x| x.seq >= applied_size) =>
                {
                    Err(LedgerError::Unavailable(e.clone()))
                }
                (_, Outcome::Failed(e)) => Err(e),
                (_, Outcome::Staged(range)) => Ok(self.answer(&changes, range)),
                (_, Outcome::Replayed(entries)) => self.replay(entries),
            };
            // A caller that gave up waiting has dropped its receiver; the entry stands anyway.
            let _ = job.reply.send(answer);
        }
    }

    fn answer(&self, changes: &Changes, range: Range<u64>) -> Committed {
        let staged = changes.entries();
        let from = (range.start - changes.base()) as usize;
        let to = (range.end - changes.base()) as usize;
        Committed {
            entries: staged[from..to].iter().map(|(e, _)| e.clone()).collect(),
            checkpoint: self.checkpoint.clone(),
            replayed: false,
        }
    }

    /// The answer to a repeated request: its entries and the checkpoint that first covered them,
    /// so the repeat gets the same answer as the original.
    fn replay(&self, entries: Vec<Entry>) -> Result<Committed, LedgerError> {
        let last = entries.last().map_or(0, |e| e.seq);
        let checkpoint = match self.store.checkpoint_covering(last)? {
            // Staged earlier in this very batch: covered by the checkpoint just signed.
            None => self.checkpoint.clone(),
            Some(note) => SignedCheckpoint::from_stored(note)?,
        };
        Ok(Committed {
            entries,
            checkpoint,
            replayed: true,
        })
    }

    /// Applies the batch's changes to the state and signs a checkpoint. A failure stops all
    /// writes: the callers learn the outcome is unknown, and a restart recovers from the journal.
    fn commit(&mut self, changes: &Changes, positions: &[RecordPos]) -> Result<(), String> {
        let result = (|| -> Result<(), LedgerError> {
            let mut batch = changes.state_batch(self.store, positions, self.frontier)?;
            let mut keys = lock(self.keys);
            for (entry, _) in changes.entries() {
                if let EntryBody::Key(rotation) = &entry.body {
                    keys.rotate(rotation.vkey(), entry.recorded)?;
                }
            }
            let signed = sign(&keys.signers(Utc::now()), self.origin, self.frontier)?;
            batch.put_checkpoint(signed.checkpoint.size, &signed.note);
            self.store.commit(batch)?;
            *self.checkpoint = signed;
            Ok(())
        })();
        result.map_err(|e| {
            tracing::error!(error = %e, "applying a batch failed; the ledger stops taking writes");
            let reason = stopped_by(&e);
            self.shared.halt(&reason);
            reason
        })
    }
}

/// The keyring, whatever a panicking holder left: every change to it is a single assignment.
pub(crate) fn lock(keys: &Mutex<Keyring>) -> std::sync::MutexGuard<'_, Keyring> {
    keys.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Signs a checkpoint for the frontier's current tree.
pub fn sign(
    signers: &[&NoteSigner],
    origin: &str,
    frontier: &Frontier,
) -> Result<SignedCheckpoint, LedgerError> {
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size: frontier.size(),
        root: frontier.root(),
        extensions: Vec::new(),
    };
    let note =
        sign_checkpoint(&checkpoint, signers).map_err(|e| LedgerError::Key(e.to_string()))?;
    Ok(SignedCheckpoint { checkpoint, note })
}

/// Stages every part of `request`, or none of them.
fn stage_request(
    pending: &mut Pending<'_>,
    request: &Request,
    now: DateTime<Utc>,
    keys: &Mutex<Keyring>,
) -> Outcome {
    match try_stage(pending, request, now, keys) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(e),
    }
}

fn try_stage(
    pending: &mut Pending<'_>,
    request: &Request,
    now: DateTime<Utc>,
    keys: &Mutex<Keyring>,
) -> Result<Outcome, LedgerError> {
    request.validate()?;
    if let Some(previous) = pending.idempotency(request.actor, request.key.as_str())? {
        let entries = (previous.first_seq..previous.first_seq + u64::from(previous.parts))
            .map(|seq| {
                pending
                    .entry(seq)?
                    .ok_or_else(|| LedgerError::Corrupt(format!("entry {seq} is missing")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let same = entries.len() == request.intents.len()
            && entries
                .iter()
                .zip(&request.intents)
                .all(|(e, intent)| e.body.fulfils(intent, e.recorded.date_naive()));
        return if same {
            Ok(Outcome::Replayed(entries))
        } else {
            Err(LedgerError::IdempotencyConflict {
                key: request.key.as_str().to_owned(),
            })
        };
    }
    let savepoint = pending.savepoint();
    let first = pending.next_seq();
    for (part, intent) in request.intents.iter().enumerate() {
        let result =
            entry_for(pending, request, part, intent, now, keys).and_then(|entry| match entry {
                Ok(entry) => pending.stage(entry),
                Err(violation) => Ok(Err(violation)),
            });
        let violation = match result {
            Ok(Ok(())) => continue,
            Ok(Err(violation)) => LedgerError::Rejected { part, violation },
            Err(e) => e,
        };
        pending.rollback(savepoint);
        return Err(violation);
    }
    Ok(Outcome::Staged(first..pending.next_seq()))
}

/// Builds the entry for one part of a request: the ledger assigns ids, time and place.
fn entry_for(
    pending: &Pending<'_>,
    request: &Request,
    part: usize,
    intent: &Intent,
    now: DateTime<Utc>,
    keys: &Mutex<Keyring>,
) -> Result<Result<Entry, RuleViolation>, LedgerError> {
    let today = now.date_naive();
    let body = match intent {
        Intent::Open {
            account_kind,
            owner,
        } => EntryBody::Open {
            account: AccountId::new(),
            account_kind: *account_kind,
            owner: *owner,
        },
        Intent::Close { account } => EntryBody::Close { account: *account },
        Intent::RotateKey { vkey } => EntryBody::Key(lock(keys).endorse(vkey)?),
        Intent::Transfer(t) => EntryBody::Move(Movement::new(
            t.kind,
            t.debit,
            t.credit,
            t.minutes,
            t.effective.unwrap_or(today),
            None,
            t.details.clone(),
        )?),
        Intent::Reverse { entry, reference } => {
            let original = match pending.entry(*entry)? {
                None => return Ok(Err(RuleViolation::UnknownEntry(*entry))),
                Some(Entry {
                    body: EntryBody::Move(m),
                    ..
                }) => m,
                Some(_) => return Ok(Err(RuleViolation::NotReversible(*entry))),
            };
            EntryBody::Move(Movement::reversal_of(
                &original,
                *entry,
                today,
                reference.clone(),
            ))
        }
    };
    Ok(Ok(Entry {
        seq: pending.next_seq(),
        id: Uuid::now_v7(),
        recorded: now,
        actor: request.actor,
        key: request.key.clone(),
        part: u32::try_from(part).expect("parts are bounded by Intent::MAX_PARTS"),
        body,
    }))
}
