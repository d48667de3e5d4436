//! `verify`: checks an export from its first byte to its last, as a stream.
//!
//! The file is read in blocks of whole lines by one thread. Worker threads hash each line into
//! its Merkle leaf, decode it strictly, and hash the leaves of a block into the roots of its
//! aligned perfect subtrees. The calling thread takes the results in order and does everything
//! that depends on order: sequence numbers, recorded times, the Merkle frontier (`O(log n)`
//! hashes), the rules replay and, with a kept checkpoint, the consistency proof; while the next
//! result is not ready it decodes a block itself, so both cores of a small machine stay busy
//! whichever side is slower. Large buffers circulate instead of being reallocated. It stops at
//! the first failure.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use chrono::{DateTime, Utc};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use serde::Serialize;
use timecredits_domain::entry::format_time;
use timecredits_domain::export::{ExportHeader, MAX_HEADER_LINE};
use timecredits_domain::{DecodeError, Entry, EntryBody};
use timecredits_tlog::checkpoint::{unverified_checkpoint, Checkpoint, CheckpointError};
use timecredits_tlog::merkle::{
    leaf_hash, prove_tree, root_of_leaves, stored_hash_index, Frontier, Hash, HashReader, TreeError,
};
use timecredits_tlog::note::NoteError;
use uuid::Uuid;

use crate::error::{Failure, Stop, UsageError};
use crate::keychain::{KeyChain, Rotation};
use crate::proofs::check_consistency;
use crate::replay::{Fingerprints, Replay, Summary};
use crate::trust::{Trust, Verified};
use crate::{b64, io_error};

/// The longest line accepted: far more than any entry (the ledger refuses records above 64 KiB),
/// so that a file without newlines is refused instead of read into memory.
pub const MAX_LINE: usize = 1 << 20;

/// How many bytes the reader hands to a worker at a time (whole lines, so a little less).
const BLOCK: usize = 1 << 20;

/// How to verify.
#[derive(Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// A checkpoint the auditor kept from before, already opened with the trusted keys: the
    /// export must extend it.
    pub since: Option<&'a Verified>,
    /// Threads that decode, the ordered part included (it decodes while it waits); 0 means one
    /// per core. At least one thread decodes besides the ordered part.
    pub threads: usize,
    /// Called now and then with the number of entries checked so far and the number to check.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// Called with each entry, in order, once it passed the checks made entry by entry (the
    /// rules replay included). The checks at the end (the Merkle root, the signing key) come
    /// after the last call: what was seen counts only if the report is valid.
    pub each_entry: Option<&'a dyn Fn(&Entry)>,
}

/// The outcome of verifying an export.
#[derive(Debug)]
pub struct Report {
    /// The header, as read (its checkpoint is verified unless the failure says otherwise).
    pub header: ExportHeader,
    /// The signed checkpoint, once it verified.
    pub checkpoint: Option<Checkpoint>,
    /// Entries checked before stopping: all of them when the export is valid.
    pub checked: u64,
    /// What the replay adds up to, for a valid full export (`from` = 0). A partial export cannot
    /// be replayed: the balances before it are unknown.
    pub summary: Option<Summary>,
    /// The size of the kept checkpoint this export was proved to extend.
    pub extends: Option<u64>,
    /// The signing key hand-overs (`key` entries) the export records and the verifier followed.
    pub rotations: Vec<Rotation>,
    /// The first check that failed; `None` when the export is valid.
    pub failure: Option<Failure>,
}

impl Report {
    /// Whether every check passed.
    pub fn is_valid(&self) -> bool {
        self.failure.is_none()
    }
}

