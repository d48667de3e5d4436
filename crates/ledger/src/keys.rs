//! The ledger's signing key: created on first use, stored as PKCS#8 PEM with mode 0600.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;

use crate::error::LedgerError;

/// Loads the signing key at `path`, creating a new random one if the file does not exist.
///
/// The key is written with [`write_private_file`]. The key itself is never logged.
pub fn load_or_create(path: &Path) -> Result<SigningKey, LedgerError> {
    if path.exists() {
        return load(path);
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| LedgerError::Key(format!("no randomness: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| LedgerError::Key(format!("cannot encode key: {e}")))?;
    write_private_file(path, pem.as_bytes())?;
    tracing::info!(path = %path.display(), "created a new ledger signing key");
    Ok(key)
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

/// Loads an existing signing key.
pub fn load(path: &Path) -> Result<SigningKey, LedgerError> {
    let pem = std::fs::read_to_string(path)?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        LedgerError::Key(format!(
            "{} is not a PKCS#8 ed25519 key: {e}",
            path.display()
        ))
    })
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
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing-key.pem");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(load_or_create(&path), Err(LedgerError::Key(_))));
    }
}
