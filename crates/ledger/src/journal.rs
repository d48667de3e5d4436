//! The journal: an append-only file of checksummed entry records, the ledger's source of truth.
//!
//! A batch of entries is acknowledged only after its records are written here and the file is
//! `fdatasync`ed. Everything else on disk (the sled state) is derived from the journal and can be
//! rebuilt from it.
//!
//! # Format
//!
//! The file is a sequence of records, one per entry, in sequence-number order, with no header:
//!
//! ```text
//! record = length:u32 LE | crc32c(payload):u32 LE | payload (length bytes: canonical entry JSON)
//! ```
//!
//! A crash can leave a torn tail: a record cut short, or a length and payload that do not match
//! the checksum (the file grew but its last blocks never reached the disk). Such a tail was never
//! acknowledged, because acknowledgement waits for the sync, so [`Journal::open`] truncates it.
//! A damaged record followed by a valid one is not a torn tail but corruption of acknowledged
//! records (a flipped bit, a bad sector): opening fails with [`JournalError::Corrupt`] rather than
//! cutting acknowledged entries off. Records before the position the state says is applied are
//! not re-read at open (that is what keeps opening fast); each is checked against its checksum
//! whenever it is read, and a mismatch is an error, never a silent answer.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes before each payload: length and checksum.
pub const HEADER_LEN: u64 = 8;

/// The largest payload accepted. Entries are far smaller (a few hundred bytes); the bound keeps a
/// corrupted length from asking for gigabytes.
pub const MAX_RECORD_LEN: u32 = 64 * 1024;

/// Where a record sits in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordPos {
    /// Offset of the record's header.
    pub offset: u64,
    /// Payload length.
    pub len: u32,
}

impl RecordPos {
    /// Offset just past this record.
    pub fn end(&self) -> u64 {
        self.offset + HEADER_LEN + u64::from(self.len)
    }
}