/// Verifies the export at `path` against the trusted keys and origin. Returns the report,
/// valid or not; fails only when the check could not be done at all.
pub fn verify_file(
    path: &Path,
    trust: &Trust,
    options: &VerifyOptions<'_>,
) -> Result<Report, UsageError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let (header, header_len) = read_header(path, &mut file)?;
    let file_len = file.metadata().map_err(io_error(path))?.len();
    let mut report = Report {
        header,
        checkpoint: None,
        checked: 0,
        summary: None,
        extends: None,
        rotations: Vec::new(),
        failure: None,
    };
    let result =
        check_header(&report.header, trust).and_then(|(checkpoint, frontier, unverified)| {
            let kept = options
                .since
                .map(|kept| Kept::new(kept, &report.header, &frontier))
                .transpose()?;
            if unverified.is_none() {
                report.checkpoint = Some(checkpoint.clone());
            }
            let mut run = Run {
                path,
                header_len,
                header: &report.header,
                checkpoint: &checkpoint,
                unverified,
                keys: KeyChain::new(trust),
                frontier,
                next: report.header.from,
                last_recorded: None,
                each_entry: options.each_entry,
                // Sized for the entries the file can hold (a canonical entry is over 128 bytes),
                // whatever the header claims.
                replay: (report.header.from == 0)
                    .then(|| Replay::with_capacity(report.header.size.min(file_len / 128))),
                kept,
            };
            let result = stream(file, options, &mut run);
            report.checked = run.next - report.header.from;
            result?;
            let finished = run.finish()?;
            report.checkpoint = Some(checkpoint);
            report.extends = finished.extends;
            report.summary = finished.summary;
            report.rotations = finished.rotations;
            Ok(())
        });
    match result {
        Ok(()) => Ok(report),
        Err(Stop::Invalid(failure)) => {
            report.failure = Some(failure);
            Ok(report)
        }
        Err(Stop::Unusable(e)) => Err(e),
    }
}

/// Reads and parses the first line, and returns it with its length, leaving `file` at the first
/// entry.
fn read_header(path: &Path, file: &mut File) -> Result<(ExportHeader, u64), UsageError> {
    let mut line = Vec::new();
    BufReader::new(file.by_ref().take(MAX_HEADER_LINE as u64))
        .read_until(b'\n', &mut line)
        .map_err(io_error(path))?;
    if line.last() != Some(&b'\n') {
        return Err(match line.len() {
            MAX_HEADER_LINE => UsageError::HeaderTooLong {
                path: path.to_owned(),
            },
            _ => UsageError::Header {
                path: path.to_owned(),
                source: ExportHeader::parse(&line).err().unwrap_or(
                    timecredits_domain::export::HeaderError::NotAHeader(
                        "the header line has no final newline".into(),
                    ),
                ),
            },
        });
    }
    let header = ExportHeader::parse(&line).map_err(|source| UsageError::Header {
        path: path.to_owned(),
        source,
    })?;
    // The buffered reader read ahead: the entries start right after the header line.
    file.seek(SeekFrom::Start(line.len() as u64))
        .map_err(io_error(path))?;
    Ok((header, line.len() as u64))
}

/// Checks the header against its signed checkpoint, and returns the checkpoint, the frontier the
/// entries continue, and, when no pinned key signed the checkpoint, why: the log may hand over
/// to the key that did (see [`KeyChain`]), which is checked once the entries are read.
fn check_header(
    header: &ExportHeader,
    trust: &Trust,
) -> Result<(Checkpoint, Frontier, Option<CheckpointError>), Stop> {
    let (signed, unverified) = match trust.open(&header.checkpoint) {
        Ok(verified) => (verified.checkpoint, None),
        Err(e @ CheckpointError::Note(NoteError::Unverified)) => (
            unverified_checkpoint(&header.checkpoint).map_err(Failure::Checkpoint)?,
            Some(e),
        ),
        Err(e) => return Err(Failure::Checkpoint(e).into()),
    };
    let mismatch = |field, claimed: String, signed: String| Failure::HeaderMismatch {
        field,
        claimed,
        signed,
    };
    if header.origin != signed.origin {
        return Err(mismatch("origin", header.origin.clone(), signed.origin).into());
    }
    if header.size != signed.size {
        return Err(mismatch("size", header.size.to_string(), signed.size.to_string()).into());
    }
    if header.from > signed.size {
        return Err(Failure::StartsPastEnd {
            from: header.from,
            size: signed.size,
        }
        .into());
    }
    let frontier = Frontier::from_hashes(header.from, header.frontier.clone()).map_err(|_| {
        Failure::Frontier {
            from: header.from,
            got: header.frontier.len(),
        }
    })?;
    Ok((signed, frontier, unverified))
}

