//! The ledger handle: opening a data directory, submitting requests, reading state and proofs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use crossbeam_channel::Sender;
use timecredits_domain::{
    AccountId, AccountState, AccountStatus, Entry, EntryBody, EntryKind, IdempotencyKey, Intent,
};
use timecredits_tlog::checkpoint::{unverified_checkpoint, Checkpoint};
use timecredits_tlog::merkle::{self, Hash};
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::{Journal, JournalReader};
use crate::keys::{self, Keyring};
use crate::pending::read_entry;
use crate::recovery;
use crate::signed::SignedTree;
use crate::store::Store;
use crate::writer::{self, Job, Progress, Writer};

/// File names inside a data directory.
pub mod layout {
    /// The append-only journal of entry records.
    pub const JOURNAL: &str = "journal";
    /// The sled database of derived state.
    pub const STATE: &str = "state";
    /// The ed25519 signing key, PKCS#8 PEM, mode 0600.
    pub const SIGNING_KEY: &str = "signing-key.pem";
    /// The key before the last rotation (see [`crate::keys`]).
    pub const PREVIOUS_SIGNING_KEY: &str = "signing-key.previous.pem";
    /// The new key of a rotation under way (see [`crate::keys`]).
    pub const NEXT_SIGNING_KEY: &str = "signing-key.next.pem";
    /// The checkpoint origin, one line, written when the ledger is created. It lives beside the
    /// journal (not in the rebuildable state) so that a rebuild cannot change it.
    pub const ORIGIN: &str = "origin";
    /// The latest checkpoint the ledger signed (see [`crate::signed`]).
    pub const SIGNED_TREE: &str = "signed-tree";
}

/// Settings of a ledger.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// The checkpoint origin (and signing key name), e.g. `example.org/timecredits`. Fixed when
    /// the data directory is created.
    pub origin: String,
    /// Memory sled may use for its cache, in bytes.
    pub cache_bytes: u64,
    /// The most requests one group commit takes from the queue.
    pub max_batch: usize,
    /// Requests that may wait in the queue (back-pressure): beyond it, `submit` is refused with
    /// [`LedgerError::Busy`] and `submit_blocking` waits.
    pub queue_capacity: usize,
    /// How long after a key rotation the previous key still signs checkpoints beside the new
    /// one.
    pub key_overlap: TimeDelta,
    /// Told about every sealed batch (the service's metrics); none by default.
    pub observer: Option<crate::observer::Observer>,
    /// The clock that stamps every entry's `recorded` time (never below the last entry's): the
    /// system's, except in tests that need months to pass (an expiry is due only after months
    /// without use).
    pub clock: Clock,
}

/// Where the writer reads the time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock(Arc::new(Utc::now))
    }

    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            origin: "localhost/timecredits".into(),
            cache_bytes: 256 << 20,
            max_batch: 1024,
            queue_capacity: 16 * 1024,
            key_overlap: TimeDelta::days(30),
            observer: None,
            clock: Clock::system(),
        }
    }
}

/// One atomic request: its parts commit together or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The partner, administrator or member on whose behalf the request is made. Idempotency keys
    /// are scoped to it.
    pub actor: Uuid,
    /// The client's idempotency key.
    pub key: IdempotencyKey,
    /// The parts, in order.
    pub intents: Vec<Intent>,
}

impl Request {
    /// A request of one part.
    pub fn single(actor: Uuid, key: IdempotencyKey, intent: Intent) -> Self {
        Request {
            actor,
            key,
            intents: vec![intent],
        }
    }

    /// Checks what can be checked without the ledger's state.
    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.intents.is_empty() || self.intents.len() > Intent::MAX_PARTS {
            return Err(timecredits_domain::ValidationError::BadPartCount.into());
        }
        for intent in &self.intents {
            intent.validate()?;
        }
        Ok(())
    }
}

/// A checkpoint and its signed-note text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint itself: origin, tree size and root.
    pub checkpoint: Checkpoint,
    /// The C2SP signed note: checkpoint text, blank line, signature line(s).
    pub note: String,
}

impl SignedCheckpoint {
    /// Reads back a note this ledger stored after signing it. The signature is not checked
    /// again: the note never left the ledger's own state, and readers verify it themselves.
    pub(crate) fn from_stored(note: String) -> Result<SignedCheckpoint, LedgerError> {
        let checkpoint = unverified_checkpoint(&note)
            .map_err(|e| LedgerError::Corrupt(format!("stored checkpoint is malformed: {e}")))?;
        Ok(SignedCheckpoint { checkpoint, note })
    }
}

