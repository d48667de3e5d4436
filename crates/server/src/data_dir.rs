//! The data directory as a whole: who holds it, and which on-disk format it is in.
//!
//! - **The lock.** The service and every operator command that opens the ledger hold an
//!   exclusive lock on the `lock` file for as long as they run, and write their process id into
//!   it, so that a second process is told which one holds the directory rather than the raw
//!   error of the state store's own lock.
//! - **The format.** `FORMAT` holds the number of the on-disk format, written when the directory
//!   is created and checked before anything else is read, so that a binary older than the
//!   directory says so instead of failing on the first record it cannot parse. A directory made
//!   before the file existed is format 1, and the file is written.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use timecredits_ledger::keys::write_private_file;

/// Files of the data directory as a whole.
pub mod layout {
    /// The lock the running service (or operator command) holds, with its process id.
    pub const LOCK: &str = "lock";
    /// The on-disk format number, one line.
    pub const FORMAT: &str = "FORMAT";
}

/// The on-disk format this binary writes and reads. Raise it when a change makes a data
/// directory unreadable to earlier binaries, and say in `deploy/README.md` how to upgrade.
pub const FORMAT: u32 = 1;

/// How long taking the lock waits when this very process holds it: a service stopped in this
/// process lets go of the directory only once its HTTP workers have dropped it.
const OWN_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process (or another service in this one) holds the lock.
    #[error("the data directory {} is in use by the running service ({}); stop it first", dir.display(), pid.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}")))]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// The process holding it, as it wrote into the lock file.
        pid: Option<u32>,
    },
    /// The directory was written in a format newer than this binary reads.
    #[error(
        "the data directory {} was written by a newer timecredits (format {found}); this binary \
         reads format {FORMAT}; upgrade the binary",
        dir.display()
    )]
    Newer {
        /// The data directory.
        dir: PathBuf,
        /// The format number found.
        found: u32,
    },
    /// The format file does not hold a format number.
    #[error(
        "{} does not hold a format number (found {found:?}); it holds one line, the format of \
         the data directory ({FORMAT} for this binary)",
        path.display()
    )]
    UnreadableFormat {
        /// The format file.
        path: PathBuf,
        /// What it holds.
        found: String,
    },
    /// An I/O failure on a file of the directory.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The data directory, locked by this process until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist) and writes this process's id into it; refuses
    /// with [`DataDirError::InUse`] when another process holds it.
    pub fn take(dir: &Path) -> Result<DirLock, DataDirError> {
        let path = dir.join(layout::LOCK);
        let io = |source| DataDirError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let deadline = Instant::now() + OWN_RELEASE_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let pid = holder(&mut file);
                    if pid == Some(std::process::id()) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    return Err(DataDirError::InUse {
                        dir: dir.to_owned(),
                        pid,
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(DirLock { _file: file })
    }
}

/// The process id written in the lock file, if it holds one.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The format of the data directory in `dir`, if this binary reads it: the number in its
/// format file, or 1 for a directory without one (made before the file existed, or new).
pub fn read_format(dir: &Path) -> Result<u32, DataDirError> {
    let path = dir.join(layout::FORMAT);
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(found) if found <= FORMAT => Ok(found),
            Ok(found) => Err(DataDirError::Newer {
                dir: dir.to_owned(),
                found,
            }),
            Err(_) => Err(DataDirError::UnreadableFormat { path, found: text }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(1),
        Err(source) => Err(DataDirError::Io { path, source }),
    }
}

/// Checks that this binary reads the format of the data directory in `dir` (see
/// [`read_format`]), and records it in a directory without a format file. Call it with the lock
/// held, before anything else is read.
pub fn check_format(dir: &Path) -> Result<(), DataDirError> {
    read_format(dir)?;
    let path = dir.join(layout::FORMAT);
    if path.exists() {
        return Ok(());
    }
    write_private_file(&path, format!("{FORMAT}\n").as_bytes())
        .map_err(|source| DataDirError::Io { path, source })
}

/// Takes the lock of `dir`, then checks its format (see [`check_format`]).
pub fn claim(dir: &Path) -> Result<DirLock, DataDirError> {
    let lock = DirLock::take(dir)?;
    check_format(dir)?;
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_names_the_holder_and_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = claim(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(layout::FORMAT)).unwrap(),
            format!("{FORMAT}\n")
        );
        // Another process is simulated by a pid that is not ours: no wait, a refusal.
        drop(held);
        let mut file = File::create(dir.path().join(layout::LOCK)).unwrap();
        writeln!(file, "1").unwrap();
        file.lock().unwrap();
        let refused = DirLock::take(dir.path()).unwrap_err().to_string();
        assert!(
            refused.contains("in use by the running service (pid 1)"),
            "{refused}"
        );
        drop(file);

        std::fs::write(dir.path().join(layout::FORMAT), "2\n").unwrap();
        let newer = claim(dir.path()).unwrap_err().to_string();
        assert!(
            newer.contains("written by a newer timecredits (format 2); this binary reads format 1"),
            "{newer}"
        );
    }
}
