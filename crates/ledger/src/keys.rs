//! The ledger's signing keys: created on first use, stored as PKCS#8 PEM with mode 0600, and
//! rotated by recording a `key` entry (see [`Keyring`]).
//!
//! # One rotation per overlap
//! A rotation is refused ([`LedgerError::KeyOverlapRunning`]) while the previous rotation's
//! overlap runs: the keyring holds one previous key, so a second rotation would retire the first
//! key before the end of the overlap promised to verifiers who know only that key.
//!
//! # Files in the data directory
//! - `signing-key.pem`: the current key; it signs every checkpoint.
//! - `signing-key.previous.pem`: the key before the last rotation; it also signs checkpoints for
//!   the overlap period after the rotation (so that verifiers who know only the old key keep
//!   working while they learn the new one), and is unused afterwards.
//! - `signing-key.next.pem`: only while a rotation is under way: the new key, written before its
//!   `key` entry is committed. On opening, the ledger finishes the rotation if the entry was
//!   committed (the files move up one place) and discards the new key if it was not.
//! - `verifier-keys`: the public verifier key of every key the ledger has signed with, oldest
//!   first, one a line, so that an export of an old tree size can name the keys that signed its
//!   checkpoint after the private keys are gone.
//!
//! Keys are written as PKCS#8 v1 (RFC 8410, `PRIVATE KEY`, the seed only): the form OpenSSL 3
//! and Python's `cryptography` read. Files of the v2 form (with the public key) that earlier
//! versions wrote are still read, and rewritten as v1 when the ledger opens.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::SigningKey;
use timecredits_domain::KeyRotation;
use timecredits_tlog::note::{NoteSigner, NoteVerifier};

use crate::error::LedgerError;
use crate::ledger::layout;

/// Loads the signing key at `path`, creating a new random one if the file does not exist.
///
/// The key is written with [`write_private_file`]. The key itself is never logged.
pub fn load_or_create(path: &Path) -> Result<SigningKey, LedgerError> {
    if path.exists() {
        return load(path);
    }
    let key = generate()?;
    save(path, &key)?;
    tracing::info!(path = %path.display(), "created a new ledger signing key");
    Ok(key)
}

/// A new random signing key.
pub fn generate() -> Result<SigningKey, LedgerError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| LedgerError::Key(format!("no randomness: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The file listing the verifier keys the ledger has signed with (see the module docs).
pub const VERIFIER_KEYS: &str = "verifier-keys";

/// `key` as PKCS#8 v1 PEM. `SigningKey::to_pkcs8_pem` writes v2 (with the public key), which
/// OpenSSL 3 and Python's `cryptography` refuse to read.
fn encode(key: &SigningKey) -> Result<String, LedgerError> {
    let bytes = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let pem = bytes
        .to_pkcs8_pem(Default::default())
        .map_err(|e| LedgerError::Key(format!("cannot encode key: {e}")))?;
    Ok(pem.as_str().to_owned())
}

/// Writes `key` to `path` as PKCS#8 v1 PEM with [`write_private_file`].
fn save(path: &Path, key: &SigningKey) -> Result<(), LedgerError> {
    write_private_file(path, encode(key)?.as_bytes())?;
    Ok(())
}

/// Writes a secret file durably with mode 0600: to a temporary file, synced, then renamed into
/// place (and the directory synced), so a crash never leaves a half-written secret.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Loads an existing signing key. A key file in another PKCS#8 form than the one `save`
/// writes (the v2 form of earlier versions) is rewritten in that form, so that the usual tools
/// read every key file.
pub fn load(path: &Path) -> Result<SigningKey, LedgerError> {
    let pem = std::fs::read_to_string(path)?;
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        LedgerError::Key(format!(
            "{} is not a PKCS#8 ed25519 key: {e}",
            path.display()
        ))
    })?;
    if pem != encode(&key)? {
        save(path, &key)?;
        tracing::info!(path = %path.display(), "rewrote the key file as PKCS#8 v1");
    }
    Ok(key)
}

