//! The single writer: the only code that appends to the ledger.
//!
//! Requests arrive on a queue. The writer takes every request waiting (up to a bound), stages them
//! one after the other against the committed state plus what the batch already staged, writes all
//! new entries to the journal with **one** `fdatasync`, applies the derived state to sled in one
//! atomic batch, signs **one** checkpoint, and only then answers every caller. Batches grow with
//! load (group commit): under light load a batch is one request, under heavy load hundreds share a
//! sync. Because one thread decides every balance change in order, there is no lost update and no
//! double spend, by construction.

use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crossbeam_channel::Receiver;
use timecredits_domain::entry::truncate_to_micros;
use timecredits_domain::{AccountId, Entry, EntryBody, Intent, Movement, RuleViolation};
use timecredits_tlog::checkpoint::{sign_checkpoint, Checkpoint};
use timecredits_tlog::merkle::Frontier;
use timecredits_tlog::note::NoteSigner;
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::{Journal, JournalReader};
use crate::pending::Pending;
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

/// The writer's state. Owned by the writer thread.
pub struct Writer {
    pub store: Store,
    pub journal: Journal,
    pub reader: Arc<JournalReader>,
    pub frontier: Frontier,
    pub signer: NoteSigner,
    pub origin: String,
    pub last_recorded: DateTime<Utc>,
    pub checkpoint: SignedCheckpoint,
    pub max_batch: usize,
    /// Set after a storage failure: the on-disk state is unknown, so no further write is taken.
    pub poisoned: Option<String>,
}

impl Writer {
    /// Serves the queue until every sender is gone, then flushes the state.
    pub fn run(mut self, rx: Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.run_batch(jobs);
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "flushing the state at shutdown failed; the next start replays the journal");
        }
    }

    /// Stages, commits and answers one batch of jobs.
    pub fn run_batch(&mut self, jobs: Vec<Job>) {
        if let Some(reason) = &self.poisoned {
            for job in jobs {
                let _ = job
                    .reply
                    .send(Err(LedgerError::Unavailable(reason.clone())));
            }
            return;
        }
        let now = truncate_to_micros(Utc::now()).max(self.last_recorded);
        let base = self.frontier.size();
        // The overlay reads through its own handles, so the writer stays free to commit it.
        let (store, reader) = (self.store.clone(), Arc::clone(&self.reader));
        let mut pending = Pending::new(&store, &reader, base);
        let outcomes: Vec<Outcome> = jobs
            .iter()
            .map(|job| stage_request(&mut pending, &job.request, now))
            .collect();
        let entries: Vec<Entry> = pending.entries().iter().map(|(e, _)| e.clone()).collect();
        let committed = if entries.is_empty() {
            Ok(())
        } else {
            self.commit(pending, now)
        };
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let answer = match (&committed, outcome) {
                (Err(e), Outcome::Staged(_)) => Err(LedgerError::Unavailable(e.clone())),
                // A repeat of a request staged earlier in this failed batch failed with it.
                (Err(e), Outcome::Replayed(entries)) if entries.iter().any(|x| x.seq >= base) => {
                    Err(LedgerError::Unavailable(e.clone()))
                }
                (_, Outcome::Failed(e)) => Err(e),
                (_, Outcome::Staged(range)) => Ok(self.answer(&entries, range)),
                (_, Outcome::Replayed(entries)) => self.replay(entries),
            };
            // A caller that gave up waiting has dropped its receiver; the entry stands anyway.
            let _ = job.reply.send(answer);
        }
    }

    fn answer(&self, batch: &[Entry], range: Range<u64>) -> Committed {
        let base = batch.first().map_or(0, |e| e.seq);
        let slice = &batch[(range.start - base) as usize..(range.end - base) as usize];
        Committed {
            entries: slice.to_vec(),
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

    /// Makes the staged entries durable, applies them to the state and signs a checkpoint.
    /// Any failure poisons the writer: the caller learns the outcome is unknown, and a restart
    /// recovers from the journal.
    fn commit(&mut self, pending: Pending<'_>, now: DateTime<Utc>) -> Result<(), String> {
        let result = (|| -> Result<(), LedgerError> {
            let payloads: Vec<&[u8]> = pending
                .entries()
                .iter()
                .map(|(_, b)| b.as_slice())
                .collect();
            let positions = self.journal.append(&payloads)?;
            self.journal.sync()?;
            let mut batch = pending.into_state_batch(&positions, &mut self.frontier);
            let signed = sign(&self.signer, &self.origin, &self.frontier)?;
            batch.put_checkpoint(signed.checkpoint.size, &signed.note);
            self.store.commit(batch)?;
            self.checkpoint = signed;
            self.last_recorded = now;
            Ok(())
        })();
        result.map_err(|e| {
            let reason = format!(
                "a commit failed and the ledger stopped taking writes until restarted: {e}"
            );
            tracing::error!(error = %e, "commit failed; writer poisoned");
            self.poisoned = Some(reason.clone());
            reason
        })
    }
}

/// Signs a checkpoint for the frontier's current tree.
pub fn sign(
    signer: &NoteSigner,
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
        sign_checkpoint(&checkpoint, &[signer]).map_err(|e| LedgerError::Key(e.to_string()))?;
    Ok(SignedCheckpoint { checkpoint, note })
}

/// Stages every part of `request`, or none of them.
fn stage_request(pending: &mut Pending<'_>, request: &Request, now: DateTime<Utc>) -> Outcome {
    match try_stage(pending, request, now) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(e),
    }
}

fn try_stage(
    pending: &mut Pending<'_>,
    request: &Request,
    now: DateTime<Utc>,
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
        let result = entry_for(pending, request, part, intent, now).and_then(|entry| match entry {
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
