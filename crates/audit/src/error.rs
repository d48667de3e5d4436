//! The two ways a check can end badly, kept apart because they mean different things to an
//! auditor: the evidence is **invalid** (exit 1: something is wrong with the ledger or the file
//! was tampered with), or the verifier could not do its job at all (exit 2: unusable input or
//! arguments, such as an unreadable file or a malformed key).

use std::path::PathBuf;

use timecredits_domain::export::HeaderError;
use timecredits_domain::report::ReportError;
use timecredits_domain::{DecodeError, RuleViolation};
use timecredits_tlog::checkpoint::CheckpointError;
use timecredits_tlog::merkle::{Hash, ProofError};
use timecredits_tlog::note::NoteError;
use timecredits_tlog::proof::TlogProofError;
use uuid::Uuid;

use crate::b64;

/// The verifier could not check the evidence (exit code 2).
#[derive(thiserror::Error, Debug)]
pub enum UsageError {
    /// No key was given to trust.
    #[error("at least one --key is needed")]
    NoKey,
    /// A `--key` is not a C2SP verifier key.
    #[error("verifier key {key:?}: {source}")]
    BadKey {
        /// The key as given.
        key: String,
        /// Why it was refused.
        source: NoteError,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The export's first line is not a header this verifier reads.
    #[error("{}: {source}", path.display())]
    Header {
        /// The export file.
        path: PathBuf,
        /// Why the header was refused.
        source: HeaderError,
    },
    /// The export's first line does not end within [`MAX_HEADER_LINE`] bytes.
    ///
    /// [`MAX_HEADER_LINE`]: timecredits_domain::export::MAX_HEADER_LINE
    #[error("{}: the first line is not an export header (no newline in its first {} bytes)", path.display(), timecredits_domain::export::MAX_HEADER_LINE)]
    HeaderTooLong {
        /// The export file.
        path: PathBuf,
    },
    /// A checkpoint the auditor supplied (kept from before) does not open with the trusted keys.
    #[error("checkpoint {}: {source}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why it was refused.
        source: CheckpointError,
    },
    /// The kept checkpoint is for a larger tree than the export, so the export cannot extend it.
    #[error("the kept checkpoint is for tree size {kept}, newer than this export (size {size}): verify a newer export against it, or this export against an older checkpoint")]
    KeptIsNewer {
        /// Size of the kept checkpoint.
        kept: u64,
        /// Size of the export.
        size: u64,
    },
    /// The export starts after the kept checkpoint's size, so it holds nothing to compare.
    #[error("this export starts at entry {from}, after the kept checkpoint's size {kept}: ask for an export from entry {kept} or earlier")]
    KeptBeforeExport {
        /// Size of the kept checkpoint.
        kept: u64,
        /// The export's first entry.
        from: u64,
    },
    /// The older checkpoint given to a consistency check is for a larger tree than the newer.
    #[error("the old checkpoint (size {old}) is larger than the new one (size {new}); give the older one first")]
    CheckpointsSwapped {
        /// Size of the checkpoint given as old.
        old: u64,
        /// Size of the checkpoint given as new.
        new: u64,
    },
    /// A receipt is not in the `tlog-proof@v1` format.
    #[error("receipt {}: {source}", path.display())]
    Receipt {
        /// The receipt file.
        path: PathBuf,
        /// Why it was refused.
        source: TlogProofError,
    },
    /// A proof file is neither base64 hashes, one per line, nor the JSON of the consistency
    /// endpoint.
    #[error("proof file {}: {reason}", path.display())]
    ProofFile {
        /// The proof file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The evidence to print could not be built (a bug: every hash it needs is in the export).
    #[error("{0}")]
    Evidence(String),
    /// A report needs every entry from the first: the accounts' owners and kinds are in their
    /// `open` entries.
    #[error("this export starts at entry {from}: a report needs a full export (from entry 0)")]
    PartialExport {
        /// The export's first entry.
        from: u64,
    },
    /// A verified export that the report cannot count (a bug: the rules replay accepted it).
    #[error("report: {0}")]
    Report(ReportError),
    /// The replay keeps account numbers in 32 bits.
    #[error("more than {} accounts: beyond what this verifier replays", u32::MAX)]
    TooManyAccounts,
}

/// The evidence is invalid: the first check that failed (exit code 1).
///
/// Each message names the entry (by the sequence number its position gives it) and what is wrong.
#[derive(thiserror::Error, Debug)]
pub enum Failure {
    /// The export's checkpoint does not verify with the trusted keys and origin.
    #[error("the export's checkpoint does not verify: {0}")]
    Checkpoint(CheckpointError),
    /// No pinned key signed the export's checkpoint, and the export hands over to no key that
    /// did. The header's claim is repeated (never trusted) so the auditor knows what to ask for.
    #[error("the export's checkpoint is not signed by any pinned key; its header says it is signed by {claimed}: pin that key if a trusted source confirms it")]
    NotPinnedKey {
        /// The header's `verifier_key` (and `previous_verifier_key`).
        claimed: String,
    },
    /// The export's checkpoint is not signed by the key its log last handed over to.
    #[error("the export's checkpoint is not signed by {vkey}, the key that entry {seq} handed over to: {source}")]
    NotCurrentKey {
        /// The last `key` entry.
        seq: u64,
        /// The key it names.
        vkey: String,
        /// Why the checkpoint does not open with that key.
        source: CheckpointError,
    },
    /// A `key` entry that cannot be trusted.
    #[error("entry {seq}: the key rotation {reason}")]
    KeyRotation {
        /// The entry.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The header's claims contradict its signed checkpoint.
    #[error("the header says {field} {claimed:?}, but its signed checkpoint says {signed:?}")]
    HeaderMismatch {
        /// The header field.
        field: &'static str,
        /// The header's value.
        claimed: String,
        /// The checkpoint's value.
        signed: String,
    },
    /// The header's bounds are impossible.
    #[error("the header says the export starts at entry {from}, past its size {size}")]
    StartsPastEnd {
        /// The header's `from`.
        from: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The header's frontier does not have one hash per set bit of `from`.
    #[error("the header's frontier has {got} hashes; an export starting at entry {from} needs {}", from.count_ones())]
    Frontier {
        /// The header's `from`.
        from: u64,
        /// Number of hashes in the header.
        got: usize,
    },
    /// The server could not finish the export and said so where entry `seq` should be.
    #[error("the export is incomplete: where entry {seq} should be, the server says it could not finish the export: {why}")]
    Interrupted {
        /// The first entry missing.
        seq: u64,
        /// The server's reason.
        why: String,
    },
    /// An entry's bytes are not a canonical entry.
    #[error("entry {seq}: {error}")]
    Decode {
        /// The entry's position.
        seq: u64,
        /// Why the bytes were refused.
        error: DecodeError,
    },
    /// A line longer than any entry can be.
    #[error("entry {seq}: the line is longer than {max} bytes, more than any entry")]
    LineTooLong {
        /// The entry's position.
        seq: u64,
        /// The limit.
        max: usize,
    },
    /// An entry's sequence number is not its position: entries were deleted, duplicated,
    /// reordered or inserted.
    #[error("entry {seq}: the line at this position holds entry {found} ({})", sequence_hint(*seq, *found))]
    Sequence {
        /// The position, i.e. the sequence number expected.
        seq: u64,
        /// The sequence number the entry carries.
        found: u64,
    },
    /// Recorded times go backwards.
    #[error(
        "entry {seq}: recorded at {recorded}, before entry {previous_seq} (recorded at {previous})"
    )]
    TimeGoesBack {
        /// The entry.
        seq: u64,
        /// The entry before it.
        previous_seq: u64,
        /// Its recorded time.
        recorded: String,
        /// The previous entry's recorded time.
        previous: String,
    },
    /// An entry breaks a ledger rule.
    #[error("entry {seq}: {violation}")]
    Rule {
        /// The entry.
        seq: u64,
        /// The rule it breaks.
        violation: RuleViolation,
    },
    /// A request reuses an idempotency key its actor already used.
    #[error("entry {seq}: idempotency key {key:?} of actor {actor} was already used by the request at entry {first}")]
    KeyReused {
        /// The entry.
        seq: u64,
        /// The key.
        key: String,
        /// The actor.
        actor: Uuid,
        /// The first entry of the earlier request.
        first: u64,
    },
    /// A part of a multi-part request does not directly follow the previous part.
    #[error("entry {seq}: it is part {part} of the request with key {key:?} of actor {actor}, but does not follow part {} of that request", part - 1)]
    PartOutOfPlace {
        /// The entry.
        seq: u64,
        /// Its part number (at least 1).
        part: u32,
        /// The key.
        key: String,
        /// The actor.
        actor: Uuid,
    },
    /// After the replay, the balances do not add up to zero.
    #[error("the balances sum to {0} minutes, not zero")]
    Unbalanced(i128),
    /// The last line has no newline: the file was cut short.
    #[error("entry {seq}: the line has no final newline; the export is cut short")]
    Unterminated {
        /// The position of the cut line.
        seq: u64,
    },
    /// Fewer entries than the checkpoint's size.
    #[error("{}", truncated(*from, *end, *size))]
    Truncated {
        /// The export's first entry.
        from: u64,
        /// Position after the last entry present.
        end: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// More entries than the checkpoint's size.
    #[error("entry {size}: the export goes on past the {size} entries its checkpoint covers")]
    TrailingData {
        /// The checkpoint's size.
        size: u64,
    },
    /// The entries do not hash to the signed root: some entry differs from what was signed.
    #[error("the entries hash to root {}, but the checkpoint signed root {} for size {size}: an entry was altered", b64(computed), b64(signed))]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
        /// The root recomputed from the export.
        computed: Hash,
        /// The signed root.
        signed: Hash,
    },
    /// The newer checkpoint does not extend the older one.
    #[error("{0}")]
    NotConsistent(Box<Inconsistency>),
    /// A receipt's entry is not the one its proof is for.
    #[error("the receipt's entry says seq {found}, but the proof is for index {index}")]
    ReceiptIndex {
        /// The proof's index.
        index: u64,
        /// The entry's own sequence number.
        found: u64,
    },
    /// A receipt without the entry.
    #[error("the receipt carries no entry (its extra line is missing)")]
    ReceiptWithoutEntry,
    /// A receipt's entry bytes are not a canonical entry.
    #[error("the receipt's entry: {0}")]
    ReceiptEntry(DecodeError),
    /// A receipt's proof or checkpoint does not verify.
    #[error("the receipt does not verify: {0}")]
    Receipt(TlogProofError),
}

/// The evidence that a log was rewritten: two signed checkpoints and the consistency proof
/// between them that fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistency {
    /// The older signed checkpoint, verbatim.
    pub old_note: String,
    /// The newer signed checkpoint, verbatim.
    pub new_note: String,
    /// The older tree size.
    pub old_size: u64,
    /// The newer tree size.
    pub new_size: u64,
    /// The RFC 6962 consistency proof from the older size to the newer.
    pub proof: Vec<Hash>,
    /// Why it fails.
    pub error: ProofError,
    /// When the newer tree was recomputed from an export: the root of its first `old_size`
    /// entries, to compare with the older checkpoint's.
    pub recomputed_old_root: Option<Hash>,
}

