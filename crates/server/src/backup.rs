//! Backups of a data directory, taken while the service runs, and their restore.
//!
//! A backup is one gzip-compressed tar archive of plain files: the journal up to a consistent
//! point, the registry's and the profile store's records, the identity files (keys, secrets, origin, `signed-tree`),
//! `FORMAT`, and last a manifest ([`MANIFEST`]) with every file's size and SHA-256. The sled
//! `state/` is left out: the ledger rebuilds it from the journal when it is missing, and copying
//! it while the service writes it would copy pages from different moments. The `spend-codes`
//! file is left out too: it holds only codes that live 15 minutes, and a restored service starts
//! with none (members ask for new ones).
//!
//! # Consistency while the service runs
//! No file is copied raw as a whole except those their writer replaces atomically (written
//! aside, synced, renamed: the keys, secrets, `verifier-keys`, `signed-tree`), of which a read
//! sees one version. The others are append-only, so a prefix of each is a state it once had:
//!
//! 1. The identity files are read.
//! 2. The registry is read and cut after its last whole, valid record. The service records a
//!    change in the registry only after the ledger committed the entries it names, so every
//!    entry the copy names is in the journal by now.
//! 3. The journal is scanned to its last whole record, `E` entries.
//! 4. The cut: the smallest size of a checkpoint recorded in `signed-tree` that is at least `E`
//!    (the service records one at least every 100 ms while it takes writes). A checkpoint is
//!    signed at the end of a batch, so the cut never splits a request; the copied entries are
//!    checked against the checkpoint's root. The service also records the whole tree once
//!    writes pause for 100 ms, so an idle service's `signed-tree` holds its journal's end. Where
//!    it still lags (a writer stopped by a storage failure), once the journal has not grown for
//!    [`QUIET`], no append is under way, and the cut is its end (whole batches only).
//! 5. The identity files are read again: if a key rotation changed them meanwhile, the backup
//!    starts over. With them unchanged, the keys match the copied journal as they did at the
//!    moment of the cut (a rotation under way is finished or discarded at open, as after a
//!    crash).
//!
//! The journal's prefix may end after `signed-tree`'s checkpoint (step 4's quiet case): that is
//! how a running ledger's journal always is, and the restored ledger signs its own checkpoint
//! of the whole copy at open. The registry may lack changes made after step 2 for entries the
//! journal holds (a member registered in between): as after a crash between the two, a repeat
//! of the registration records it.
//!
//! # Restore
//! [`restore`] unpacks into a new directory beside the target, checks every file against the
//! manifest, opens the result as the service would (the state is rebuilt from the journal, the
//! journal is checked against `signed-tree`, the keys against the key entries, the registry
//! against the server secret), and only then renames it into place: a restore either gives a
//! directory that starts or changes nothing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use timecredits_ledger::journal::{HEADER_LEN, MAX_RECORD_LEN};
use timecredits_ledger::keys::VERIFIER_KEYS;
use timecredits_ledger::layout as ledger_files;
use timecredits_ledger::signed::SignedTree;
use timecredits_tlog::merkle::{leaf_hash, Frontier};

use crate::data_dir::{self, DataDirError};
use crate::registry::layout as registry_files;
use crate::{AppState, Settings, StartError};

/// The manifest's name in the archive; it comes last.
pub const MANIFEST: &str = "MANIFEST.json";

/// The archive format this binary writes and reads.
pub const ARCHIVE_FORMAT: u32 = 1;

/// How long the journal must stay the same length before its end is taken as the cut when
/// `signed-tree` is behind it (see the module docs, step 4).
pub const QUIET: Duration = Duration::from_secs(1);

/// How long a backup tries to find a consistent point before it gives up.
const DEADLINE: Duration = Duration::from_secs(60);

/// The files copied whole, when present: each is replaced atomically by its writer.
const IDENTITY: [&str; 9] = [
    ledger_files::ORIGIN,
    ledger_files::SIGNING_KEY,
    ledger_files::PREVIOUS_SIGNING_KEY,
    ledger_files::NEXT_SIGNING_KEY,
    VERIFIER_KEYS,
    registry_files::SERVER_SECRET,
    registry_files::SERVER_SECRET_NEXT,
    registry_files::ADMIN_API_KEY,
    registry_files::ADMIN_PASSWORD,
];