/// The answer to a committed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The request's entries, one per part.
    pub entries: Vec<Entry>,
    /// A signed checkpoint whose tree includes every one of them.
    pub checkpoint: SignedCheckpoint,
    /// True when the request had been committed before and nothing new was written.
    pub replayed: bool,
}

/// Which entries of an account's history to return.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    /// Continue below this sequence number (the cursor of the previous page).
    pub before: Option<u64>,
    /// Page size (1 to [`HistoryQuery::MAX_LIMIT`]).
    pub limit: usize,
    /// Only these kinds (all when empty).
    pub kinds: Vec<EntryKind>,
    /// Only entries on or after this day (effective date of movements).
    pub from: Option<NaiveDate>,
    /// Only entries on or before this day.
    pub to: Option<NaiveDate>,
}

impl HistoryQuery {
    /// The largest page.
    pub const MAX_LIMIT: usize = 500;
    /// The most index rows one page looks at, so a very selective filter cannot make one request
    /// scan a whole history: the page then ends early with a cursor to continue from.
    pub const MAX_SCAN: usize = 10_000;
}

/// One page of an account's history, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    /// The entries of this page, newest first.
    pub entries: Vec<Entry>,
    /// Where the next page starts, when there may be more.
    pub next: Option<u64>,
}

struct Shared {
    dir: PathBuf,
    store: Store,
    journal: JournalReader,
    keys: Arc<Mutex<Keyring>>,
    origin: String,
    programme: AccountId,
    /// How far the writer has got: reads wait until the store holds every answered entry.
    progress: Arc<Progress>,
}

