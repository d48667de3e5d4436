//! The registry on disk: records in the ledger's journal format (`registry`), and a small mark of
//! how much of it was acknowledged (`registry.acked`).
//!
//! The ledger knows what it acknowledged from its signed checkpoints and its state; the registry
//! has nothing like that, so a damaged last record (a key revocation, say) looked exactly like a
//! torn tail a crash left and was silently cut off. The mark closes that gap: it is written and
//! `fdatasync`ed after the records and before the answer, so at open every byte up to the mark
//! must be whole, valid records, and only what lies after it may be truncated as torn.
//!
//! A failed append (a full disk, an I/O error) is undone at once: the file is cut back to the
//! last acknowledged record, so the next append never lands after a partial one. When even that
//! fails, registry writes stop until a restart (whose open truncates the torn tail).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use timecredits_ledger::journal::{self, Journal, JournalError};
use timecredits_ledger::keys::write_private_file;

use super::{layout, RegistryError};

/// The registry's append side and its acknowledged mark.
pub(super) struct RegistryFile {
    path: PathBuf,
    file: File,
    /// End of the last acknowledged record: where the next record goes.
    len: u64,
    /// How many records the file holds up to `len`.
    records: u64,
    mark: Mark,
    /// Why writes are refused until a restart, once an append could not be undone.
    stopped: Option<String>,
    /// Failures to inject (tests only).
    #[cfg(test)]
    pub(super) fault: Fault,
}

/// Failures a test injects into the next appends.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Fault {
    /// Write only this many bytes of an append, then fail as a full disk does.
    pub write_limit: Option<usize>,
    /// Cutting the file back after a failed append fails too.
    pub rollback_fails: bool,
    /// Writing the acknowledged mark fails.
    pub mark_fails: bool,
}