/// What an archive holds, written last into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The archive format ([`ARCHIVE_FORMAT`]).
    pub archive_format: u32,
    /// The data directory's on-disk format ([`data_dir::FORMAT`]).
    pub data_dir_format: u32,
    /// The version of the binary that wrote it.
    pub written_by: String,
    /// When the backup was taken.
    pub created: DateTime<Utc>,
    /// The ledger's checkpoint origin.
    pub origin: String,
    /// How many journal entries the backup holds: the tree size a restore starts at.
    pub entries: u64,
    /// The Merkle root of those entries (base64), as in a checkpoint of that size.
    pub root: String,
    /// The size of the checkpoint in the backup's `signed-tree` (at most `entries`).
    pub signed_size: u64,
    /// Every other file of the archive, with its size and SHA-256 (hex).
    pub files: Vec<FileSum>,
}

/// A file of the archive and its checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Its name in the data directory.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// Why a backup or a restore failed. Every message names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The directory holds no ledger.
    #[error("{} holds no ledger (there is no {})", dir.display(), ledger_files::ORIGIN)]
    NoLedger {
        /// The directory.
        dir: PathBuf,
    },
    /// The data directory's format is unreadable or newer than this binary reads.
    #[error(transparent)]
    Format(#[from] DataDirError),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The journal does not hold what `signed-tree` says was signed.
    #[error("{}: {reason}; the ledger is damaged: run `timecredits check`", path.display())]
    Journal {
        /// The journal.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No consistent point was found in time.
    #[error("no consistent point was found within {} s: {reason}", DEADLINE.as_secs())]
    NoConsistentPoint {
        /// What kept changing.
        reason: String,
    },
    /// The archive is not a timecredits backup this binary reads, or is damaged.
    #[error("{} is not a usable backup: {reason}; nothing was restored", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The target of a restore is not new or empty.
    #[error(
        "{} is not empty: a restore goes into a new or empty directory and never overwrites; \
         nothing was restored",
        dir.display()
    )]
    NotEmpty {
        /// The target directory.
        dir: PathBuf,
    },
    /// The unpacked backup does not open as a data directory.
    #[error("the backup does not open ({0}); nothing was restored")]
    DoesNotOpen(Box<StartError>),
}

/// What a backup holds.
#[derive(Debug)]
pub struct Backup {
    /// The manifest written into the archive.
    pub manifest: Manifest,
    /// The archive's size in bytes.
    pub bytes: u64,
}

/// Writes a backup of the data directory `dir` to `out` (replaced atomically when complete).
/// The service may be running; see the module docs for how the copy stays consistent.
pub fn create(dir: &Path, out: &Path) -> Result<Backup, BackupError> {
    if !dir.join(ledger_files::ORIGIN).exists() {
        return Err(BackupError::NoLedger {
            dir: dir.to_owned(),
        });
    }
    let data_dir_format = data_dir::read_format(dir)?;
    let snapshot = Snapshot::take(dir)?;
    let created = Utc::now();
    let tmp = out.with_extension("partial");
    let io = |source| BackupError::Io {
        path: tmp.clone(),
        source,
    };
    let file = File::create(&tmp).map_err(io)?;
    let gzip = flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::default());
    let mut archive = tar::Builder::new(gzip);
    let mut files = Vec::new();
    let mut small = vec![(
        data_dir::layout::FORMAT.to_owned(),
        format!("{data_dir_format}\n").into_bytes(),
    )];
    small.extend(snapshot.identity.clone());
    small.push((registry_files::REGISTRY.to_owned(), snapshot.registry));
    small.push((
        crate::profiles::layout::PROFILES.to_owned(),
        snapshot.profiles,
    ));
    small.push((
        ledger_files::SIGNED_TREE.to_owned(),
        snapshot.signed_note.clone().into_bytes(),
    ));
    for (name, bytes) in &small {
        append(
            &mut archive,
            name,
            bytes.len() as u64,
            bytes.as_slice(),
            created,
        )
        .map_err(io)?;
        files.push(FileSum {
            name: name.clone(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        });
    }
    let journal_path = dir.join(ledger_files::JOURNAL);
    let journal = File::open(&journal_path).map_err(|source| BackupError::Io {
        path: journal_path.clone(),
        source,
    })?;
    let mut reader = Hashing::new(journal.take(snapshot.journal_end));
    append(
        &mut archive,
        ledger_files::JOURNAL,
        snapshot.journal_end,
        &mut reader,
        created,
    )
    .map_err(io)?;
    if reader.bytes != snapshot.journal_end {
        return Err(BackupError::Journal {
            path: journal_path,
            reason: format!(
                "it ended at {} bytes while being copied, before the {} bytes already read",
                reader.bytes, snapshot.journal_end
            ),
        });
    }
    files.push(FileSum {
        name: ledger_files::JOURNAL.to_owned(),
        bytes: reader.bytes,
        sha256: hex::encode(reader.hash.finalize()),
    });
    let origin = snapshot
        .identity
        .iter()
        .find(|(name, _)| name == ledger_files::ORIGIN)
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).trim_end().to_owned())
        .unwrap_or_default();
    let manifest = Manifest {
        archive_format: ARCHIVE_FORMAT,
        data_dir_format,
        written_by: env!("CARGO_PKG_VERSION").to_owned(),
        created,
        origin,
        entries: snapshot.entries,
        root: base64::engine::general_purpose::STANDARD.encode(snapshot.root),
        signed_size: snapshot.signed_size,
        files,
    };
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    append(
        &mut archive,
        MANIFEST,
        text.len() as u64,
        text.as_slice(),
        created,
    )
    .map_err(io)?;
    let mut file = archive
        .into_inner()
        .and_then(|gzip| gzip.finish())
        .and_then(|buffered| buffered.into_inner().map_err(|e| e.into_error()))
        .map_err(io)?;
    file.flush().and_then(|()| file.sync_all()).map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    drop(file);
    std::fs::rename(&tmp, out).map_err(|source| BackupError::Io {
        path: out.to_owned(),
        source,
    })?;
    Ok(Backup { manifest, bytes })
}