/// An open ledger. Dropping it stops the writer after the queued requests and flushes the state.
pub struct Ledger {
    shared: Arc<Shared>,
    queue: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("origin", &self.shared.origin)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens the ledger in `dir`, creating it (with a new signing key) if it does not exist.
    ///
    /// Opening replays only the journal records the state has not applied (at most about a second
    /// of writes after a crash), so it is fast whatever the ledger's size. If the sled state cannot
    /// be opened at all, it is moved aside and rebuilt from the journal. The steps, and what each
    /// checks, are in the `recovery` module.
    ///
    /// A ledger's whole life in brief: created, a request committed once (and its repeat answered
    /// from the first), closed, and opened again with the entry still there.
    ///
    /// ```
    /// use timecredits_domain::{AccountKind, IdempotencyKey, Intent};
    /// use timecredits_ledger::{Ledger, LedgerConfig, Request};
    /// use uuid::Uuid;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let config = LedgerConfig { origin: "credits.example.org/tc".into(), ..LedgerConfig::default() };
    /// let ledger = Ledger::open(dir.path(), config.clone())?;
    /// let partner = Uuid::now_v7();
    /// let open = Intent::Open { account_kind: AccountKind::Venue, owner: Some(partner) };
    /// let request = Request::single(partner, IdempotencyKey::new("open-venue-1")?, open);
    /// let first = ledger.submit_blocking(request.clone())?;
    /// let again = ledger.submit_blocking(request)?; // the same key: answered, not repeated
    /// assert!(again.replayed && again.entries == first.entries);
    /// let size = ledger.size()?;
    /// drop(ledger);
    ///
    /// let reopened = Ledger::open(dir.path(), config)?;
    /// assert_eq!(reopened.size()?, size);
    /// assert_eq!(reopened.entry(first.entries[0].seq)?, Some(first.entries[0].clone()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: &Path, config: LedgerConfig) -> Result<Ledger, LedgerError> {
        // The steps of "Recovery at open" in ARCHITECTURE.md, in its order and by its names.
        recovery::check_identity(dir, &config.origin)?;
        let store = recovery::open_or_rebuild_state(dir, config.cache_bytes)?;
        let (size, applied_end) = store.applied()?;
        let (journal, tail) = Journal::open(&dir.join(layout::JOURNAL), applied_end)?;
        let reader = journal.reader()?;
        let (mut frontier, mut last_recorded) =
            recovery::check_last_entry(&store, &reader, size, applied_end)?;
        recovery::replay_tail(&store, &reader, &mut frontier, tail, &mut last_recorded)?;
        let keys = recovery::load_keyring(dir, &config, &store, &reader)?;
        let mut signed_tree = SignedTree::new(dir);
        recovery::check_signed_tree(&signed_tree, &store, &frontier, &keys)?;
        let checkpoint = recovery::sign_current_tree(
            &store,
            &mut signed_tree,
            &keys,
            &config.origin,
            &frontier,
        )?;
        let shared_reader = journal.reader()?;
        let keys = Arc::new(Mutex::new(keys));
        let progress = Arc::new(Progress::new(frontier.size()));
        let mut writer = Writer {
            store: store.clone(),
            journal,
            reader: Arc::new(reader),
            frontier,
            keys: Arc::clone(&keys),
            origin: config.origin.clone(),
            last_recorded,
            checkpoint,
            max_batch: config.max_batch.max(1),
            progress: Arc::clone(&progress),
            signed_tree,
            observer: config.observer.clone(),
            clock: config.clock.clone(),
        };
        if writer.frontier.size() == 0 {
            recovery::genesis(&mut writer)?;
        }
        let programme = recovery::programme_account(&store, &writer.reader)?;
        let (queue, handle) = recovery::start_writer(writer, config.queue_capacity)?;
        Ok(Ledger {
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                store,
                journal: shared_reader,
                keys,
                origin: config.origin,
                programme,
                progress,
            }),
            queue: Some(queue),
            writer: Some(handle),
        })
    }

    /// Submits a request and waits for it to be durable, applied and covered by a signed
    /// checkpoint.
    ///
    /// When [`LedgerConfig::queue_capacity`] requests are already waiting, the request is refused
    /// at once with [`LedgerError::Busy`] (nothing written; the caller may retry) rather than
    /// blocking the caller's async thread until there is room.
    pub async fn submit(&self, request: Request) -> Result<Committed, LedgerError> {
        self.enqueue(request, false)?.await.map_err(|_| stopped())?
    }

    /// [`Ledger::submit`] for callers outside an async runtime; it waits for room in the queue.
    pub fn submit_blocking(&self, request: Request) -> Result<Committed, LedgerError> {
        self.enqueue(request, true)?
            .blocking_recv()
            .map_err(|_| stopped())?
    }

    /// Queues a request for the writer; `wait` for room in the queue, or refuse when it is full.
    fn enqueue(
        &self,
        request: Request,
        wait: bool,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Committed, LedgerError>>, LedgerError> {
        request.validate()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        let job = Job { request, reply };
        if wait {
            queue.send(job).map_err(|_| stopped())?;
        } else {
            queue.try_send(job).map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(_) => LedgerError::Busy,
                crossbeam_channel::TrySendError::Disconnected(_) => stopped(),
            })?;
        }
        Ok(answer)
    }

    /// Why the ledger refuses writes now, if it does: its writer stopped after a storage
    /// failure (until a restart), or its last batch found the journal's disk full (until there
    /// is room again). For readiness checks.
    pub fn refusing_writes(&self) -> Option<String> {
        self.shared.progress.refusing_writes()
    }

    /// Stops taking writes for `reason` until the ledger is opened again (after a scrub found
    /// damage, say: nothing must be appended after known damage). Reads go on.
    pub fn refuse_writes(&self, reason: &str) {
        self.shared.progress.halt(reason);
    }

    /// The programme's issuance account.
    pub fn programme_account(&self) -> AccountId {
        self.shared.programme
    }

    /// The checkpoint origin.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// The C2SP verifier key of the current signing key: `name+keyid+base64(0x01 || public
    /// key)`.
    pub fn verifier_key(&self) -> String {
        self.keys().vkey()
    }

    /// Every verifier key the ledger has signed checkpoints with, oldest first (see
    /// [`crate::keys`]).
    pub fn verifier_keys(&self) -> Vec<String> {
        self.keys().known().to_vec()
    }

    /// The state, once it holds every entry answered so far: a caller that reads after its
    /// answer sees its write.
    fn store(&self) -> Result<&Store, LedgerError> {
        self.shared.progress.wait_applied()?;
        Ok(&self.shared.store)
    }

    /// The state, for the integrity checks of `crate::check` and the scans of `crate::scan`.
    pub(crate) fn store_for_checks(&self) -> Result<&Store, LedgerError> {
        self.store()
    }

    /// The journal, for the integrity checks of `crate::check` and the scans of `crate::scan`.
    pub(crate) fn journal_for_checks(&self) -> &JournalReader {
        &self.shared.journal
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Keyring> {
        writer::lock(&self.shared.keys)
    }

    /// Hands checkpoint signing over to a new key: writes the key to the data directory, commits
    /// a `key` entry naming it, endorsed by the current key, and makes it current. The
    /// checkpoint in the answer, and every later one, is signed by the new key, and during the
    /// configured overlap also by the previous key. Returns the new key's verifier key and the
    /// committed entry.
    ///
    /// `actor` and `key` make the rotation idempotent like any request: a repeat answers with the
    /// rotation already made (`replayed`) and makes no new key. Blocks until the entry is
    /// committed, like [`Ledger::submit_blocking`]: call it outside an async runtime.
    pub fn rotate_key(
        &self,
        actor: Uuid,
        key: IdempotencyKey,
    ) -> Result<(String, Committed), LedgerError> {
        if let Some(entries) = self.previous_request(actor, &key)? {
            return self.repeated_rotation(entries, &key);
        }
        let vkey = self.keys().prepare(&self.shared.dir)?;
        let request = Request::single(actor, key, Intent::RotateKey { vkey: vkey.clone() });
        match self.submit_blocking(request) {
            Ok(committed) => {
                keys::promote_next(&self.shared.dir)?;
                Ok((vkey, committed))
            }
            Err(e) => {
                // If the entry was committed after all (the answer was lost to a failure), the
                // next open finishes the rotation from the files left in place.
                self.keys().abandon();
                Err(e)
            }
        }
    }

    /// The answer to a repeated rotation request: its `key` entry and the checkpoint that first
    /// covered it (the latest one, if that is no longer stored).
    fn repeated_rotation(
        &self,
        entries: Vec<Entry>,
        key: &IdempotencyKey,
    ) -> Result<(String, Committed), LedgerError> {
        let (seq, vkey) = match entries.as_slice() {
            [entry] => match &entry.body {
                EntryBody::Key(rotation) => (entry.seq, rotation.vkey().to_owned()),
                _ => return Err(conflict(key)),
            },
            _ => return Err(conflict(key)),
        };
        let checkpoint = match self.checkpoint_covering(seq)? {
            Some(checkpoint) => checkpoint,
            None => self.checkpoint()?,
        };
        Ok((
            vkey,
            Committed {
                entries,
                checkpoint,
                replayed: true,
            },
        ))
    }

    /// The `key` entries, in log order: each hands checkpoint signing over to the key it names,
    /// endorsed by the key before it.
    pub fn key_rotations(&self) -> Result<Vec<Entry>, LedgerError> {
        self.store()?
            .key_entries()?
            .into_iter()
            .map(|seq| self.entry(seq)?.ok_or_else(|| missing(seq)))
            .collect()
    }

    /// Requests waiting in the writer's queue (at most [`LedgerConfig::queue_capacity`]).
    pub fn queued(&self) -> usize {
        self.queue.as_ref().map_or(0, Sender::len)
    }

    /// Entries answered but not yet applied to the state: the applier's lag, which reads wait
    /// out (a bounded number of batches).
    pub fn unapplied(&self) -> u64 {
        self.shared.progress.unapplied()
    }

    /// The number of committed entries.
    pub fn size(&self) -> Result<u64, LedgerError> {
        Ok(self.store()?.applied()?.0)
    }

    /// An account's state (balance, kind, status). One keyed read.
    pub fn account(&self, id: AccountId) -> Result<Option<AccountState>, LedgerError> {
        self.store()?.account(id)
    }

    /// An account's state and the sequence number of the newest entry touching it (its
    /// `open`, at least). One keyed read: for lists that show each account's latest activity.
    pub fn account_and_newest(
        &self,
        id: AccountId,
    ) -> Result<Option<(AccountState, u64)>, LedgerError> {
        self.store()?.account_and_newest(id)
    }

    /// An account's status as the state holds it now, without waiting for batches already
    /// answered but not yet applied (about a millisecond behind under load). For checks that
    /// the ledger's own rules make again when it decides a request (is a partner's account
    /// open?), where waiting would hold an HTTP worker on every request.
    pub fn account_status(&self, id: AccountId) -> Result<Option<AccountStatus>, LedgerError> {
        Ok(self.shared.store.account(id)?.map(|a| a.status))
    }

    /// The committed entry at `seq`.
    pub fn entry(&self, seq: u64) -> Result<Option<Entry>, LedgerError> {
        match self.store()?.entry_pos(seq)? {
            Some(pos) => read_entry(&self.shared.journal, pos).map(Some),
            None => Ok(None),
        }
    }

    /// The exact canonical bytes of the committed entry at `seq`, as hashed into the log.
    pub fn entry_bytes(&self, seq: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        match self.store()?.entry_pos(seq)? {
            Some(pos) => Ok(Some(self.shared.journal.read(pos)?)),
            None => Ok(None),
        }
    }

    /// The committed entry with this id.
    pub fn entry_by_id(&self, id: Uuid) -> Result<Option<Entry>, LedgerError> {
        match self.store()?.seq_of(id)? {
            Some(seq) => self.entry(seq),
            None => Ok(None),
        }
    }

    /// The entry that reversed entry `seq`, if any.
    pub fn reversed_by(&self, seq: u64) -> Result<Option<u64>, LedgerError> {
        self.store()?.reversed_by(seq)
    }

    /// A page of an account's history, newest first.
    pub fn history(
        &self,
        account: AccountId,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, LedgerError> {
        let limit = query.limit.clamp(1, HistoryQuery::MAX_LIMIT);
        let mut entries = Vec::with_capacity(limit);
        let mut last_seen = None;
        for (scanned, row) in self.store()?.history(account, query.before).enumerate() {
            let row = row?;
            if entries.len() == limit || scanned == HistoryQuery::MAX_SCAN {
                // There is at least one more row: continue below the last one looked at.
                return Ok(HistoryPage {
                    entries,
                    next: last_seen,
                });
            }
            last_seen = Some(row.seq);
            let kind_ok = query.kinds.is_empty() || query.kinds.contains(&row.kind);
            let from_ok = query.from.is_none_or(|from| row.day >= from);
            let to_ok = query.to.is_none_or(|to| row.day <= to);
            if kind_ok && from_ok && to_ok {
                entries.push(self.entry(row.seq)?.ok_or_else(|| missing(row.seq))?);
            }
        }
        Ok(HistoryPage {
            entries,
            next: None,
        })
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, LedgerError> {
        let note = self
            .store()?
            .checkpoint()?
            .ok_or_else(|| LedgerError::Corrupt("no checkpoint is stored".into()))?;
        SignedCheckpoint::from_stored(note)
    }

    /// The checkpoint signed when the tree had exactly `size` entries. Every committed batch
    /// leaves one; `None` for a size in the middle of a batch (or from before a rebuild of the
    /// state, which keeps only the checkpoint signed at the end of it).
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<SignedCheckpoint>, LedgerError> {
        self.store()?
            .checkpoint_at(size)?
            .map(SignedCheckpoint::from_stored)
            .transpose()
    }

    /// The first stored checkpoint whose tree includes entry `seq`.
    pub fn checkpoint_covering(&self, seq: u64) -> Result<Option<SignedCheckpoint>, LedgerError> {
        self.store()?
            .checkpoint_covering(seq)?
            .map(SignedCheckpoint::from_stored)
            .transpose()
    }

    /// The sizes of the stored checkpoints nearest to `size`: the last below it and the first
    /// above it, to suggest a valid size when there is none at `size`.
    pub fn checkpoint_sizes_around(
        &self,
        size: u64,
    ) -> Result<(Option<u64>, Option<u64>), LedgerError> {
        self.store()?.checkpoint_sizes_around(size)
    }

    /// The entries an earlier request with (actor, key) committed, if there was one.
    pub fn previous_request(
        &self,
        actor: Uuid,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<Entry>>, LedgerError> {
        let Some(record) = self.store()?.idempotency(actor, key.as_str())? else {
            return Ok(None);
        };
        (record.first_seq..record.first_seq + u64::from(record.parts))
            .map(|seq| self.entry(seq)?.ok_or_else(|| missing(seq)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The root hash of the tree of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, LedgerError> {
        self.check_size(size)?;
        merkle::tree_hash(size, self.store()?)
    }

    /// An RFC 6962 inclusion proof of entry `seq` in the tree of size `size`. O(log n) reads.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_size(size)?;
        merkle::prove_record(size, seq, self.store()?)
    }

    /// An RFC 6962 consistency proof that the tree of size `from` is a prefix of the tree of size
    /// `to`. O(log n) reads.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_size(to)?;
        merkle::prove_tree(to, from, self.store()?)
    }

    fn check_size(&self, size: u64) -> Result<(), LedgerError> {
        let current = self.size()?;
        if size > current {
            return Err(LedgerError::Proof(format!(
                "tree size {size} is beyond the current size {current}"
            )));
        }
        Ok(())
    }

    /// Bytes the state and journal occupy on disk.
    pub fn disk_usage(&self, dir: &Path) -> Result<(u64, u64), LedgerError> {
        let journal = std::fs::metadata(dir.join(layout::JOURNAL))?.len();
        Ok((journal, self.store()?.size_on_disk()?))
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and flush.
        self.queue.take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

fn conflict(key: &IdempotencyKey) -> LedgerError {
    LedgerError::IdempotencyConflict {
        key: key.as_str().to_owned(),
    }
}

pub(crate) fn stopped() -> LedgerError {
    LedgerError::Unavailable("the ledger writer has stopped".into())
}

pub(crate) fn missing(seq: u64) -> LedgerError {
    LedgerError::Corrupt(format!("entry {seq} is indexed but missing"))
}
