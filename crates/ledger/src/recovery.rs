//! Opening a ledger: the recovery steps of `Ledger::open`, one function each, named as in
//! ARCHITECTURE.md ("Recovery at open").
//!
//! # Invariants
//! - The steps run in the order `Ledger::open` calls them, and each relies on the ones before it:
//!   the identity before any state or key is made, the state before the journal (whose scan
//!   starts where the state ends), the replay before the keyring (which reads the last `key`
//!   entry), the signed-tree check before anything is signed.
//! - Only genesis appends to the journal (on a new ledger, through the writer); opening the
//!   journal only cuts off a torn tail, which was never acknowledged.
//! - Every failure fails the open: the ledger never serves a state it could not check.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use crossbeam_channel::Sender;
use timecredits_domain::{AccountId, Entry, EntryBody, IdempotencyKey, Intent};
use timecredits_tlog::merkle::{self, stored_hash_index, Frontier, HashReader};
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::JournalReader;
use crate::keys::{self, Keyring};
use crate::ledger::{layout, missing, stopped};
use crate::pending::{read_entry, Pending};
use crate::signed::SignedTree;
use crate::store::{StateBatch, Store};
use crate::writer::{self, Job, Writer};
use crate::{LedgerConfig, Request, SignedCheckpoint};

/// Creates the data directory if needed and checks that it is this ledger's: the configured
/// origin is the one fixed at creation, and an existing ledger still has its signing key.
pub(crate) fn check_identity(dir: &Path, origin: &str) -> Result<(), LedgerError> {
    std::fs::create_dir_all(dir)?;
    let existing = std::fs::metadata(dir.join(layout::JOURNAL)).is_ok_and(|m| m.len() > 0);
    check_origin(dir, origin, existing)?;
    if existing && !dir.join(layout::SIGNING_KEY).exists() {
        // A new key would sign checkpoints no auditor could link to the old ones.
        return Err(LedgerError::Key(format!(
            "{} is missing for an existing ledger; restore it from a backup",
            layout::SIGNING_KEY
        )));
    }
    Ok(())
}