/// A block of the file, as the reader hands it on.
enum Block {
    /// Whole lines, each ending in a newline; the first is entry `first`.
    Lines { first: u64, data: Vec<u8> },
    /// The end of the file, after a last line without newline.
    Unterminated,
    /// A line longer than [`MAX_LINE`].
    TooLong,
    /// A read failed.
    Failed(std::io::Error),
}

/// One line, decoded by a worker.
struct Decoded {
    entry: Result<Entry, DecodeError>,
    /// The entry's idempotency fingerprint (see [`Fingerprints`]), 0 if it did not decode.
    fingerprint: u64,
    /// For a line that is not an entry: why the server says it could not finish the export, if
    /// the line is the one that says so.
    interrupted: Option<String>,
}

/// The Merkle leaves of a block of lines, as a worker hashed them.
enum Leaves {
    /// The leaf hash of each line (when stored hashes of the tree must be captured).
    Each(Vec<Hash>),
    /// The roots of the aligned perfect subtrees the lines form, in order: the node hashes inside
    /// them are done by the workers, in parallel, instead of by the ordered part.
    Subtrees(Vec<(u8, Hash)>),
}

/// A block, after the workers.
enum Done {
    /// The decoded lines, and which thread decoded them (0 for the ordered part, which decodes
    /// while it waits), so that their memory goes back to the thread that allocated it.
    Lines {
        owner: usize,
        lines: Vec<Decoded>,
        leaves: Leaves,
    },
    Unterminated,
    TooLong,
    Failed(std::io::Error),
}

/// What the workers need to know.
#[derive(Clone, Copy)]
struct Work<'a> {
    fingerprints: &'a Fingerprints,
    /// Whether to hand back every leaf rather than subtrees.
    each_leaf: bool,
}

/// A channel's two ends.
type Channel<T> = (Sender<T>, Receiver<T>);

/// Buffers on their way back to be reused, so that the pipeline keeps a fixed set of large
/// buffers instead of allocating new ones for every block (which costs page faults, zeroing and
/// unmapping in the kernel).
struct Recycling {
    /// File blocks the decoders are done with, back to the reader.
    data: Channel<Vec<u8>>,
    /// Checked lines, back to the worker that decoded them (`lines[w - 1]` for worker `w`),
    /// which frees their entries: memory freed by the thread that allocated it is reused at
    /// once, while memory freed by another thread takes the allocator's slow paths.
    lines: Vec<Channel<Vec<Decoded>>>,
}

/// Runs the reader and the workers over the entries (the file after the header) and passes the
/// results to `run` in order.
fn stream(file: File, options: &VerifyOptions<'_>, run: &mut Run<'_>) -> Result<(), Stop> {
    // The ordered part decodes too when it has nothing else to do, so it counts as one of the
    // decoding threads.
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .saturating_sub(1)
    .max(1);
    let fingerprints = Fingerprints::default();
    let work_on = Work {
        fingerprints: &fingerprints,
        each_leaf: run.kept.is_some(),
    };
    let first = run.next;
    let recycling = Recycling {
        data: unbounded(),
        lines: (0..threads).map(|_| unbounded()).collect(),
    };
    let recycling = &recycling;
    std::thread::scope(|scope| {
        let (blocks, block_rx) = bounded::<(u64, Block)>(threads * 2);
        let (done_tx, done) = bounded::<(u64, Done)>(threads * 2);
        scope.spawn(move || read_blocks(file, first, &blocks, recycling));
        for worker in 1..=threads {
            let (rx, tx) = (block_rx.clone(), done_tx.clone());
            scope.spawn(move || work(work_on, worker, &rx, &tx, recycling));
        }
        drop(done_tx);
        let pipes = Pipes {
            blocks: block_rx,
            done,
            recycling,
        };
        // Returning drops the receivers, which stops the workers and, through them, the reader.
        consume(pipes, work_on, options, run)
    })
}