/// A signer for `key` under the ledger's origin.
pub fn signer(origin: &str, key: SigningKey) -> Result<NoteSigner, LedgerError> {
    NoteSigner::new(origin, key)
        .map_err(|e| LedgerError::Key(format!("origin {origin:?} cannot name a key: {e}")))
}

/// The keys that sign checkpoints.
///
/// Invariant: after a `key` entry, `current` is the key it names, and `previous` (while it is
/// kept) is the key whose endorsement it carries.
pub struct Keyring {
    origin: String,
    current: NoteSigner,
    /// The key before the last rotation, and the end of its overlap.
    previous: Option<(NoteSigner, DateTime<Utc>)>,
    /// A key [`Keyring::prepare`] made ready, waiting for its `key` entry to be committed.
    incoming: Option<NoteSigner>,
    overlap: TimeDelta,
    /// Every verifier key the ledger has signed with, oldest first (the `verifier-keys` file).
    known: Vec<String>,
}

impl Keyring {
    /// Loads the keys of the ledger in `dir`. `latest` is the last `key` entry in the log and the
    /// time it was recorded, if there is one. Finishes or abandons a rotation a crash
    /// interrupted, and checks that the key files are the ones the log names.
    pub fn open(
        dir: &Path,
        origin: &str,
        latest: Option<(&KeyRotation, DateTime<Utc>)>,
        overlap: TimeDelta,
    ) -> Result<Keyring, LedgerError> {
        let next = dir.join(layout::NEXT_SIGNING_KEY);
        if next.exists() {
            let vkey = signer(origin, load(&next)?)?.verifier().to_vkey();
            if latest.is_some_and(|(rotation, _)| rotation.vkey() == vkey) {
                tracing::info!("finishing a key rotation that was interrupted");
                promote_next(dir)?;
            } else {
                tracing::warn!(
                    "discarding the key of a rotation whose key entry was never committed"
                );
                std::fs::remove_file(&next)?;
            }
        }
        let current = signer(origin, load_or_create(&dir.join(layout::SIGNING_KEY))?)?;
        let mut previous = None;
        if let Some((rotation, at)) = latest {
            if current.verifier().to_vkey() != rotation.vkey() {
                return Err(LedgerError::Key(format!(
                    "{} is not the key the ledger's last key entry hands over to ({}); restore it \
                     from a backup",
                    layout::SIGNING_KEY,
                    rotation.vkey()
                )));
            }
            let path = dir.join(layout::PREVIOUS_SIGNING_KEY);
            if path.exists() {
                let key = signer(origin, load(&path)?)?;
                let message = KeyRotation::message(rotation.vkey());
                if !key.verifier().verify(&message, rotation.endorsement()) {
                    return Err(LedgerError::Key(format!(
                        "{} is not the key that endorsed the current one",
                        layout::PREVIOUS_SIGNING_KEY
                    )));
                }
                previous = Some((key, at + overlap));
            }
        }
        let mut known = read_known(dir)?;
        let before = known.len();
        let keys = previous.iter().map(|(key, _)| key).chain([&current]);
        for vkey in keys.map(|key| key.verifier().to_vkey()) {
            if !known.contains(&vkey) {
                known.push(vkey);
            }
        }
        if known.len() != before {
            write_known(dir, &known)?;
        }
        Ok(Keyring {
            origin: origin.to_owned(),
            current,
            previous,
            incoming: None,
            overlap,
            known,
        })
    }

    /// The verifier keys of the current key and of the previous one (whatever its overlap):
    /// between them they signed the ledger's latest checkpoint.
    pub fn verifiers(&self) -> Vec<NoteVerifier> {
        let previous = self.previous.as_ref().map(|(key, _)| key);
        std::iter::once(&self.current)
            .chain(previous)
            .map(NoteSigner::verifier)
            .collect()
    }