/// Checks the configured origin against the one fixed at creation, or fixes it for a new ledger.
fn check_origin(dir: &Path, configured: &str, existing: bool) -> Result<(), LedgerError> {
    let path = dir.join(layout::ORIGIN);
    match std::fs::read_to_string(&path) {
        Ok(stored) if stored.trim_end_matches('\n') == configured => Ok(()),
        Ok(stored) => Err(LedgerError::OriginMismatch {
            stored: stored.trim_end_matches('\n').to_owned(),
            configured: configured.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !existing => {
            keys::write_private_file(&path, format!("{configured}\n").as_bytes())?;
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LedgerError::Corrupt(format!(
            "{} is missing for an existing ledger; restore it (one line: the origin)",
            path.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Opens the sled state (see [`Store::open`]); if it is unreadable, moves it aside so it is
/// rebuilt from the journal.
pub(crate) fn open_or_rebuild_state(dir: &Path, cache_bytes: u64) -> Result<Store, LedgerError> {
    let path = dir.join(layout::STATE);
    match Store::open(&path, cache_bytes) {
        Ok(store) => Ok(store),
        Err(e) if e.is_unreadable_state() => {
            let aside: PathBuf = dir.join(format!(
                "{}.unreadable-{}",
                layout::STATE,
                Utc::now().timestamp()
            ));
            tracing::error!(error = %e, aside = %aside.display(), "state cannot be opened; rebuilding it from the journal");
            std::fs::rename(&path, &aside)?;
            Ok(Store::open(&path, cache_bytes)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads the frontier of the state's tree of `size` entries, and checks that the state's last
/// entry is the journal record it points to, ending at `applied_end`. Returns the frontier and
/// the last entry's time, which the writer's clock never goes below.
pub(crate) fn check_last_entry(
    store: &Store,
    journal: &JournalReader,
    size: u64,
    applied_end: u64,
) -> Result<(Frontier, DateTime<Utc>), LedgerError> {
    let frontier = Frontier::from_reader(size, store)?;
    if size == 0 {
        return Ok((frontier, DateTime::<Utc>::MIN_UTC));
    }
    let seq = size - 1;
    let pos = store.entry_pos(seq)?.ok_or_else(|| missing(seq))?;
    if pos.end() != applied_end {
        return Err(LedgerError::Corrupt(format!(
            "entry {seq} does not end where the state says"
        )));
    }
    let bytes = journal.read(pos)?;
    let stored = store.read_hashes(&[stored_hash_index(0, seq)])?;
    if stored[0] != merkle::leaf_hash(&bytes) {
        return Err(LedgerError::Corrupt(format!(
            "entry {seq} in the journal does not match its Merkle leaf"
        )));
    }
    let entry =
        Entry::decode(&bytes).map_err(|e| LedgerError::Corrupt(format!("entry {seq}: {e}")))?;
    Ok((frontier, entry.recorded))
}

/// Applies the journal records the state lacks (the tail [`Journal::open`](crate::journal::Journal::open) scanned), through the
/// same staging path as live commits.
pub(crate) fn replay_tail(
    store: &Store,
    reader: &JournalReader,
    frontier: &mut Frontier,
    tail: Vec<(crate::journal::RecordPos, Vec<u8>)>,
    last_recorded: &mut DateTime<Utc>,
) -> Result<(), LedgerError> {
    const CHUNK: usize = 10_000;
    let count = tail.len();
    for chunk in tail.chunks(CHUNK) {
        let mut pending = Pending::new(store, reader, frontier.size());
        for (pos, bytes) in chunk {
            let corrupt = |what: String| {
                LedgerError::Corrupt(format!("journal record at offset {}: {what}", pos.offset))
            };
            let entry = Entry::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
            if entry.seq != pending.next_seq() {
                return Err(corrupt(format!(
                    "sequence {} where {} was expected",
                    entry.seq,
                    pending.next_seq()
                )));
            }
            if entry.recorded < *last_recorded {
                return Err(corrupt("recorded time goes backwards".into()));
            }
            *last_recorded = entry.recorded;
            if let Err(violation) = pending.stage(entry)? {
                return Err(corrupt(format!("breaks a ledger rule: {violation}")));
            }
        }
        let positions: Vec<_> = chunk.iter().map(|(pos, _)| *pos).collect();
        let staged = pending.finish();
        let hashes = staged.extend(frontier);
        let mut batch = StateBatch::default();
        staged.add_to(&mut batch, store, &positions, &hashes)?;
        store.commit(batch)?;
    }
    if count > 0 {
        tracing::info!(
            entries = count,
            "replayed journal records the state had not applied"
        );
    }
    Ok(())
}

/// Loads the signing keys (see [`crate::keys`]), checked against the latest `key` entry.
pub(crate) fn load_keyring(
    dir: &Path,
    config: &LedgerConfig,
    store: &Store,
    reader: &JournalReader,
) -> Result<Keyring, LedgerError> {
    // Rotations are rare: their index is a handful of keys.
    let latest_rotation = match store.key_entries()?.last() {
        Some(&seq) => Some(read_entry(
            reader,
            store.entry_pos(seq)?.ok_or_else(|| missing(seq))?,
        )?),
        None => None,
    };
    let latest_rotation = latest_rotation
        .as_ref()
        .and_then(|entry| match &entry.body {
            EntryBody::Key(rotation) => Some((rotation, entry.recorded)),
            _ => None,
        });
    Keyring::open(dir, &config.origin, latest_rotation, config.key_overlap)
}

/// Refuses a journal, state or signing key that does not hold the latest tree the ledger signed
/// (see [`crate::signed`]): a journal shorter than that tree lost its tail, one whose first
/// entries are another tree was replaced, and a key that did not sign it is not this ledger's.
/// The record is the `signed-tree` file, or for a ledger made before it existed the state's
/// latest checkpoint; a new ledger has neither.
pub(crate) fn check_signed_tree(
    signed_tree: &SignedTree,
    store: &Store,
    frontier: &Frontier,
    keys: &Keyring,
) -> Result<(), LedgerError> {
    let recorded = match signed_tree.read()? {
        Some(recorded) => recorded,
        None => match store.checkpoint()? {
            Some(note) => SignedCheckpoint::from_stored(note)?,
            None => return Ok(()),
        },
    };
    let signed = recorded.checkpoint.size;
    if signed > frontier.size() {
        return Err(LedgerError::LostTail {
            signed,
            journal: frontier.size(),
        });
    }
    if merkle::tree_hash(signed, store)? != recorded.checkpoint.root {
        return Err(LedgerError::Corrupt(format!(
            "the journal's first {signed} entries are not the tree this ledger signed at that \
             size ({}): the journal was replaced or altered; restore it from a backup",
            layout::SIGNED_TREE
        )));
    }
    let verifiers = keys.verifiers();
    if timecredits_tlog::note::open_note(recorded.note.as_bytes(), &verifiers).is_err() {
        return Err(LedgerError::Key(format!(
            "{} is not the key that signed this ledger's checkpoints (the checkpoint of {signed} \
             entries in {}); restore the ledger's own key from a backup",
            layout::SIGNING_KEY,
            layout::SIGNED_TREE
        )));
    }
    Ok(())
}

/// Signs a checkpoint for the current tree, stores it when the state's latest one differs, and
/// records it as the latest signed tree.
pub(crate) fn sign_current_tree(
    store: &Store,
    signed_tree: &mut SignedTree,
    keys: &Keyring,
    origin: &str,
    frontier: &Frontier,
) -> Result<SignedCheckpoint, LedgerError> {
    // Signing is deterministic: an unchanged tree gives the stored note back, and no write.
    let checkpoint = writer::sign(&keys.signers(Utc::now()), origin, frontier)?;
    if store.checkpoint()?.as_deref() != Some(checkpoint.note.as_str()) {
        let mut batch = StateBatch::default();
        batch.put_checkpoint(checkpoint.checkpoint.size, &checkpoint.note);
        store.commit(batch)?;
    }
    signed_tree.record(&checkpoint)?;
    Ok(checkpoint)
}

/// Commits entry 0, which opens the programme account.
pub(crate) fn genesis(writer: &mut Writer) -> Result<(), LedgerError> {
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    let request = Request::single(
        Uuid::nil(),
        IdempotencyKey::new("genesis").expect("valid key"),
        Intent::Open {
            account_kind: timecredits_domain::AccountKind::Programme,
            owner: None,
        },
    );
    writer.run_batch(vec![Job { request, reply }]);
    answer.try_recv().map_err(|_| stopped())?.map(drop)
}

/// The programme's issuance account, which entry 0 opens.
pub(crate) fn programme_account(
    store: &Store,
    reader: &JournalReader,
) -> Result<AccountId, LedgerError> {
    match read_entry(reader, store.entry_pos(0)?.ok_or_else(|| missing(0))?)?.body {
        EntryBody::Open { account, .. } => Ok(account),
        _ => Err(LedgerError::Corrupt(
            "entry 0 does not open the programme account".into(),
        )),
    }
}

/// Starts the writer's thread, serving a queue of `capacity` requests.
pub(crate) fn start_writer(
    writer: Writer,
    capacity: usize,
) -> Result<(Sender<Job>, JoinHandle<()>), LedgerError> {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let handle = std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || writer.run(rx))?;
    Ok((tx, handle))
}