/// Reads the file in blocks of whole lines, numbering their first line from `first`.
fn read_blocks(
    mut file: File,
    mut first: u64,
    blocks: &Sender<(u64, Block)>,
    recycling: &Recycling,
) {
    let mut carry: Vec<u8> = Vec::new();
    for number in 0.. {
        let mut buf = recycling.data.1.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(&carry);
        let start = buf.len();
        buf.reserve(BLOCK);
        // Reads straight into the spare capacity (no zeroing first), up to a block.
        let read = (&mut file).take(BLOCK as u64).read_to_end(&mut buf);
        let filled = buf.len();
        let block = match (read, memchr::memrchr(b'\n', &buf)) {
            (Err(e), _) => Block::Failed(e),
            (Ok(_), Some(last)) => {
                carry.clear();
                carry.extend_from_slice(&buf[last + 1..]);
                buf.truncate(last + 1);
                let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
                let block = Block::Lines { first, data: buf };
                first += lines;
                block
            }
            // End of file: the rest (if any) has no newline.
            (Ok(_), None) if filled == start => {
                if start == 0 {
                    return;
                }
                Block::Unterminated
            }
            (Ok(_), None) if buf.len() > MAX_LINE => Block::TooLong,
            (Ok(_), None) => {
                carry = buf;
                continue;
            }
        };
        let last = !matches!(block, Block::Lines { .. });
        if blocks.send((number, block)).is_err() || last {
            return;
        }
    }
}

/// Hashes and decodes blocks of lines, as worker number `worker` (from 1).
fn work(
    on: Work<'_>,
    worker: usize,
    blocks: &Receiver<(u64, Block)>,
    done: &Sender<(u64, Done)>,
    recycling: &Recycling,
) {
    let mut leaves = Vec::new();
    for (number, block) in blocks {
        // Freeing the entries of lines this worker decoded before.
        let mut lines = recycling.lines[worker - 1].1.try_recv().unwrap_or_default();
        lines.clear();
        let result = decode(on, block, worker, lines, &mut leaves, recycling);
        if done.send((number, result)).is_err() {
            return;
        }
    }
}

/// Hashes and decodes one block into `lines` (empty) for decoder `owner`; `leaves` is scratch
/// space kept between blocks.
fn decode(
    on: Work<'_>,
    block: Block,
    owner: usize,
    mut lines: Vec<Decoded>,
    leaves: &mut Vec<Hash>,
    recycling: &Recycling,
) -> Done {
    match block {
        Block::Lines { first, data } => {
            leaves.clear();
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', &data) {
                let line = &data[start..end];
                leaves.push(leaf_hash(line));
                let entry = Entry::decode(line);
                let fingerprint = entry.as_ref().map_or(0, |e| on.fingerprints.of(e));
                let interrupted = entry
                    .is_err()
                    .then(|| timecredits_domain::export::interruption(line))
                    .flatten();
                lines.push(Decoded {
                    entry,
                    fingerprint,
                    interrupted,
                });
                start = end + 1;
            }
            let _ = recycling.data.0.send(data);
            let leaves = match on.each_leaf {
                true => Leaves::Each(std::mem::take(leaves)),
                false => Leaves::Subtrees(subtrees(first, leaves)),
            };
            Done::Lines {
                owner,
                lines,
                leaves,
            }
        }
        Block::Unterminated => Done::Unterminated,
        Block::TooLong => Done::TooLong,
        Block::Failed(e) => Done::Failed(e),
    }
}

/// Splits the leaves of entries `first..` into the largest aligned perfect subtrees, and returns
/// their levels and roots.
fn subtrees(first: u64, leaves: &[Hash]) -> Vec<(u8, Hash)> {
    let mut out = Vec::new();
    let (mut pos, mut rest) = (first, leaves);
    while !rest.is_empty() {
        let aligned = pos.trailing_zeros().min(63);
        let fits = (rest.len() as u64).ilog2();
        let level = aligned.min(fits);
        let (run, tail) = rest.split_at(1 << level);
        out.push((level as u8, root_of_leaves(run.iter().copied())));
        pos += 1 << level;
        rest = tail;
    }
    out
}