    /// Every verifier key the ledger has signed with, oldest first. A ledger rotated twice
    /// before this list was kept has forgotten its first keys.
    pub fn known(&self) -> &[String] {
        &self.known
    }

    /// When the overlap of the last rotation ends, if it is still running at `now`.
    pub fn overlap_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous
            .as_ref()
            .map(|(_, until)| *until)
            .filter(|until| now < *until)
    }

    /// The keys that sign a checkpoint at `now`: the current one, and the previous one during
    /// its overlap.
    pub fn signers(&self, now: DateTime<Utc>) -> Vec<&NoteSigner> {
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(key, _)| key);
        std::iter::once(&self.current).chain(previous).collect()
    }

    /// The current verifier key.
    pub fn vkey(&self) -> String {
        self.current.verifier().to_vkey()
    }

    /// Writes a new key to `signing-key.next.pem` and keeps it ready for the `key` entry that
    /// will name it. Returns its verifier key.
    ///
    /// Refused while another rotation is under way, and while the last one's overlap runs
    /// ([`LedgerError::KeyOverlapRunning`]): the keyring keeps a single previous key, so a
    /// second rotation would stop the first key signing before its promised overlap ended.
    pub fn prepare(&mut self, dir: &Path) -> Result<String, LedgerError> {
        if self.incoming.is_some() {
            return Err(LedgerError::RotationInProgress);
        }
        if let Some(until) = self.overlap_until(Utc::now()) {
            return Err(LedgerError::KeyOverlapRunning { until });
        }
        let key = generate()?;
        save(&dir.join(layout::NEXT_SIGNING_KEY), &key)?;
        let incoming = signer(&self.origin, key)?;
        let vkey = incoming.verifier().to_vkey();
        // Listed before its entry can commit; a key whose rotation fails stays listed but never
        // signs, and an export names only keys whose signature its checkpoint carries.
        if !self.known.contains(&vkey) {
            let mut known = self.known.clone();
            known.push(vkey.clone());
            write_known(dir, &known)?;
            self.known = known;
        }
        self.incoming = Some(incoming);
        Ok(vkey)
    }

    /// Forgets a prepared key whose rotation failed (its file is discarded on the next open).
    pub fn abandon(&mut self) {
        self.incoming = None;
    }

    /// The `key` entry body handing over to `vkey`, endorsed by the current key. `vkey` must be
    /// the prepared key.
    pub fn endorse(&self, vkey: &str) -> Result<KeyRotation, LedgerError> {
        match &self.incoming {
            Some(incoming) if incoming.verifier().to_vkey() == vkey => {
                let endorsement = self.current.sign(&KeyRotation::message(vkey));
                Ok(KeyRotation::new(vkey, endorsement)?)
            }
            _ => Err(LedgerError::Key(format!(
                "no key was prepared for a rotation to {vkey}"
            ))),
        }
    }

    /// Makes the prepared key current once its `key` entry, recorded `at`, is committed; the
    /// current key becomes the previous one, signing too until `at` plus the overlap.
    pub fn rotate(&mut self, vkey: &str, at: DateTime<Utc>) -> Result<(), LedgerError> {
        let incoming = self
            .incoming
            .take_if(|incoming| incoming.verifier().to_vkey() == vkey)
            .ok_or_else(|| {
                LedgerError::Key(format!("a key entry names {vkey}, which was not prepared"))
            })?;
        let previous = std::mem::replace(&mut self.current, incoming);
        self.previous = Some((previous, at + self.overlap));
        Ok(())
    }
}