/// Adds a file of mode 0600 to the archive.
fn append<W: Write>(
    archive: &mut tar::Builder<W>,
    name: &str,
    bytes: u64,
    data: impl Read,
    created: DateTime<Utc>,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes);
    header.set_mode(0o600);
    header.set_mtime(u64::try_from(created.timestamp()).unwrap_or(0));
    header.set_entry_type(tar::EntryType::Regular);
    archive.append_data(&mut header, name, data)
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A consistent set of the data directory's files (see the module docs).
struct Snapshot {
    /// The identity files present, by name.
    identity: Vec<(String, Vec<u8>)>,
    /// The registry's whole records.
    registry: Vec<u8>,
    /// The profile store's whole records (members' personal data: see docs/privacy.md for how
    /// long a backup keeps an erased member's).
    profiles: Vec<u8>,
    /// `signed-tree`'s contents.
    signed_note: String,
    /// The size of its checkpoint.
    signed_size: u64,
    /// The journal's entries up to the cut, and the byte offset of the cut.
    entries: u64,
    journal_end: u64,
    /// The Merkle root of those entries.
    root: [u8; 32],
}

impl Snapshot {
    fn take(dir: &Path) -> Result<Snapshot, BackupError> {
        let deadline = Instant::now() + DEADLINE;
        let mut journal = Scan::open(&dir.join(ledger_files::JOURNAL))?;
        loop {
            let identity = read_identity(dir)?;
            let registry = read_records(&dir.join(registry_files::REGISTRY))?;
            let profiles = read_records(&dir.join(crate::profiles::layout::PROFILES))?;
            journal.advance(u64::MAX)?;
            let (signed, quiet) = journal.cut(dir, deadline)?;
            if read_identity(dir)? != identity {
                // A key rotation (or a server-secret rotation) ran meanwhile: start over.
                continue;
            }
            let signed_size = signed.checkpoint.size;
            if !quiet && journal.frontier.root() != signed.checkpoint.root {
                return Err(BackupError::Journal {
                    path: journal.path.clone(),
                    reason: format!(
                        "its first {signed_size} entries are not the tree signed at that size in \
                         {}",
                        ledger_files::SIGNED_TREE
                    ),
                });
            }
            return Ok(Snapshot {
                identity,
                registry,
                profiles,
                signed_note: signed.note,
                signed_size,
                entries: journal.frontier.size(),
                journal_end: journal.end,
                root: journal.frontier.root(),
            });
        }
    }
}