/// Takes the workers' results in file order. While the next result is not ready, it decodes a
/// block itself rather than wait: the ordered part and the decoding then share the cores however
/// their costs compare.
fn consume(
    pipes: Pipes<'_>,
    on: Work<'_>,
    options: &VerifyOptions<'_>,
    run: &mut Run<'_>,
) -> Result<(), Stop> {
    let Pipes {
        blocks,
        done,
        recycling,
    } = pipes;
    let mut waiting = BTreeMap::new();
    let mut next = 0;
    let mut leaves = Vec::new();
    // Line vectors of blocks decoded here, emptied, for the next ones.
    let mut spare: Vec<Vec<Decoded>> = Vec::new();
    let mut checked = |result, spare: &mut Vec<Vec<Decoded>>| -> Result<(), Stop> {
        if let Some((owner, mut lines)) = run.block(result, options)? {
            match owner.checked_sub(1) {
                None => {
                    lines.clear();
                    spare.push(lines);
                }
                // If the worker is gone, the lines are simply freed here.
                Some(worker) => drop(recycling.lines[worker].0.send(lines)),
            }
        }
        Ok(())
    };
    loop {
        while let Some(result) = waiting.remove(&next) {
            next += 1;
            checked(result, &mut spare)?;
        }
        // Nothing in order yet: a result, or else a block to decode here.
        let (number, result) = match done.try_recv() {
            Ok(ready) => ready,
            Err(_) => crossbeam_channel::select! {
                recv(done) -> ready => match ready {
                    Ok(ready) => ready,
                    // Every worker is gone, so every block was decoded.
                    Err(_) => break,
                },
                recv(blocks) -> block => match block {
                    Ok((number, block)) => {
                        let lines = spare.pop().unwrap_or_default();
                        (number, decode(on, block, 0, lines, &mut leaves, recycling))
                    }
                    // The file is read; wait for the workers' last results.
                    Err(_) => match done.recv() {
                        Ok(ready) => ready,
                        Err(_) => break,
                    },
                },
            },
        };
        waiting.insert(number, result);
    }
    // Results decoded here after the workers had finished.
    while let Some(result) = waiting.remove(&next) {
        next += 1;
        checked(result, &mut spare)?;
    }
    Ok(())
}

/// The ends of the pipeline the ordered part holds.
struct Pipes<'a> {
    blocks: Receiver<(u64, Block)>,
    done: Receiver<(u64, Done)>,
    recycling: &'a Recycling,
}

/// The ordered part of the verification.
struct Run<'a> {
    path: &'a Path,
    header_len: u64,
    header: &'a ExportHeader,
    checkpoint: &'a Checkpoint,
    /// Why no pinned key opened the checkpoint, if none did.
    unverified: Option<CheckpointError>,
    /// The signing keys, followed through the `key` entries.
    keys: KeyChain<'a>,
    frontier: Frontier,
    /// The position of the next entry, i.e. its expected sequence number.
    next: u64,
    last_recorded: Option<DateTime<Utc>>,
    /// The caller's [`VerifyOptions::each_entry`].
    each_entry: Option<&'a dyn Fn(&Entry)>,
    /// The rules replay, for a full export.
    replay: Option<Replay>,
    /// The consistency check against a kept checkpoint.
    kept: Option<Kept<'a>>,
}