/// Reads the `verifier-keys` file (empty if it does not exist yet).
fn read_known(dir: &Path) -> Result<Vec<String>, LedgerError> {
    match std::fs::read_to_string(dir.join(VERIFIER_KEYS)) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Replaces the `verifier-keys` file (public keys, but mode 0600 like every file of the ledger).
fn write_known(dir: &Path, known: &[String]) -> Result<(), LedgerError> {
    let text: String = known.iter().map(|vkey| format!("{vkey}\n")).collect();
    write_private_file(&dir.join(VERIFIER_KEYS), text.as_bytes())?;
    Ok(())
}

/// Moves the keys up one place once a rotation's `key` entry is committed: the current key
/// becomes the previous one, the next one the current. Each step is atomic and the current key
/// file exists at every moment, so a crash at any point leaves a state [`Keyring::open`]
/// finishes.
pub fn promote_next(dir: &Path) -> Result<(), LedgerError> {
    let current = dir.join(layout::SIGNING_KEY);
    write_private_file(
        &dir.join(layout::PREVIOUS_SIGNING_KEY),
        &std::fs::read(&current)?,
    )?;
    std::fs::rename(dir.join(layout::NEXT_SIGNING_KEY), &current)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing-key.pem");
        let first = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = load_or_create(&path).unwrap();
        assert_eq!(first.to_bytes(), again.to_bytes());
    }

    #[test]
    fn one_rotation_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create(&dir.path().join(layout::SIGNING_KEY)).unwrap();
        let mut ring = Keyring {
            origin: "test.example/log".into(),
            current: signer("test.example/log", key).unwrap(),
            previous: None,
            incoming: None,
            overlap: TimeDelta::days(1),
            known: Vec::new(),
        };
        let vkey = ring.prepare(dir.path()).unwrap();
        assert!(matches!(
            ring.prepare(dir.path()),
            Err(LedgerError::RotationInProgress)
        ));
        assert!(ring.endorse("test.example/log+00000000+AQ").is_err());
        let rotation = ring.endorse(&vkey).unwrap();
        let at = chrono::Utc::now();
        ring.rotate(rotation.vkey(), at).unwrap();
        assert_eq!(ring.vkey(), vkey);
        assert_eq!(ring.signers(at).len(), 2);
        assert_eq!(ring.signers(at + TimeDelta::days(1)).len(), 1);
        assert!(matches!(
            ring.prepare(dir.path()),
            Err(LedgerError::KeyOverlapRunning { until }) if until == at + TimeDelta::days(1)
        ));
        // Once the overlap is over, the next rotation may start.
        ring.previous.as_mut().unwrap().1 = Utc::now();
        ring.prepare(dir.path())
            .expect("the next rotation may start");
        assert_eq!(
            ring.known(),
            [
                vkey.as_str(),
                &ring.incoming.as_ref().unwrap().verifier().to_vkey()
            ]
        );
    }

    /// The key files are PKCS#8 v1 PEM that OpenSSL 3 and Python's `cryptography` read, naming
    /// the same public key; a v2 file of earlier versions is rewritten as v1 when loaded.
    #[test]
    fn key_files_are_read_by_openssl_and_python() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(layout::SIGNING_KEY);
        let key = load_or_create(&path).unwrap();
        let public = hex(key.verifying_key().as_bytes());
        let python = "import sys\nfrom cryptography.hazmat.primitives import serialization as s\n\
            k = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n\
            print(k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex())";
        let out = std::process::Command::new("python3")
            .args(["-c", python])
            .arg(&path)
            .output()
            .expect("python3 with `cryptography` (pip install -r tests/python-requirements.txt)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public);
        match std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&path)
            .output()
        {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // The SubjectPublicKeyInfo ends with the 32 bytes of the public key.
                assert_eq!(hex(&out.stdout[out.stdout.len() - 32..]), public);
            }
            Err(e) => eprintln!("SKIPPED the OpenSSL part: no `openssl` command ({e})"),
        }

        let v2 = key.to_pkcs8_pem(Default::default()).unwrap();
        std::fs::write(&path, v2.as_bytes()).unwrap();
        assert_eq!(load(&path).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            encode(&key).unwrap()
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing-key.pem");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(load_or_create(&path), Err(LedgerError::Key(_))));
    }
}
