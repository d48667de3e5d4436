//! The single writer: the only code that appends to the ledger.
//!
//! Requests arrive on a queue. The writer takes every request waiting (up to a bound), stages them
//! one after the other against the committed state plus what the batch already staged, writes all
//! new entries to the journal with **one** `fdatasync`, signs **one** checkpoint over them, and
//! only then answers every caller. Batches grow with load (group commit): under light load a
//! batch is one request, under heavy load hundreds share a sync. Because one thread decides every
//! balance change in order, there is no lost update and no double spend, by construction.
//!
//! # A batch's life
//! A batch has one name at each stage, for its type, its variables and in comments alike:
//!
//! | stage    | type | what it is | made by |
//! |----------|------|------------|---------|
//! | queued   | [`Job`] | a [`Request`] and the channel its answer goes back on, waiting in the queue | the caller |
//! | staged   | [`Staged`] | every request of the batch decided in a [`Pending`] overlay, each with its [`Outcome`]: the new entries with their bytes, and the state they change; in memory only | the stager |
//! | sealed   | [`Sealed`] | the staged entries written to the journal and synced, added to the Merkle tree and covered by a signed checkpoint ([`Unsealed`] says why not) | the stager |
//! | decided  | [`Decided`] | a staged batch, sealed or not, with its jobs, handed to the applier | the stager |
//! | answered | — | every job replied to, in order (readers already wait for the batch: [`Progress`] counted it as answered when it was sealed) | the applier |
//! | applied  | [`StateBatch`] | the sealed batches waiting ([`Unapplied`]) written to sled as one state batch by [`Store::commit`] | the applier |
//!
//! # Two stages
//! The work is split between two threads so that the stager's cycle, which bounds throughput,
//! holds only what must be serial: deciding, and making the decisions durable and signed.
//!
//! - the **stager** takes requests, decides them (the only thread that does), writes the new
//!   entries to the journal, syncs it, extends the Merkle tree and signs the batch's checkpoint.
//!   The batch is then *sealed*: durable and signed.
//! - the **applier** answers the callers of each sealed batch, in order, then applies the
//!   batches to the sled state; when several are waiting it applies them together as one state
//!   batch, which writes each account moved in any of them once.
//!
//! Sealed batches stay in memory until they are applied. The stager decides each new batch over
//! them (see [`Pending::over`]), so it sees exactly the state it would see once they are applied;
//! readers wait, through [`Progress::wait_applied`], until every answered batch is applied, so a
//! caller that reads after its answer sees its write. At most [`MAX_SEALED`] batches wait; past
//! that, the stager waits for the applier. After a storage failure in either stage, both stop
//! taking writes, and readers still waiting for a batch learn the ledger is unavailable; the
//! journal holds every answered entry, and the next start applies them.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError, SendError};
use timecredits_domain::entry::truncate_to_micros;
use timecredits_domain::{AccountId, Entry, EntryBody, Intent, Movement, RuleViolation};
use timecredits_tlog::checkpoint::{sign_checkpoint, Checkpoint};
use timecredits_tlog::merkle::{Frontier, Hash};
use timecredits_tlog::note::NoteSigner;
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::{Journal, JournalError, JournalReader, RecordPos};
use crate::keys::Keyring;
use crate::observer::{Observer, SealedBatch};
use crate::pending::{Pending, Staged};
use crate::signed::{SignedTree, RECORD_EVERY};
use crate::store::{StateBatch, Store};
use crate::{Committed, Request, SignedCheckpoint};

/// Decided batches that may wait for the applier before the stager waits too.
pub const MAX_SEALED: usize = 16;

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
    /// Shared with the readers.
    pub progress: Arc<Progress>,
    /// The record of the latest checkpoint signed, kept up to date by the applier.
    pub signed_tree: SignedTree,
    /// Told about each sealed batch.
    pub observer: Option<Observer>,
    /// Stamps each batch's entries.
    pub clock: crate::ledger::Clock,
}

/// How far the writer has got, shared with readers, who must not see a state older than an
/// answer already given.
pub struct Progress {
    /// The tree size of the last batch answered.
    answered: AtomicU64,
    /// The tree size the store holds.
    applied: AtomicU64,
    /// Why writes stopped, after a storage failure in either stage.
    halted: Mutex<Option<String>>,
    /// Whether the last batch found the journal's disk full (writes are tried again with each
    /// batch, so this clears by itself once there is room).
    full: std::sync::atomic::AtomicBool,
    /// Signalled when `applied` grows or writes stop.
    changed: Condvar,
}