impl Run<'_> {
    /// Any line past the checkpoint's size is an extra entry, whatever it holds.
    fn past_end_or(&self, failure: Failure) -> Stop {
        if self.next == self.checkpoint.size {
            Failure::TrailingData {
                size: self.checkpoint.size,
            }
            .into()
        } else {
            failure.into()
        }
    }

    /// Checks the next block of entries, in order, and returns its lines (and who decoded
    /// them) for reuse.
    fn block(
        &mut self,
        result: Done,
        options: &VerifyOptions<'_>,
    ) -> Result<Option<(usize, Vec<Decoded>)>, Stop> {
        match result {
            Done::Lines {
                owner,
                lines,
                leaves,
            } => {
                if let Some(replay) = &self.replay {
                    replay.warm(lines.iter().filter_map(|line| {
                        line.entry
                            .as_ref()
                            .ok()
                            .map(|entry| (entry, line.fingerprint))
                    }));
                }
                match leaves {
                    Leaves::Each(leaves) => {
                        for (line, leaf) in lines.iter().zip(leaves) {
                            self.entry(line)?;
                            self.append_leaf(leaf);
                        }
                    }
                    Leaves::Subtrees(subtrees) => {
                        for line in &lines {
                            self.entry(line)?;
                        }
                        self.append_subtrees(&subtrees)?;
                    }
                }
                if let Some(progress) = options.progress {
                    progress(
                        self.next - self.header.from,
                        self.header.size - self.header.from,
                    );
                }
                Ok(Some((owner, lines)))
            }
            Done::Unterminated => Err(self.past_end_or(Failure::Unterminated { seq: self.next })),
            Done::TooLong => Err(self.past_end_or(Failure::LineTooLong {
                seq: self.next,
                max: MAX_LINE,
            })),
            Done::Failed(e) => Err(io_error(self.path)(e).into()),
        }
    }

    /// Checks the next entry (its Merkle leaf is appended by the caller).
    fn entry(&mut self, line: &Decoded) -> Result<(), Stop> {
        let seq = self.next;
        if seq == self.checkpoint.size {
            return Err(self.past_end_or(Failure::TrailingData { size: seq }));
        }
        let entry = line
            .entry
            .as_ref()
            .map_err(|error| match &line.interrupted {
                Some(why) => Failure::Interrupted {
                    seq,
                    why: why.clone(),
                },
                None => Failure::Decode {
                    seq,
                    error: error.clone(),
                },
            })?;
        if entry.seq != seq {
            return Err(Failure::Sequence {
                seq,
                found: entry.seq,
            }
            .into());
        }
        if let Some(previous) = self.last_recorded.filter(|t| entry.recorded < *t) {
            return Err(Failure::TimeGoesBack {
                seq,
                previous_seq: seq - 1,
                recorded: format_time(&entry.recorded),
                previous: format_time(&previous),
            }
            .into());
        }
        self.last_recorded = Some(entry.recorded);
        if let EntryBody::Key(rotation) = &entry.body {
            self.keys.follow(seq, rotation)?;
        }
        if let Some(replay) = &mut self.replay {
            let (path, header_len) = (self.path, self.header_len);
            replay.apply(entry, line.fingerprint, &mut |actor, key, before| {
                first_request(path, header_len, actor, key, before)
            })?;
        }
        if let Some(each_entry) = self.each_entry {
            each_entry(entry);
        }
        self.next += 1;
        Ok(())
    }

    fn append_leaf(&mut self, leaf: Hash) {
        match &mut self.kept {
            None => self.frontier.append_with(leaf, |_| {}),
            Some(kept) => kept.append(&mut self.frontier, leaf),
        }
    }

    fn append_subtrees(&mut self, subtrees: &[(u8, Hash)]) -> Result<(), Stop> {
        for &(level, root) in subtrees {
            self.frontier
                .append_subtree(level, root)
                .map_err(|e| UsageError::Evidence(format!("merkle tree: {e}")))?;
        }
        Ok(())
    }

    /// The checks at the end of the stream.
    fn finish(self) -> Result<Finished, Stop> {
        // After a hand-over only the new key speaks for the log.
        match (
            self.keys.check_signed_by_current(&self.header.checkpoint),
            self.unverified,
        ) {
            (Some(result), _) => result?,
            (None, Some(_)) => {
                let header = self.header;
                let claimed = match &header.previous_verifier_key {
                    Some(previous) => format!("{} and {previous}", header.verifier_key),
                    None => header.verifier_key.clone(),
                };
                return Err(Failure::NotPinnedKey { claimed }.into());
            }
            (None, None) => {}
        }
        let size = self.checkpoint.size;
        if self.next < size {
            return Err(Failure::Truncated {
                from: self.header.from,
                end: self.next,
                size,
            }
            .into());
        }
        let computed = self.frontier.root();
        if computed != self.checkpoint.root {
            return Err(Failure::RootMismatch {
                size,
                computed,
                signed: self.checkpoint.root,
            }
            .into());
        }
        let extends = match self.kept {
            Some(kept) => Some(kept.prove(self.header, self.checkpoint)?),
            None => None,
        };
        let summary = self.replay.map(Replay::finish).transpose()?;
        Ok(Finished {
            extends,
            summary,
            rotations: self.keys.into_rotations(),
        })
    }
}