/// Errors reading or writing the journal.
#[derive(thiserror::Error, Debug)]
pub enum JournalError {
    /// Reading or writing the file failed; what was written may be unknown.
    #[error("journal I/O: {0}")]
    Io(#[from] io::Error),
    /// An append failed and was taken back whole: the journal is as it was before it, and the
    /// next append may succeed (say, once a full disk has room again).
    #[error("journal: nothing was appended: {0}")]
    NotAppended(io::Error),
    /// The journal does not hold what it must (a damaged record followed by valid ones, a
    /// flipped bit, fewer bytes than the state was built from): it is refused, not served. A torn
    /// tail is not this: open cuts it off.
    #[error("journal is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The byte offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// A record read back from the journal: where it lies and its payload.
pub type JournalRecord = (RecordPos, Vec<u8>);

/// The append side of the journal, owned by the single writer, and a shared read side.
#[derive(Debug)]
pub struct Journal {
    file: File,
    /// Length of the valid, written part of the file: where the next record goes.
    len: u64,
}

impl Journal {
    /// Opens (or creates) the journal, scans the records after `applied_end` (the end of the last
    /// record the state has applied), truncates a torn tail and returns the records found there.
    ///
    /// The part before `applied_end` is trusted (it was checked when it was written and the state
    /// points into it) and is not read, so opening is fast whatever the journal's size.
    pub fn open(
        path: &Path,
        applied_end: u64,
    ) -> Result<(Journal, Vec<JournalRecord>), JournalError> {
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        if created {
            // Make the new file's directory entry durable too, or a crash could lose the file.
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        let file_len = file.metadata()?.len();
        if applied_end > file_len {
            return Err(JournalError::Corrupt {
                offset: file_len,
                reason: format!(
                    "the state has applied records up to offset {applied_end}, but the journal ends at {file_len}"
                ),
            });
        }
        let mut journal = Journal {
            file,
            len: applied_end,
        };
        let mut tail = Vec::new();
        while let Some((pos, payload)) = journal.read_record(journal.len, file_len)? {
            journal.len = pos.end();
            tail.push((pos, payload));
        }
        if journal.len < file_len {
            if let Some(valid) = journal.next_valid_record(journal.len + 1, file_len)? {
                return Err(JournalError::Corrupt {
                    offset: journal.len,
                    reason: format!(
                        "the record here is damaged, but a valid record follows at offset {valid}: \
                         this is not a torn tail left by a crash, so nothing is truncated"
                    ),
                });
            }
            tracing::warn!(
                torn_bytes = file_len - journal.len,
                offset = journal.len,
                "truncating a torn journal tail left by a crash (never acknowledged)"
            );
            journal.file.set_len(journal.len)?;
            journal.file.sync_all()?;
        }
        Ok((journal, tail))
    }

    /// The offset of the first complete, valid record starting in `from..limit`, if any. Used
    /// only on the rare path where a record is damaged, to tell a torn tail (nothing valid
    /// after it) from damage in the middle of acknowledged records. The scan stops at the first
    /// hit, which in a damaged but otherwise intact journal is at most one record away.
    fn next_valid_record(&self, from: u64, limit: u64) -> Result<Option<u64>, JournalError> {
        for offset in from..limit.saturating_sub(HEADER_LEN) {
            if self.read_record(offset, limit)?.is_some() {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// Reads the record at `offset`, or `None` if there is no complete valid record there before
    /// `limit` (a torn tail or the end of the file).
    fn read_record(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<Option<(RecordPos, Vec<u8>)>, JournalError> {
        if offset + HEADER_LEN > limit {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_LEN as usize];
        self.file.read_exact_at(&mut header, offset)?;
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let pos = RecordPos { offset, len };
        if len == 0 || len > MAX_RECORD_LEN || pos.end() > limit {
            return Ok(None);
        }
        let mut payload = vec![0u8; len as usize];
        self.file.read_exact_at(&mut payload, offset + HEADER_LEN)?;
        if crc32c::crc32c(&payload) != crc {
            return Ok(None);
        }
        Ok(Some((pos, payload)))
    }

    /// Reads the payload of a record the state points to, checking its checksum.
    pub fn read(&self, pos: RecordPos) -> Result<Vec<u8>, JournalError> {
        read_payload(&self.file, pos)
    }

    /// A second handle on the file for concurrent readers.
    pub fn reader(&self) -> Result<JournalReader, JournalError> {
        Ok(JournalReader {
            file: self.file.try_clone()?,
        })
    }

    /// Appends records (not yet durable) and returns where each one went.
    ///
    /// A write that fails is taken back: the file is cut back to [`Journal::len`] and the error
    /// is [`JournalError::NotAppended`], after which appending may go on (the ledger does so
    /// when the disk was full). Only if that cut fails too is the error `Io`, with a partial
    /// write possibly left past the end: the caller must then stop writing (the ledger stops
    /// its writer), and the next open truncates the torn tail.
    pub fn append(&mut self, payloads: &[&[u8]]) -> Result<Vec<RecordPos>, JournalError> {
        let (buf, positions) = encode(payloads, self.len)?;
        // One write call for the whole batch: the file is in append mode.
        if let Err(e) = self.file.write_all(&buf) {
            // Nothing of a failed append may stay: the next append would land after a partial
            // record, which the next open would take for damage in the middle of the journal.
            // If even the truncation fails, the error is `Io` and the writer stops.
            self.file.set_len(self.len)?;
            return Err(JournalError::NotAppended(e));
        }
        self.len = positions.last().map_or(self.len, RecordPos::end);
        Ok(positions)
    }

    /// Makes everything appended so far durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.file.sync_data()?;
        Ok(())
    }

    /// The length of the valid part of the journal.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the journal holds no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Encodes records in the journal format, the first one to go at `offset`: the bytes to append
/// and where each record will lie. Shared by every file in this format (the service's registry
/// writes its own records through it).
pub fn encode(payloads: &[&[u8]], offset: u64) -> Result<(Vec<u8>, Vec<RecordPos>), JournalError> {
    let total: usize = payloads.iter().map(|p| p.len() + HEADER_LEN as usize).sum();
    let mut buf = Vec::with_capacity(total);
    let mut positions = Vec::with_capacity(payloads.len());
    let mut offset = offset;
    for payload in payloads {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l > 0 && l <= MAX_RECORD_LEN)
            .ok_or_else(|| JournalError::Corrupt {
                offset,
                reason: format!(
                    "record of {} bytes is outside 1..={MAX_RECORD_LEN}",
                    payload.len()
                ),
            })?;
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        buf.extend_from_slice(payload);
        let pos = RecordPos { offset, len };
        offset = pos.end();
        positions.push(pos);
    }
    Ok((buf, positions))
}

/// The end of the longest run of whole, valid records from the start of the file at `path`,
/// read without changing the file. [`Journal::open`] truncates a damaged tail as torn; a caller
/// that knows how much was acknowledged asks this first, so that damage to acknowledged records
/// is reported instead of cut off.
pub fn valid_len(path: &Path) -> Result<u64, JournalError> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let journal = Journal { file, len: 0 };
    let mut end = 0;
    while let Some((pos, _)) = journal.read_record(end, file_len)? {
        end = pos.end();
    }
    Ok(end)
}

/// A read-only handle on the journal, shared by readers. Positional reads need no locking.
#[derive(Debug)]
pub struct JournalReader {
    file: File,
}

impl JournalReader {
    /// Reads the payload of a committed record, checking its checksum.
    pub fn read(&self, pos: RecordPos) -> Result<Vec<u8>, JournalError> {
        read_payload(&self.file, pos)
    }
}

/// How many bytes a [`JournalScan`] reads at a time. Far larger than a record
/// ([`MAX_RECORD_LEN`]), so that a record is cut by a buffer's end at most once per read.
pub const SCAN_BUFFER: usize = 1 << 20;

impl JournalReader {
    /// A front-to-back reader of the records from `from` (the offset of a record) up to `limit`
    /// (the end of the last record to read), in reads of [`SCAN_BUFFER`] bytes. The caller takes
    /// both bounds from the state, so that the scan reads only committed records, whatever is
    /// appended meanwhile.
    pub fn scan(&self, from: u64, limit: u64) -> Result<JournalScan, JournalError> {
        Ok(JournalScan {
            file: self.file.try_clone()?,
            buf: vec![0; SCAN_BUFFER],
            start: 0,
            filled: 0,
            buf_offset: from,
            limit,
        })
    }
}

/// Reads consecutive records front to back (see [`JournalReader::scan`]), checking each one's
/// length and checksum: a damaged record is an error naming its offset, never skipped.
#[derive(Debug)]
pub struct JournalScan {
    file: File,
    buf: Vec<u8>,
    /// The first byte of `buf` not yet returned.
    start: usize,
    /// The bytes of `buf` read from the file.
    filled: usize,
    /// The file offset of `buf[0]`.
    buf_offset: u64,
    /// Where the scan ends.
    limit: u64,
}

impl JournalScan {
    /// The next record and its payload, or `None` at the scan's end.
    pub fn next_record(&mut self) -> Result<Option<(RecordPos, &[u8])>, JournalError> {
        let offset = self.buf_offset + self.start as u64;
        if offset >= self.limit {
            return Ok(None);
        }
        let corrupt = |reason: String| JournalError::Corrupt { offset, reason };
        if offset + HEADER_LEN > self.limit {
            return Err(corrupt(format!(
                "a record header is cut by the end of the committed records at {}",
                self.limit
            )));
        }
        self.fill(HEADER_LEN as usize)?;
        let header = &self.buf[self.start..self.start + HEADER_LEN as usize];
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let pos = RecordPos { offset, len };
        if len == 0 || len > MAX_RECORD_LEN || pos.end() > self.limit {
            return Err(corrupt(format!(
                "record length {len} is outside 1..={MAX_RECORD_LEN} or runs past the end of \
                 the committed records at {}",
                self.limit
            )));
        }
        let total = (HEADER_LEN + u64::from(len)) as usize;
        self.fill(total)?;
        let payload = &self.buf[self.start + HEADER_LEN as usize..self.start + total];
        if crc32c::crc32c(payload) != crc {
            return Err(corrupt("record does not match its checksum".into()));
        }
        self.start += total;
        Ok(Some((pos, payload)))
    }

    /// Makes sure `need` bytes from `start` are in the buffer (they lie before `limit`): moves
    /// what is left to the front and reads as much as the buffer holds.
    fn fill(&mut self, need: usize) -> Result<(), JournalError> {
        if self.filled - self.start >= need {
            return Ok(());
        }
        self.buf.copy_within(self.start..self.filled, 0);
        self.buf_offset += self.start as u64;
        self.filled -= self.start;
        self.start = 0;
        let left = usize::try_from(self.limit - self.buf_offset).unwrap_or(usize::MAX);
        let end = self.buf.len().min(left);
        let at = self.buf_offset + self.filled as u64;
        self.file
            .read_exact_at(&mut self.buf[self.filled..end], at)?;
        self.filled = end;
        Ok(())
    }
}

fn read_payload(file: &File, pos: RecordPos) -> Result<Vec<u8>, JournalError> {
    let mut buf = vec![0u8; HEADER_LEN as usize + pos.len as usize];
    file.read_exact_at(&mut buf, pos.offset)?;
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let payload = buf.split_off(HEADER_LEN as usize);
    if len != pos.len || crc32c::crc32c(&payload) != crc {
        return Err(JournalError::Corrupt {
            offset: pos.offset,
            reason: "record does not match its length or checksum".into(),
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_path() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        (dir, path)
    }

    #[test]
    fn records_round_trip_and_reopen_reads_only_the_unapplied_tail() {
        let (_dir, path) = journal_path();
        let (mut j, tail) = Journal::open(&path, 0).unwrap();
        assert!(tail.is_empty());
        let pos = j.append(&[b"one", b"two", b"three"]).unwrap();
        j.sync().unwrap();
        assert_eq!(j.read(pos[1]).unwrap(), b"two");
        drop(j);
        let (j, tail) = Journal::open(&path, pos[0].end()).unwrap();
        let payloads: Vec<_> = tail.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, vec![&b"two"[..], b"three"]);
        assert_eq!(j.len(), pos[2].end());
        assert_eq!(j.reader().unwrap().read(pos[2]).unwrap(), b"three");
    }

    #[test]
    fn a_torn_tail_is_truncated() {
        let (_dir, path) = journal_path();
        let (mut j, _) = Journal::open(&path, 0).unwrap();
        let pos = j.append(&[b"kept", b"torn"]).unwrap();
        drop(j);
        let full = std::fs::metadata(&path).unwrap().len();
        for cut in [full - 1, full - 4, pos[1].offset + 3] {
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(cut).unwrap();
            let (j, tail) = Journal::open(&path, 0).unwrap();
            assert_eq!(tail.len(), 1, "cut at {cut}");
            assert_eq!(j.len(), pos[0].end());
            assert_eq!(std::fs::metadata(&path).unwrap().len(), pos[0].end());
        }
    }

    #[test]
    fn a_zeroed_tail_is_truncated_and_appending_continues() {
        let (_dir, path) = journal_path();
        let (mut j, _) = Journal::open(&path, 0).unwrap();
        let pos = j.append(&[b"kept"]).unwrap();
        drop(j);
        // The file grew but its new blocks were never written, as after a crash.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(pos[0].end() + 100).unwrap();
        let (mut j, tail) = Journal::open(&path, 0).unwrap();
        assert_eq!(tail.len(), 1);
        let next = j.append(&[b"next"]).unwrap();
        assert_eq!(next[0].offset, pos[0].end());
        assert_eq!(j.read(next[0]).unwrap(), b"next");
    }

    #[test]
    fn a_flipped_bit_is_detected_on_read() {
        let (_dir, path) = journal_path();
        let (mut j, _) = Journal::open(&path, 0).unwrap();
        let pos = j.append(&[b"payload"]).unwrap();
        drop(j);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"X", pos[0].offset + HEADER_LEN).unwrap();
        let reader = Journal::open(&path, pos[0].end()).unwrap().0;
        assert!(matches!(
            reader.read(pos[0]),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn damage_followed_by_valid_records_is_refused_not_truncated() {
        let (_dir, path) = journal_path();
        let (mut j, _) = Journal::open(&path, 0).unwrap();
        let pos = j.append(&[b"first", b"second", b"third"]).unwrap();
        drop(j);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"X", pos[1].offset + HEADER_LEN).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        match Journal::open(&path, 0) {
            Err(JournalError::Corrupt { offset, reason }) => {
                assert_eq!(offset, pos[1].offset);
                assert!(reason.contains(&pos[2].offset.to_string()), "{reason}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            before,
            "nothing truncated"
        );
    }

    /// Records of every size up to the largest, so that many are cut by the scan buffer's end.
    fn varied_records(j: &mut Journal) -> (Vec<Vec<u8>>, Vec<RecordPos>) {
        let payloads: Vec<Vec<u8>> = (0..120u32)
            .map(|i| {
                let len = (i * 7919 % MAX_RECORD_LEN).max(1) as usize;
                (0..len).map(|b| (b as u32 ^ i) as u8).collect()
            })
            .collect();
        let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let pos = j.append(&slices).unwrap();
        (payloads, pos)
    }

    #[test]
    fn a_scan_reads_every_record_front_to_back_up_to_its_limit() {
        let (_dir, path) = journal_path();
        let (mut j, _) = Journal::open(&path, 0).unwrap();
        let (payloads, pos) = varied_records(&mut j);
        assert!(j.len() > 3 * SCAN_BUFFER as u64, "{} bytes", j.len());
        let reader = j.reader().unwrap();
        for (first, last) in [(0, pos.len() - 1), (5, 77), (119, 119)] {
            let mut scan = reader.scan(pos[first].offset, pos[last].end()).unwrap();
            let mut read = Vec::new();
            while let Some((at, payload)) = scan.next_record().unwrap() {
                read.push((at, payload.to_vec()));
            }
            let expected: Vec<_> = (first..=last)
                .map(|i| (pos[i], payloads[i].clone()))
                .collect();
            assert_eq!(read, expected, "records {first}..={last}");
        }
    }

    #[test]
    fn a_scan_stops_at_a_damaged_record_and_names_its_offset() {
        let (_dir, path) = journal_path();
        let (mut j, _) = Journal::open(&path, 0).unwrap();
        let (_, pos) = varied_records(&mut j);
        let reader = j.reader().unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        for (damaged, at) in [(40, HEADER_LEN), (41, 0), (42, 4)] {
            // A payload byte, a length, a checksum: each is found where it is.
            let before = {
                let mut b = [0u8; 1];
                reader
                    .file
                    .read_exact_at(&mut b, pos[damaged].offset + at)
                    .unwrap();
                b
            };
            f.write_all_at(&[before[0] ^ 0x5a], pos[damaged].offset + at)
                .unwrap();
            let mut scan = reader.scan(0, pos[pos.len() - 1].end()).unwrap();
            let mut read = 0;
            let err = loop {
                match scan.next_record() {
                    Ok(Some(_)) => read += 1,
                    Ok(None) => panic!("the damaged record {damaged} was not noticed"),
                    Err(e) => break e,
                }
            };
            assert_eq!(read, damaged);
            assert!(
                matches!(err, JournalError::Corrupt { offset, .. } if offset == pos[damaged].offset),
                "{err}"
            );
            f.write_all_at(&before, pos[damaged].offset + at).unwrap();
        }
    }

    #[test]
    fn state_ahead_of_the_journal_is_corruption() {
        let (_dir, path) = journal_path();
        Journal::open(&path, 0).unwrap();
        assert!(matches!(
            Journal::open(&path, 10),
            Err(JournalError::Corrupt { .. })
        ));
    }
}