impl Progress {
    /// The progress of a writer starting on a store that holds `size` entries.
    pub fn new(size: u64) -> Self {
        Progress {
            answered: AtomicU64::new(size),
            applied: AtomicU64::new(size),
            halted: Mutex::new(None),
            full: std::sync::atomic::AtomicBool::new(false),
            changed: Condvar::new(),
        }
    }

    /// Waits until the store holds every entry answered so far (at once when it does, as it
    /// always does without writes under way). Fails when writes stopped before that.
    pub fn wait_applied(&self) -> Result<(), LedgerError> {
        let target = self.answered.load(Ordering::Acquire);
        if self.applied.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let mut halted = self.lock();
        loop {
            // Checked under the lock the applier takes to signal: no wake-up is missed.
            if self.applied.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            if let Some(reason) = &*halted {
                return Err(LedgerError::Unavailable(reason.clone()));
            }
            halted = self
                .changed
                .wait(halted)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Entries answered but not yet in the store: the applier's lag.
    pub fn unapplied(&self) -> u64 {
        let applied = self.applied.load(Ordering::Acquire);
        self.answered
            .load(Ordering::Acquire)
            .saturating_sub(applied)
    }

    fn answering(&self, size: u64) {
        self.answered.store(size, Ordering::Release);
    }

    fn applied(&self, size: u64) {
        self.applied.store(size, Ordering::Release);
        let _signal = self.lock();
        self.changed.notify_all();
    }

    /// Why writes are refused now, if they are: writes stopped, or the last batch found the
    /// journal's disk full.
    pub fn refusing_writes(&self) -> Option<String> {
        if let Some(reason) = self.halted() {
            return Some(reason);
        }
        self.full
            .load(Ordering::Acquire)
            .then(|| LedgerError::StorageFull.to_string())
    }

    fn full(&self, full: bool) {
        self.full.store(full, Ordering::Release);
    }

    fn halted(&self) -> Option<String> {
        self.lock().clone()
    }

    pub(crate) fn halt(&self, reason: &str) {
        self.lock().get_or_insert_with(|| reason.to_owned());
        self.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // Only ever set once, whole, so a panicking holder leaves it consistent.
        self.halted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A batch that is durable and signed, on its way to the store.
struct Sealed {
    staged: Arc<Staged>,
    /// Where its entries are in the journal.
    positions: Vec<RecordPos>,
    /// The stored Merkle hashes each entry added.
    hashes: Vec<Vec<Hash>>,
    /// The checkpoint signed over it, the first to include its entries.
    checkpoint: SignedCheckpoint,
}

/// A decided batch on its way from the stager to the applier, which answers its callers.
struct Decided {
    jobs: Vec<Job>,
    outcomes: Vec<Outcome>,
    /// What the batch staged, with or without new entries.
    staged: Arc<Staged>,
    /// Its new entries, sealed; or why they could not be.
    sealed: Result<Option<Arc<Sealed>>, Unsealed>,
    /// The sealed batches not yet applied when it was staged, then itself: where a repeated
    /// request finds the checkpoint that first covered its entries.
    unapplied: Vec<Arc<Sealed>>,
    /// The latest checkpoint once the batch was decided.
    checkpoint: SignedCheckpoint,
}

/// Why a batch's new entries were not sealed.
#[derive(Clone, Debug)]
enum Unsealed {
    /// Writes have stopped, for this reason.
    Stopped(String),
    /// The journal's disk is full: nothing was written, and the next batch tries again.
    Full,
}

impl Unsealed {
    /// What the callers whose entries were not sealed are told.
    fn error(&self) -> LedgerError {
        match self {
            Unsealed::Stopped(reason) => LedgerError::Unavailable(reason.clone()),
            Unsealed::Full => LedgerError::StorageFull,
        }
    }
}

/// The sealed batches not yet applied, oldest first, shared by the two stages.
#[derive(Default)]
struct Unapplied(Mutex<VecDeque<Arc<Sealed>>>);

impl Unapplied {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Sealed>>> {
        // Only ever pushed and popped whole, so a panicking holder leaves it consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> Vec<Arc<Sealed>> {
        self.lock().iter().cloned().collect()
    }
}

/// The first stage: deciding requests, making their entries durable, signing.
struct Stager<'w> {
    store: &'w Store,
    journal: &'w mut Journal,
    reader: &'w JournalReader,
    last_recorded: &'w mut DateTime<Utc>,
    frontier: &'w mut Frontier,
    max_batch: usize,
    keys: &'w Mutex<Keyring>,
    origin: &'w str,
    checkpoint: &'w mut SignedCheckpoint,
    unapplied: &'w Unapplied,
    progress: &'w Progress,
    observer: Option<&'w Observer>,
    clock: &'w crate::ledger::Clock,
    /// How long the last batch's journal sync took (for the observer).
    last_sync: Duration,
}

/// The second stage: answering, then applying sealed batches to the store.
struct Applier<'w> {
    store: &'w Store,
    unapplied: &'w Unapplied,
    progress: &'w Progress,
    signed_tree: &'w mut SignedTree,
}

impl Writer {
    fn stages<'w>(&'w mut self, unapplied: &'w Unapplied) -> (Stager<'w>, Applier<'w>) {
        let stager = Stager {
            store: &self.store,
            journal: &mut self.journal,
            reader: &self.reader,
            last_recorded: &mut self.last_recorded,
            frontier: &mut self.frontier,
            max_batch: self.max_batch,
            keys: &self.keys,
            origin: &self.origin,
            checkpoint: &mut self.checkpoint,
            unapplied,
            progress: &self.progress,
            observer: self.observer.as_ref(),
            clock: &self.clock,
            last_sync: Duration::ZERO,
        };
        let applier = Applier {
            store: &self.store,
            unapplied,
            progress: &self.progress,
            signed_tree: &mut self.signed_tree,
        };
        (stager, applier)
    }

    /// Serves the queue until every sender is gone, then answers and applies what is sealed and
    /// flushes the state.
    pub fn run(mut self, rx: Receiver<Job>) {
        let unapplied = &Unapplied::default();
        std::thread::scope(|scope| {
            let (stager, applier) = self.stages(unapplied);
            let progress = stager.progress;
            let (to_applier, decided) = crossbeam_channel::bounded::<Decided>(MAX_SEALED);
            let applying = std::thread::Builder::new()
                .name("ledger-applier".into())
                .spawn_scoped(scope, move || applier.run(&decided));
            if let Err(e) = applying {
                progress.halt(&format!(
                    "the ledger could not start its applier thread: {e}"
                ));
            }
            stager.run(&rx, move |batch| {
                if let Err(SendError(_)) = to_applier.send(batch) {
                    // The batch's callers learn the ledger stopped as their replies are
                    // dropped; its entries are in the journal, and the next start applies them.
                    progress.halt("the ledger's applier thread has stopped");
                }
            });
        });
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "flushing the state at shutdown failed; the next start replays the journal");
        }
        if let Err(e) = self.signed_tree.record(&self.checkpoint) {
            tracing::error!(error = %e, "recording the latest signed checkpoint at shutdown failed");
        }
    }

    /// Stages, seals, answers and applies one batch of jobs on the calling thread.
    pub fn run_batch(&mut self, jobs: Vec<Job>) {
        let unapplied = Unapplied::default();
        let (mut stager, applier) = self.stages(&unapplied);
        if let Some(batch) = stager.stage(jobs) {
            applier.answer_and_apply(vec![batch]);
        }
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
    /// Stages batches from the queue, handing each decided one to `answer`, until every sender
    /// is gone. A batch takes every request waiting, up to `max_batch`: while one batch is
    /// synced, the next one gathers.
    fn run(mut self, rx: &Receiver<Job>, mut answer: impl FnMut(Decided)) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            if let Some(batch) = self.stage(jobs) {
                answer(batch);
            }
        }
    }

    /// Stages a batch over the sealed batches not yet applied, makes its new entries durable and
    /// signs its checkpoint. Returns the decided batch for the applier to answer, or `None` when
    /// writes have stopped (the jobs are then answered already).
    fn stage(&mut self, jobs: Vec<Job>) -> Option<Decided> {
        if let Some(reason) = self.progress.halted() {
            refuse(jobs, &reason);
            return None;
        }
        let now = truncate_to_micros(self.clock.now()).max(*self.last_recorded);
        let mut unapplied = self.unapplied.snapshot();
        let mut pending = Pending::new(self.store, self.reader, self.frontier.size())
            .over(unapplied.iter().map(|s| Arc::clone(&s.staged)).collect());
        let outcomes: Vec<Outcome> = jobs
            .iter()
            .map(|job| stage_request(&mut pending, &job.request, now, self.keys))
            .collect();
        let staged = Arc::new(pending.finish());
        let sealed = if staged.entries().is_empty() {
            Ok(None)
        } else {
            self.seal(&staged, now).map(Some)
        };
        match &sealed {
            Err(Unsealed::Stopped(reason)) => self.progress.halt(reason),
            Err(Unsealed::Full) => self.progress.full(true),
            Ok(Some(batch)) => {
                self.progress.full(false);
                unapplied.push(Arc::clone(batch));
                if let Some(observer) = self.observer {
                    observer.0.sealed(&SealedBatch {
                        requests: jobs.len(),
                        entries: staged.entries().len(),
                        sync: self.last_sync,
                    });
                }
            }
            Ok(None) => {}
        }
        Some(Decided {
            jobs,
            outcomes,
            staged,
            sealed,
            unapplied,
            checkpoint: self.checkpoint.clone(),
        })
    }

    /// Makes the batch durable and signs a checkpoint over it. A full disk that left the journal
    /// as it was refuses only this batch; any other failure stops all writes: the callers learn
    /// the outcome is unknown, and a restart recovers from the journal.
    fn seal(&mut self, staged: &Arc<Staged>, now: DateTime<Utc>) -> Result<Arc<Sealed>, Unsealed> {
        let result = (|| -> Result<Arc<Sealed>, LedgerError> {
            let payloads: Vec<&[u8]> = staged.entries().iter().map(|(_, b)| b.as_slice()).collect();
            let positions = self.journal.append(&payloads)?;
            let sync_started = Instant::now();
            self.journal.sync()?;
            self.last_sync = sync_started.elapsed();
            let hashes = staged.extend(self.frontier);
            let mut keys = lock(self.keys);
            for (entry, _) in staged.entries() {
                if let EntryBody::Key(rotation) = &entry.body {
                    keys.rotate(rotation.vkey(), entry.recorded)?;
                }
            }
            let checkpoint = sign(&keys.signers(Utc::now()), self.origin, self.frontier)?;
            Ok(Arc::new(Sealed {
                staged: Arc::clone(staged),
                positions,
                hashes,
                checkpoint,
            }))
        })();
        let sealed = result.map_err(|e| match e {
            LedgerError::Journal(JournalError::NotAppended(io))
                if io.kind() == std::io::ErrorKind::StorageFull =>
            {
                tracing::warn!("the journal's disk is full: a batch was refused, nothing written");
                Unsealed::Full
            }
            e => {
                tracing::error!(error = %e, "writing a batch failed; the ledger stops taking writes");
                Unsealed::Stopped(stopped_by(&e))
            }
        })?;
        *self.last_recorded = now;
        *self.checkpoint = sealed.checkpoint.clone();
        self.unapplied.lock().push_back(Arc::clone(&sealed));
        self.progress.answering(staged.end());
        Ok(sealed)
    }
}