/// What the checks at the end of the stream found.
struct Finished {
    /// The kept checkpoint's size, when the export was proved to extend it.
    extends: Option<u64>,
    /// The replay's summary, for a full export.
    summary: Option<Summary>,
    rotations: Vec<Rotation>,
}

/// Finds the first entry before `before` that starts a request of `actor` with `key`, by reading
/// the export again from the start. Only called when a fingerprint repeats.
fn first_request(
    path: &Path,
    header_len: u64,
    actor: Uuid,
    key: &str,
    before: u64,
) -> Result<Option<u64>, UsageError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    file.seek(SeekFrom::Start(header_len))
        .map_err(io_error(path))?;
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(io_error(path))?;
        // Every entry before `before` has already decoded.
        let Ok(entry) = Entry::decode(&line) else {
            return Ok(None);
        };
        if entry.seq >= before {
            return Ok(None);
        }
        if entry.part == 0 && entry.actor == actor && entry.key.as_str() == key {
            return Ok(Some(entry.seq));
        }
    }
    Ok(None)
}

/// The consistency check against a checkpoint the auditor kept: while the entries stream by, it
/// keeps the few stored hashes that the RFC 6962 consistency proof from the kept size to the
/// export's size is made of, then builds that proof and checks it.
struct Kept<'a> {
    kept: &'a Verified,
    /// The stored-hash indexes the proof needs, ascending.
    needed: Vec<u64>,
    /// How many of them are captured or behind us.
    passed: usize,
    /// The stored-hash index of the next hash the frontier produces.
    index: u64,
    hashes: Sparse,
    /// The root of the first `kept` entries of the export, once reached.
    old_root: Option<Hash>,
}

impl<'a> Kept<'a> {
    fn new(kept: &'a Verified, header: &ExportHeader, frontier: &Frontier) -> Result<Self, Stop> {
        let (old, size) = (kept.checkpoint.size, header.size);
        if old > size {
            return Err(UsageError::KeptIsNewer { kept: old, size }.into());
        }
        if old < header.from {
            return Err(UsageError::KeptBeforeExport {
                kept: old,
                from: header.from,
            }
            .into());
        }
        let recorder = Recorder::default();
        if old > 0 {
            prove_tree(size, old, &recorder).map_err(evidence)?;
        }
        let mut needed = recorder.0.into_inner();
        needed.sort_unstable();
        needed.dedup();
        // The proof's hashes that lie before the export are among its frontier's.
        let mut hashes = Sparse::default();
        let mut start = 0;
        for (hash, level) in frontier.hashes().iter().zip(
            (0..64u8)
                .rev()
                .filter(|level| header.from >> level & 1 == 1),
        ) {
            let index = stored_hash_index(level, start >> level);
            if needed.binary_search(&index).is_ok() {
                hashes.0.insert(index, *hash);
            }
            start += 1 << level;
        }
        let index = stored_hash_index(0, header.from);
        Ok(Kept {
            kept,
            passed: needed.partition_point(|&i| i < index),
            needed,
            index,
            hashes,
            old_root: (old == header.from).then(|| frontier.root()),
        })
    }