impl RegistryFile {
    /// Opens the registry in `dir` and returns it with every record's payload.
    ///
    /// Refuses, naming the file and what to restore, when acknowledged records are missing or
    /// damaged, or when the file is missing or empty although `ledger_has_entries` (a new
    /// registry would start a new programme, locking every existing key and credential out).
    pub(super) fn open(
        dir: &Path,
        ledger_has_entries: bool,
    ) -> Result<(RegistryFile, Vec<Vec<u8>>), RegistryError> {
        let path = dir.join(layout::REGISTRY);
        let mark_path = dir.join(layout::REGISTRY_ACKED);
        let acked = Mark::read(&mark_path)?.map(|(_, acked)| acked);
        let file_len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error(&path, e)),
        };
        if file_len == 0 {
            if let Some(acked) = acked.filter(|a| a.end > 0) {
                return Err(RegistryError::Identity(format!(
                    "{} is missing or empty, but {} records that its first {} records ({} bytes) \
                     were acknowledged: restore `{}` from the backup of this data directory",
                    path.display(),
                    mark_path.display(),
                    acked.records,
                    acked.end,
                    layout::REGISTRY
                )));
            }
            if ledger_has_entries {
                return Err(RegistryError::Identity(format!(
                    "{} is missing or empty, but the ledger in {} has entries: it held every \
                     partner, API key and member credential of this ledger; restore `{}` (and \
                     `{}`) from the backup of this data directory (starting without it would \
                     create a new administrator and refuse every existing key and credential)",
                    path.display(),
                    dir.display(),
                    layout::REGISTRY,
                    layout::SERVER_SECRET
                )));
            }
        } else if let Some(acked) = acked {
            let valid = journal::valid_len(&path).map_err(|e| journal_error(&path, e))?;
            if valid < acked.end {
                return Err(RegistryError::Damaged {
                    path: path.clone(),
                    reason: format!(
                        "records up to offset {} were acknowledged ({} records, says {}), but \
                         whole, valid records end at offset {valid} (the file is {file_len} \
                         bytes): an acknowledged change would be lost, so nothing is truncated; \
                         restore `{}` from a backup",
                        acked.end,
                        acked.records,
                        mark_path.display(),
                        layout::REGISTRY
                    ),
                });
            }
        }
        if file_len == 0 {
            // Created here rather than by the journal code, so that it is private from the start;
            // the directory is synced so that the new entry survives a crash.
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)
                .and_then(|_| File::open(dir)?.sync_all())
                .map_err(|e| io_error(&path, e))?;
        }
        let (journal, records) = Journal::open(&path, 0).map_err(|e| journal_error(&path, e))?;
        let len = journal.len();
        drop(journal);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        let count = records.len() as u64;
        let mark = match acked {
            Some(acked) => {
                let mut mark = Mark::open(&mark_path)?;
                // Records after the mark were synced but never answered (a crash in between):
                // they are whole and valid, so they stay, and are acknowledged now.
                if (acked.records, acked.end) != (count, len) {
                    mark.store(count, len)
                        .map_err(|e| io_error(&mark_path, e))?;
                }
                mark
            }
            // A new registry, or one written before the mark existed: what is there is trusted.
            None => Mark::create(&mark_path, count, len)?,
        };
        let payloads = records.into_iter().map(|(_, payload)| payload).collect();
        Ok((
            RegistryFile {
                path,
                file,
                len,
                records: count,
                mark,
                stopped: None,
                #[cfg(test)]
                fault: Fault::default(),
            },
            payloads,
        ))
    }

    /// Why writes are refused, if they are.
    pub(super) fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Appends records and makes them durable, then marks them acknowledged. On failure nothing
    /// was acknowledged and the file is as it was (or writes stop, see the module docs).
    pub(super) fn append(&mut self, payloads: &[&[u8]]) -> Result<(), RegistryError> {
        if let Some(reason) = &self.stopped {
            return Err(RegistryError::Stopped(reason.clone()));
        }
        let (bytes, positions) =
            journal::encode(payloads, self.len).map_err(|e| RegistryError::Damaged {
                path: self.path.clone(),
                reason: format!("a record cannot be written: {e}"),
            })?;
        let end = positions.last().map_or(self.len, |p| p.end());
        if let Err(e) = self.write(&bytes).and_then(|()| self.file.sync_data()) {
            if let Err(undo) = self.rollback() {
                self.stop(format!(
                    "an append failed ({e}) and could not be undone ({undo}); the next start \
                     truncates the partial record"
                ));
            }
            return Err(io_error(&self.path, e));
        }
        let records = self.records + positions.len() as u64;
        if let Err(e) = self.store_mark(records, end) {
            // The records are durable but not marked: the next start keeps them. Whether the
            // mark reached the disk is unknown, so nothing more is written until then.
            self.stop(format!(
                "the acknowledged mark could not be written ({e}); the next start repairs it"
            ));
            return Err(io_error(&self.mark.path, e));
        }
        self.len = end;
        self.records = records;
        Ok(())
    }

    /// Every acknowledged record's payload, in order (read from the file, checksums checked).
    pub(super) fn payloads(&self) -> Result<Vec<Vec<u8>>, RegistryError> {
        let (_, records) =
            Journal::open(&self.path, 0).map_err(|e| journal_error(&self.path, e))?;
        Ok(records.into_iter().map(|(_, payload)| payload).collect())
    }

    /// Replaces the whole file by `payloads`, as many records as it holds, none longer than the
    /// one it replaces (an erasure clears personal data from records; it never adds any), so
    /// that personal data is gone from the live file rather than superseded.
    ///
    /// Crash-safe against the acknowledged mark: the mark is first lowered to the new, shorter
    /// end (the old file is whole beyond it, so a start in between keeps the old file and
    /// re-marks it; the erasure is then completed again from its record); then the new file is
    /// written beside the old one, synced, renamed into place and the directory synced. A start
    /// after the rename finds the new file whole up to the mark.
    pub(super) fn rewrite(&mut self, payloads: &[&[u8]]) -> Result<(), RegistryError> {
        if let Some(reason) = &self.stopped {
            return Err(RegistryError::Stopped(reason.clone()));
        }
        let (bytes, positions) =
            journal::encode(payloads, 0).map_err(|e| RegistryError::Damaged {
                path: self.path.clone(),
                reason: format!("a record cannot be written: {e}"),
            })?;
        let end = positions.last().map_or(0, |p| p.end());
        if positions.len() as u64 != self.records || end > self.len {
            return Err(RegistryError::Damaged {
                path: self.path.clone(),
                reason: "a rewrite must keep every record and add nothing".into(),
            });
        }
        self.store_mark(self.records, end)
            .map_err(|e| io_error(&self.mark.path, e))?;
        if let Err(e) = write_private_file(&self.path, &bytes) {
            // The old file is still in place and whole: it is re-marked at the next start.
            self.stop(format!(
                "a rewrite failed ({e}); the next start keeps the file as it was"
            ));
            return Err(io_error(&self.path, e));
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| io_error(&self.path, e))?;
        self.len = end;
        Ok(())
    }

    fn stop(&mut self, reason: String) {
        tracing::error!(path = %self.path.display(), %reason, "the registry stops taking writes");
        self.stopped = Some(reason);
    }

    #[cfg(not(test))]
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    #[cfg(test)]
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.fault.write_limit {
            Some(limit) if limit < bytes.len() => {
                self.file.write_all(&bytes[..limit])?;
                Err(io::Error::from(io::ErrorKind::StorageFull))
            }
            _ => self.file.write_all(bytes),
        }
    }

    /// Cuts the file back to the last acknowledged record.
    fn rollback(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if self.fault.rollback_fails {
            return Err(io::Error::other("injected rollback failure"));
        }
        self.file.set_len(self.len)?;
        self.file.sync_all()
    }

    fn store_mark(&mut self, records: u64, end: u64) -> io::Result<()> {
        #[cfg(test)]
        if self.fault.mark_fails {
            return Err(io::Error::other("injected mark failure"));
        }
        self.mark.store(records, end)
    }
}