/// The identity files present in `dir`.
fn read_identity(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, BackupError> {
    let mut found = Vec::new();
    for name in IDENTITY {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => found.push((name.to_owned(), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BackupError::Io { path, source }),
        }
    }
    Ok(found)
}

/// The whole, valid records at the start of a file in the journal's record format (empty if
/// the file does not exist).
fn read_records(path: &Path) -> Result<Vec<u8>, BackupError> {
    let mut bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(BackupError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut end = 0;
    while let Some(len) = whole_record(&bytes[end..]) {
        end += len;
    }
    bytes.truncate(end);
    Ok(bytes)
}

/// The length of the whole, valid record at the start of `bytes`, if there is one.
fn whole_record(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..HEADER_LEN as usize)?;
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD_LEN {
        return None;
    }
    let total = HEADER_LEN as usize + len as usize;
    let payload = bytes.get(HEADER_LEN as usize..total)?;
    (crc32c::crc32c(payload) == crc).then_some(total)
}

/// A forward scan of the journal's whole records: how many, where they end, their tree.
struct Scan {
    path: PathBuf,
    file: File,
    end: u64,
    frontier: Frontier,
}

impl Scan {
    fn open(path: &Path) -> Result<Scan, BackupError> {
        let file = File::open(path).map_err(|source| BackupError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Scan {
            path: path.to_owned(),
            file,
            end: 0,
            frontier: Frontier::new(),
        })
    }

    fn io(&self, source: std::io::Error) -> BackupError {
        BackupError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads whole records after the scan's end until `size` entries are scanned or no whole
    /// record follows (the end of the file, or an append under way).
    fn advance(&mut self, size: u64) -> Result<(), BackupError> {
        let file_len = self.file.metadata().map_err(|e| self.io(e))?.len();
        let mut header = [0u8; HEADER_LEN as usize];
        while self.frontier.size() < size && self.end + HEADER_LEN <= file_len {
            self.file
                .read_exact_at(&mut header, self.end)
                .map_err(|e| self.io(e))?;
            let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
            let total = HEADER_LEN + u64::from(len);
            if len == 0 || len > MAX_RECORD_LEN || self.end + total > file_len {
                break;
            }
            let mut record = vec![0u8; total as usize];
            self.file
                .read_exact_at(&mut record, self.end)
                .map_err(|e| self.io(e))?;
            if whole_record(&record).is_none() {
                break;
            }
            self.frontier
                .append_with(leaf_hash(&record[HEADER_LEN as usize..]), |_| {});
            self.end += total;
        }
        Ok(())
    }

    /// Finds the cut at or after the scan's end (see the module docs, step 4) and advances the
    /// scan to it: the checkpoint recorded in `signed-tree`, and whether the cut is the quiet
    /// journal's end rather than that checkpoint's size.
    fn cut(
        &mut self,
        dir: &Path,
        deadline: Instant,
    ) -> Result<(timecredits_ledger::SignedCheckpoint, bool), BackupError> {
        let record = SignedTree::new(dir);
        let mut length = self.file.metadata().map_err(|e| self.io(e))?.len();
        let mut quiet_since = Instant::now();
        loop {
            let signed = record
                .read()
                .map_err(|e| BackupError::Journal {
                    path: dir.join(ledger_files::SIGNED_TREE),
                    reason: e.to_string(),
                })?
                .ok_or_else(|| BackupError::NoLedger {
                    dir: dir.to_owned(),
                })?;
            let size = signed.checkpoint.size;
            if size >= self.frontier.size() {
                self.advance(size)?;
                if self.frontier.size() < size {
                    return Err(BackupError::Journal {
                        path: self.path.clone(),
                        reason: format!(
                            "it holds {} whole entries, fewer than the {size} of the checkpoint \
                             in {}",
                            self.frontier.size(),
                            ledger_files::SIGNED_TREE
                        ),
                    });
                }
                return Ok((signed, false));
            }
            let now = self.file.metadata().map_err(|e| self.io(e))?.len();
            if now != length {
                length = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                self.advance(u64::MAX)?;
                return Ok((signed, true));
            }
            if Instant::now() > deadline {
                return Err(BackupError::NoConsistentPoint {
                    reason: format!(
                        "{} stayed behind the journal, which kept growing",
                        ledger_files::SIGNED_TREE
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What a restore made.
#[derive(Debug)]
pub struct Restored {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The ledger's size once opened (the backup's entries, plus none).
    pub size: u64,
}

/// Restores the backup `archive` into `dir`, which must not exist or be empty. See the module
/// docs: either the directory is made whole and opens, or nothing is changed.
pub fn restore(archive: &Path, dir: &Path) -> Result<Restored, BackupError> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => {
            return Err(BackupError::NotEmpty {
                dir: dir.to_owned(),
            })
        }
        Ok(false) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(BackupError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    }
    let name = dir
        .file_name()
        .ok_or_else(|| BackupError::Io {
            path: dir.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a restore needs a directory name",
            ),
        })?
        .to_string_lossy();
    let staging = dir.with_file_name(format!(".{name}.restoring"));
    if staging.exists() {
        return Err(BackupError::NotEmpty { dir: staging });
    }
    crate::security::private_data_dir(&staging).map_err(|source| BackupError::Io {
        path: staging.clone(),
        source,
    })?;
    let restored = unpack_and_open(archive, &staging);
    let restored = match restored {
        Ok(restored) => restored,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let placed = match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => std::fs::rename(&staging, dir),
    };
    placed
        .and_then(|()| match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => File::open(parent)?.sync_all(),
            _ => Ok(()),
        })
        .map_err(|source| BackupError::Io {
            path: dir.to_owned(),
            source,
        })?;
    Ok(restored)
}

/// Unpacks `archive` into the empty directory `staging`, checks it against its manifest, and
/// opens it as the service would.
fn unpack_and_open(archive: &Path, staging: &Path) -> Result<Restored, BackupError> {
    let damaged = |reason: String| BackupError::Archive {
        path: archive.to_owned(),
        reason,
    };
    let file = File::open(archive).map_err(|source| BackupError::Io {
        path: archive.to_owned(),
        source,
    })?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut sums = BTreeMap::new();
    let mut manifest = None;
    let entries = tar
        .entries()
        .map_err(|e| damaged(format!("unreadable: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(format!("unreadable: {e}")))?;
        let name = entry
            .path()
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .filter(|n| !n.is_empty() && !n.contains('/') && n != "." && n != "..")
            .ok_or_else(|| damaged("it holds a path that is not a plain file name".into()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(damaged(format!("{name} is not a regular file")));
        }
        if name == MANIFEST {
            let mut text = Vec::new();
            entry
                .read_to_end(&mut text)
                .map_err(|e| damaged(format!("{MANIFEST} is unreadable: {e}")))?;
            let read: Manifest = serde_json::from_slice(&text)
                .map_err(|e| damaged(format!("{MANIFEST} is not a manifest: {e}")))?;
            manifest = Some(read);
            continue;
        }
        let path = staging.join(&name);
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| BackupError::Io {
                path: path.clone(),
                source,
            })?;
        let mut writer = Hashing::new(&mut entry);
        let mut out = BufWriter::new(out);
        std::io::copy(&mut writer, &mut out)
            .and_then(|_| out.flush())
            .map_err(|e| damaged(format!("{name} is unreadable: {e}")))?;
        let bytes = writer.bytes;
        let sha256 = hex::encode(writer.hash.finalize());
        out.get_ref()
            .sync_all()
            .map_err(|source| BackupError::Io { path, source })?;
        sums.insert(name, (bytes, sha256));
    }
    let manifest = manifest.ok_or_else(|| damaged(format!("it has no {MANIFEST}")))?;
    if manifest.archive_format > ARCHIVE_FORMAT {
        return Err(damaged(format!(
            "it was written by a newer timecredits (archive format {}); this binary reads archive \
             format {ARCHIVE_FORMAT}; upgrade the binary",
            manifest.archive_format
        )));
    }
    if manifest.data_dir_format > data_dir::FORMAT {
        return Err(damaged(format!(
            "it holds a data directory written by a newer timecredits (format {}); this binary \
             reads format {}; upgrade the binary",
            manifest.data_dir_format,
            data_dir::FORMAT
        )));
    }
    for listed in &manifest.files {
        match sums.remove(&listed.name) {
            Some((bytes, sha256)) if bytes == listed.bytes && sha256 == listed.sha256 => {}
            Some(_) => {
                return Err(damaged(format!(
                    "{} does not match its size and SHA-256 in {MANIFEST}: the archive is damaged",
                    listed.name
                )))
            }
            None => {
                return Err(damaged(format!(
                    "{} is listed in {MANIFEST} but missing",
                    listed.name
                )))
            }
        }
    }
    if let Some(extra) = sums.keys().next() {
        return Err(damaged(format!("{extra} is not listed in {MANIFEST}")));
    }
    let mut settings = Settings::new(staging, std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    settings.origin.clone_from(&manifest.origin);
    let state = AppState::open(&settings).map_err(|e| BackupError::DoesNotOpen(Box::new(e)))?;
    let size = state
        .ledger
        .size()
        .map_err(|e| BackupError::DoesNotOpen(Box::new(e.into())))?;
    drop(state);
    Ok(Restored { manifest, size })
}