    fn append(&mut self, frontier: &mut Frontier, leaf: Hash) {
        frontier.append_with(leaf, |hash| {
            if self.needed.get(self.passed) == Some(&self.index) {
                self.hashes.0.insert(self.index, hash);
                self.passed += 1;
            }
            self.index += 1;
        });
        if frontier.size() == self.kept.checkpoint.size {
            self.old_root = Some(frontier.root());
        }
    }

    /// Builds the proof and checks it against both checkpoints; returns the kept size.
    fn prove(self, header: &ExportHeader, checkpoint: &Checkpoint) -> Result<u64, Stop> {
        let old = self.kept.checkpoint.size;
        let proof = match old {
            0 => Vec::new(),
            _ => prove_tree(checkpoint.size, old, &self.hashes).map_err(evidence)?,
        };
        let new = Verified {
            checkpoint: checkpoint.clone(),
            note: header.checkpoint.clone(),
        };
        match check_consistency(self.kept, &new, &proof)? {
            Ok(()) => Ok(old),
            Err(Failure::NotConsistent(mut evidence)) => {
                evidence.recomputed_old_root = self.old_root;
                Err(Failure::NotConsistent(evidence).into())
            }
            Err(failure) => Err(failure.into()),
        }
    }
}

fn evidence(e: TreeError) -> Stop {
    UsageError::Evidence(format!(
        "cannot build the consistency proof from this export: {e}"
    ))
    .into()
}

/// A [`HashReader`] that answers zeros and notes which hashes were asked for.
#[derive(Default)]
struct Recorder(std::cell::RefCell<Vec<u64>>);

impl HashReader for Recorder {
    type Error = TreeError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Ok(vec![[0; 32]; indexes.len()])
    }
}

/// The few stored hashes captured from the stream, by stored-hash index.
#[derive(Default)]
struct Sparse(HashMap<u64, Hash>);

impl HashReader for Sparse {
    type Error = TreeError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
        indexes
            .iter()
            .map(|&index| {
                self.0.get(&index).copied().ok_or(TreeError::HashNotStored {
                    index,
                    stored: self.0.len() as u64,
                })
            })
            .collect()
    }
}

/// The report as JSON (`verify --json`).
#[derive(Serialize)]
pub struct JsonReport<'a> {
    valid: bool,
    origin: &'a str,
    from: u64,
    size: u64,
    root: Option<String>,
    checked: u64,
    replayed: bool,
    extends: Option<u64>,
    summary: Option<&'a Summary>,
    key_rotations: &'a [Rotation],
    failure: Option<String>,
}

impl Report {
    /// The report in the form `verify --json` prints.
    pub fn to_json(&self) -> JsonReport<'_> {
        JsonReport {
            valid: self.is_valid(),
            origin: &self.header.origin,
            from: self.header.from,
            size: self.header.size,
            root: self.checkpoint.as_ref().map(|c| b64(&c.root)),
            checked: self.checked,
            replayed: self.summary.is_some(),
            extends: self.extends,
            summary: self.summary.as_ref(),
            key_rotations: &self.rotations,
            failure: self.failure.as_ref().map(ToString::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtrees_tile_the_leaves_and_hash_to_the_same_root() {
        let leaves: Vec<Hash> = (0..3000u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for first in [0usize, 1, 5, 8, 1000, 1023] {
            for len in [0usize, 1, 2, 7, 1024, 1500] {
                let mut by_leaf = Frontier::new();
                by_leaf.extend(leaves[..first].iter().copied());
                let mut by_subtree = by_leaf.clone();
                let block = &leaves[first..first + len];
                by_leaf.extend(block.iter().copied());
                let runs = subtrees(first as u64, block);
                assert_eq!(
                    runs.iter().map(|(level, _)| 1usize << level).sum::<usize>(),
                    len
                );
                for (level, root) in runs {
                    by_subtree.append_subtree(level, root).unwrap();
                }
                assert_eq!(by_subtree, by_leaf, "first {first}, len {len}");
            }
        }
    }
}