/// The answer to a request whose entries are `range` of a batch signed by `checkpoint`.
fn committed(staged: &Staged, range: Range<u64>, checkpoint: &SignedCheckpoint) -> Committed {
    let entries = staged.entries();
    let from = (range.start - staged.base()) as usize;
    let to = (range.end - staged.base()) as usize;
    Committed {
        entries: entries[from..to].iter().map(|(e, _)| e.clone()).collect(),
        checkpoint: checkpoint.clone(),
        replayed: false,
    }
}

/// Why writes stopped after `e`.
fn stopped_by(e: &dyn std::fmt::Display) -> String {
    format!("a commit failed and the ledger stopped taking writes until restarted: {e}")
}

impl Applier<'_> {
    /// Answers and applies decided batches as they come, all of those waiting at once.
    /// The latest checkpoint is recorded in `signed-tree` now and then while batches come, and
    /// once they pause for [`RECORD_EVERY`]: so the file never lags a quiet ledger (a backup of
    /// an idle service cuts at a signed checkpoint), and costs no write per batch under load.
    fn run(self, decided: &Receiver<Decided>) {
        let mut unrecorded: Option<SignedCheckpoint> = None;
        loop {
            let first = match decided.recv_timeout(RECORD_EVERY) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(checkpoint) = unrecorded.take() {
                        if !self.signed_tree.record_now_and_then(&checkpoint) {
                            unrecorded = Some(checkpoint);
                        }
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batches = vec![first];
            batches.extend(decided.try_iter());
            let latest = batches.last().map(|b| b.checkpoint.clone());
            self.answer_and_apply(batches);
            if let Some(checkpoint) = latest {
                let recorded = self.signed_tree.record_now_and_then(&checkpoint);
                unrecorded = (!recorded).then_some(checkpoint);
            }
        }
    }

    /// Answers the callers of consecutive decided batches, in order, then applies their new
    /// entries to the store.
    fn answer_and_apply(&self, batches: Vec<Decided>) {
        let sealed: Vec<Arc<Sealed>> = batches
            .iter()
            .filter_map(|b| b.sealed.as_ref().ok().cloned().flatten())
            .collect();
        for batch in batches {
            self.answer(batch);
        }
        if !sealed.is_empty() {
            self.apply(&sealed);
        }
    }

    fn answer(&self, batch: Decided) {
        let Decided {
            jobs,
            outcomes,
            staged,
            sealed,
            unapplied,
            checkpoint,
        } = batch;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let answer = match (&sealed, outcome) {
                (_, Outcome::Failed(e)) => Err(e),
                (Err(unsealed), Outcome::Staged(_)) => Err(unsealed.error()),
                // A repeat of a request staged earlier in this batch failed with it.
                (Err(unsealed), Outcome::Replayed(entries))
                    if entries.iter().any(|e| e.seq >= staged.base()) =>
                {
                    Err(unsealed.error())
                }
                (_, Outcome::Staged(range)) => Ok(committed(&staged, range, &checkpoint)),
                (_, Outcome::Replayed(entries)) => self.replay(entries, &unapplied, &checkpoint),
            };
            // A caller that gave up waiting has dropped its receiver; the entry stands anyway.
            let _ = job.reply.send(answer);
        }
    }

    /// The answer to a repeated request: its entries and the checkpoint that first covered them,
    /// so the repeat gets the same answer as the original. `unapplied` are the batches not
    /// applied when the repeat was staged, and its own; `latest` the latest checkpoint then.
    fn replay(
        &self,
        entries: Vec<Entry>,
        unapplied: &[Arc<Sealed>],
        latest: &SignedCheckpoint,
    ) -> Result<Committed, LedgerError> {
        let last = entries.last().map_or(0, |e| e.seq);
        let unapplied_from = unapplied.first().map_or(u64::MAX, |s| s.staged.base());
        let checkpoint = if last >= unapplied_from {
            // The first batch signed after the entry is the one that holds it.
            unapplied
                .iter()
                .find(|s| s.checkpoint.checkpoint.size > last)
                .map_or_else(|| latest.clone(), |s| s.checkpoint.clone())
        } else {
            match self.store.checkpoint_covering(last)? {
                Some(note) => SignedCheckpoint::from_stored(note)?,
                None => latest.clone(),
            }
        };
        Ok(Committed {
            entries,
            checkpoint,
            replayed: true,
        })
    }

    /// Applies consecutive sealed batches to the store as one state batch. A failure stops
    /// all writes (the entries are in the journal, and a restart applies them).
    fn apply(&self, batches: &[Arc<Sealed>]) {
        if self.progress.halted().is_some() {
            // After a failure to apply an earlier batch, a later one cannot be applied.
            return;
        }
        let result = (|| -> Result<(), LedgerError> {
            let mut state = StateBatch::default();
            for sealed in batches {
                sealed
                    .staged
                    .add_to(&mut state, self.store, &sealed.positions, &sealed.hashes)?;
                let checkpoint = &sealed.checkpoint;
                state.put_checkpoint(checkpoint.checkpoint.size, &checkpoint.note);
            }
            self.store.commit(state)
        })();
        match result {
            Ok(()) => {
                let mut unapplied = self.unapplied.lock();
                for sealed in batches {
                    let applied = unapplied.pop_front();
                    debug_assert!(
                        applied.is_some_and(|a| Arc::ptr_eq(&a, sealed)),
                        "batches are applied in the order they were sealed"
                    );
                }
                drop(unapplied);
                let size = batches.last().map_or(0, |s| s.staged.end());
                self.progress.applied(size);
            }
            Err(e) => {
                tracing::error!(error = %e, "applying a batch failed; the ledger stops taking writes");
                self.progress.halt(&stopped_by(&e));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wait_in_thread(p: &Arc<Progress>) -> std::thread::JoinHandle<Result<(), LedgerError>> {
        let p = Arc::clone(p);
        std::thread::spawn(move || p.wait_applied())
    }

    fn still_waiting(waiter: &std::thread::JoinHandle<Result<(), LedgerError>>) -> bool {
        std::thread::sleep(Duration::from_millis(50));
        !waiter.is_finished()
    }

    #[test]
    fn a_read_waits_for_every_answered_batch_and_learns_when_writes_stop() {
        let p = Arc::new(Progress::new(5));
        p.wait_applied().expect("nothing answered is unapplied");
        p.answering(8);
        let waiter = wait_in_thread(&p);
        assert!(still_waiting(&waiter));
        p.applied(7);
        assert!(
            still_waiting(&waiter),
            "one answered batch is still unapplied"
        );
        p.applied(8);
        waiter.join().unwrap().expect("applied");

        p.answering(9);
        let waiter = wait_in_thread(&p);
        assert!(still_waiting(&waiter));
        p.halt("the disk is full");
        assert!(matches!(
            waiter.join().unwrap(),
            Err(LedgerError::Unavailable(reason)) if reason == "the disk is full"
        ));
    }
}