/// How much of the registry was acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Acked {
    records: u64,
    end: u64,
}

/// The acknowledged mark: two slots, each `generation | records | end | crc32c` (little-endian),
/// written in turn in place, so a write torn by a crash leaves the other slot whole, and the valid
/// slot with the higher generation is the mark. Writing in place allocates no new block, so a
/// full disk does not stop it.
struct Mark {
    path: PathBuf,
    file: File,
    generation: u64,
}

const SLOT_LEN: usize = 32;

impl Mark {
    fn encode(generation: u64, acked: Acked) -> [u8; SLOT_LEN] {
        let mut slot = [0u8; SLOT_LEN];
        slot[0..8].copy_from_slice(&generation.to_le_bytes());
        slot[8..16].copy_from_slice(&acked.records.to_le_bytes());
        slot[16..24].copy_from_slice(&acked.end.to_le_bytes());
        let crc = crc32c::crc32c(&slot[0..24]);
        slot[24..28].copy_from_slice(&crc.to_le_bytes());
        slot
    }

    fn decode(slot: &[u8]) -> Option<(u64, Acked)> {
        let word = |i: usize| u64::from_le_bytes(slot[i..i + 8].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(slot[24..28].try_into().expect("4 bytes"));
        (crc32c::crc32c(&slot[0..24]) == crc).then(|| {
            (
                word(0),
                Acked {
                    records: word(8),
                    end: word(16),
                },
            )
        })
    }

    /// The newest valid slot and its generation: `None` when there is no mark file.
    fn read(path: &Path) -> Result<Option<(u64, Acked)>, RegistryError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path, e)),
        };
        let newest = bytes
            .chunks_exact(SLOT_LEN)
            .take(2)
            .filter_map(Self::decode)
            .max_by_key(|(generation, _)| *generation);
        match newest {
            Some(found) => Ok(Some(found)),
            None => Err(RegistryError::Damaged {
                path: path.to_owned(),
                reason: format!(
                    "neither slot of this file is valid, so it is unknown how much of `{}` was \
                     acknowledged; restore both from a backup (or, knowing `{}` is whole, delete \
                     this file to trust it as it is)",
                    layout::REGISTRY,
                    layout::REGISTRY
                ),
            }),
        }
    }

    fn create(path: &Path, records: u64, end: u64) -> Result<Mark, RegistryError> {
        let acked = Acked { records, end };
        let slot = Self::encode(0, acked);
        let mut both = slot.to_vec();
        both.extend_from_slice(&slot);
        write_private_file(path, &both).map_err(|e| io_error(path, e))?;
        Self::open(path)
    }

    fn open(path: &Path) -> Result<Mark, RegistryError> {
        let (generation, _) = Self::read(path)?.expect("the mark file exists");
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        Ok(Mark {
            path: path.to_owned(),
            file,
            generation,
        })
    }

    fn store(&mut self, records: u64, end: u64) -> io::Result<()> {
        let generation = self.generation + 1;
        let slot = Self::encode(generation, Acked { records, end });
        let offset = (generation % 2) * SLOT_LEN as u64;
        self.file.write_all_at(&slot, offset)?;
        self.file.sync_data()?;
        self.generation = generation;
        Ok(())
    }
}

/// An I/O failure on a registry file (or another of the service's own journal files: the
/// profile store), a full disk told apart.
pub(crate) fn io_error(path: &Path, e: io::Error) -> RegistryError {
    if is_storage_full(&e) {
        RegistryError::StorageFull {
            path: path.to_owned(),
        }
    } else {
        RegistryError::Io {
            path: path.to_owned(),
            source: e,
        }
    }
}

/// A journal failure on the file at `path` (the registry, or the profile store), naming the file
/// to restore when a record is damaged.
pub(crate) fn journal_error(path: &Path, e: JournalError) -> RegistryError {
    match e {
        JournalError::Io(e) | JournalError::NotAppended(e) => io_error(path, e),
        JournalError::Corrupt { offset, reason } => RegistryError::Damaged {
            path: path.to_owned(),
            reason: format!(
                "the record at offset {offset} is damaged: {reason}; restore `{}` from a backup",
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |name| name.to_string_lossy().into_owned()
                )
            ),
        },
    }
}

/// Whether an I/O error means there is no room to write: a full disk, a full quota, or a file
/// that may not grow (a file-size limit). Each passes once an operator makes room.
pub fn is_storage_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}
