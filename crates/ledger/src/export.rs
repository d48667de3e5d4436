//! Exports for auditors and receipts for members: the ledger's evidence, in the formats the
//! `timecredits-audit` verifier (and any independent one) checks offline.
//!
//! An **export** is the header line of [`ExportHeader`] (the signed checkpoint it is complete up
//! to, the verifier key, its bounds and, for a partial export, the frontier of the entries before
//! it), then every entry's exact canonical bytes, one per line. It is streamed in chunks read
//! entry by entry, so the ledger never holds more than one chunk of it in memory, and it can be
//! written while the ledger keeps committing: committed entries never change, and the export stops
//! at its checkpoint's size. `AUDIT.md` documents the format for auditors.
//!
//! A **receipt** is a C2SP `tlog-proof@v1` for one entry against the latest checkpoint, with the
//! entry's bytes as its `extra` data, so a member can prove the entry is in the ledger with
//! nothing but the ledger's public key.

use std::io::Write;

use timecredits_domain::export::ExportHeader;
use timecredits_tlog::merkle::{leaf_hash, Frontier};
use timecredits_tlog::note::{open_note, NoteVerifier};
use timecredits_tlog::proof::TlogProof;

use crate::{Ledger, LedgerError, SignedCheckpoint};

/// How many bytes of entries [`Export::next_chunk`] gathers before returning (one entry more at
/// most).
const CHUNK_BYTES: usize = 64 * 1024;

/// Which part of the log to export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportRange {
    /// The first entry to include. 0 (the default) gives a full export, the only kind on which an
    /// auditor can replay the ledger rules; a later start still proves that the entries are the
    /// signed ones, and extend a checkpoint the auditor kept at that size.
    pub from: u64,
    /// The tree size to export up to. It must be a size the ledger signed a checkpoint for (the
    /// end of a committed batch); `None` exports up to the latest checkpoint.
    pub size: Option<u64>,
}

/// An export whose bounds are checked, ready to be streamed with [`Export::next_chunk`] or
/// [`Export::write_to`].
///
/// It owns its data (no borrow of the ledger), so an HTTP handler can validate the request, answer
/// an error before any byte is sent, and then move the export into a blocking task that streams
/// the chunks.
#[derive(Clone, Debug)]
pub struct Export {
    header: ExportHeader,
    checkpoint: SignedCheckpoint,
    /// The next entry to write; `None` until the header line has been returned.
    next: Option<u64>,
}

impl Ledger {
    /// Prepares an export of `range`: resolves its checkpoint and, for a partial export, the
    /// frontier of the entries before it. Cheap (`O(log n)` reads); no entry is read yet.
    ///
    /// Fails with [`LedgerError::NoCheckpointAt`] (naming the nearest sizes that have one) when
    /// `range.size` has no signed checkpoint, and with [`LedgerError::ExportStartsPastEnd`] when
    /// `range.from` is beyond that size.
    pub fn export(&self, range: ExportRange) -> Result<Export, LedgerError> {
        let checkpoint = match range.size {
            None => self.checkpoint()?,
            Some(size) => match self.checkpoint_at(size)? {
                Some(checkpoint) => checkpoint,
                None => {
                    let (below, above) = self.checkpoint_sizes_around(size)?;
                    return Err(LedgerError::NoCheckpointAt { size, below, above });
                }
            },
        };
        let size = checkpoint.checkpoint.size;
        if range.from > size {
            return Err(LedgerError::ExportStartsPastEnd {
                from: range.from,
                size,
            });
        }
        let frontier = self.frontier(range.from)?;
        let mut signers = self.signers_of(&checkpoint.note).into_iter();
        let mut header = ExportHeader::new(
            self.origin().to_owned(),
            signers.next().unwrap_or_else(|| self.verifier_key()),
            range.from,
            size,
            frontier.hashes().to_vec(),
            checkpoint.note.clone(),
        );
        header.previous_verifier_key = signers.next();
        Ok(Export {
            header,
            checkpoint,
            next: None,
        })
    }