impl std::fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "the log of size {} does not extend the log of size {}: {}",
            self.new_size, self.old_size, self.error
        )?;
        if let Some(root) = &self.recomputed_old_root {
            writeln!(
                f,
                "the first {} entries of the export hash to root {}, not to the older checkpoint's",
                self.old_size,
                b64(root)
            )?;
        }
        writeln!(f, "older checkpoint:\n{}", self.old_note)?;
        writeln!(f, "newer checkpoint:\n{}", self.new_note)?;
        write!(
            f,
            "consistency proof from {} to {} ({} hashes):",
            self.old_size,
            self.new_size,
            self.proof.len()
        )?;
        for hash in &self.proof {
            write!(f, "\n{}", b64(hash))?;
        }
        Ok(())
    }
}

/// Describes a truncated export.
fn truncated(from: u64, end: u64, size: u64) -> String {
    let missing = size - end;
    if end == from {
        format!("the export holds no entries, but its checkpoint covers {missing} from entry {from} on (truncated)")
    } else {
        format!(
            "the export ends after entry {}, but its checkpoint covers entries up to {}: {missing} missing (truncated)",
            end - 1,
            size - 1
        )
    }
}

/// What a wrong sequence number most likely means.
fn sequence_hint(expected: u64, found: u64) -> &'static str {
    if found < expected {
        "an entry is repeated, or entries are out of order"
    } else {
        "an entry is missing, or entries are out of order"
    }
}

/// Either outcome that stops a check.
#[derive(thiserror::Error, Debug)]
pub enum Stop {
    /// The evidence is invalid.
    #[error(transparent)]
    Invalid(#[from] Failure),
    /// The check could not be done.
    #[error(transparent)]
    Unusable(#[from] UsageError),
}