    /// The verifier keys, among those the ledger has signed with, whose signature `note`
    /// carries, in the note's order (the current key of the time first). Empty only for a
    /// ledger rotated twice before it kept the list of its keys; the export then names the
    /// current key, as earlier versions did.
    fn signers_of(&self, note: &str) -> Vec<String> {
        let known: Vec<NoteVerifier> = self
            .verifier_keys()
            .iter()
            .filter_map(|vkey| NoteVerifier::parse(vkey).ok())
            .collect();
        match open_note(note.as_bytes(), &known) {
            Ok((_, signers)) => signers.iter().map(NoteVerifier::to_vkey).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "no key the ledger knows signed this checkpoint");
                Vec::new()
            }
        }
    }

    /// A receipt for entry `seq`: the `tlog-proof@v1` of its inclusion in the latest checkpoint,
    /// carrying the entry's canonical bytes as `extra`. Serve it as [`TlogProof::to_text`].
    ///
    /// Fails with [`LedgerError::Proof`] if `seq` is not yet covered by a checkpoint.
    pub fn receipt(&self, seq: u64) -> Result<TlogProof, LedgerError> {
        let signed = self.checkpoint()?;
        let size = signed.checkpoint.size;
        if seq >= size {
            return Err(LedgerError::Proof(format!(
                "entry {seq} is not in the log (its signed size is {size})"
            )));
        }
        Ok(TlogProof {
            extra: Some(self.committed_bytes(seq)?),
            index: seq,
            hashes: self.inclusion_proof(seq, size)?,
            signed_checkpoint: signed.note,
        })
    }

    /// The frontier of the first `size` entries, rebuilt from the last one's leaf and inclusion
    /// proof, and checked against the stored root so that a journal and a state that disagree are
    /// never exported.
    fn frontier(&self, size: u64) -> Result<Frontier, LedgerError> {
        if size == 0 {
            return Ok(Frontier::new());
        }
        let leaf = leaf_hash(&self.committed_bytes(size - 1)?);
        let proof = self.inclusion_proof(size - 1, size)?;
        let frontier = Frontier::from_last_record(size, leaf, &proof)
            .map_err(|e| LedgerError::Corrupt(format!("frontier at size {size}: {e}")))?;
        if frontier.root() != self.root(size)? {
            return Err(LedgerError::Corrupt(format!(
                "entry {} does not match the stored tree",
                size - 1
            )));
        }
        Ok(frontier)
    }

    fn committed_bytes(&self, seq: u64) -> Result<Vec<u8>, LedgerError> {
        self.entry_bytes(seq)?
            .ok_or_else(|| LedgerError::Corrupt(format!("committed entry {seq} is missing")))
    }
}

impl Export {
    /// The header the export starts with.
    pub fn header(&self) -> &ExportHeader {
        &self.header
    }

    /// The signed checkpoint the export is complete up to.
    pub fn checkpoint(&self) -> &SignedCheckpoint {
        &self.checkpoint
    }

    /// The next piece of the file: the header line first, then about 64 KiB of entry lines at a
    /// time, then `None`. Entries are read from `ledger` (the one that prepared the export) one
    /// by one.
    pub fn next_chunk(&mut self, ledger: &Ledger) -> Result<Option<Vec<u8>>, LedgerError> {
        let Some(mut seq) = self.next else {
            self.next = Some(self.header.from);
            return Ok(Some(self.header.to_line()));
        };
        if seq == self.header.size {
            return Ok(None);
        }
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + 1024);
        while seq < self.header.size && chunk.len() < CHUNK_BYTES {
            match ledger.committed_bytes(seq) {
                Ok(bytes) => chunk.extend_from_slice(&bytes),
                // The entries before a damaged one first: the next call meets the damage again
                // and reports it with nothing lost before it.
                Err(_) if !chunk.is_empty() => break,
                Err(e) => return Err(e),
            }
            chunk.push(b'\n');
            seq += 1;
        }
        self.next = Some(seq);
        Ok(Some(chunk))
    }

    /// Writes the whole export to `out` and returns the number of bytes written. `out` is not
    /// flushed, so a `BufWriter` must be flushed by the caller.
    pub fn write_to(mut self, ledger: &Ledger, out: &mut impl Write) -> Result<u64, LedgerError> {
        let mut written = 0;
        while let Some(chunk) = self.next_chunk(ledger)? {
            out.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }
}
