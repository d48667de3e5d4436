//! What the auditor trusts: the ledger's verifier key(s), pinned out of band, and its origin.

use std::path::Path;

use timecredits_tlog::checkpoint::{open_checkpoint, Checkpoint, CheckpointError};
use timecredits_tlog::note::NoteVerifier;

use crate::error::UsageError;
use crate::read_file;

/// The pinned keys and origin every checkpoint must verify against.
#[derive(Clone, Debug)]
pub struct Trust {
    verifiers: Vec<NoteVerifier>,
    origin: String,
}

/// A signed checkpoint that verified, with its note text kept verbatim as evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The signed note, verbatim.
    pub note: String,
}

impl Trust {
    /// Trusts the given C2SP verifier keys (`name+keyid+base64`; several during a key rotation)
    /// for `origin`. Without an origin, the first key's name is used: the ledger names its key
    /// after its origin.
    pub fn new<S: AsRef<str>>(keys: &[S], origin: Option<&str>) -> Result<Trust, UsageError> {
        let verifiers = keys
            .iter()
            .map(|key| {
                NoteVerifier::parse(key.as_ref()).map_err(|source| UsageError::BadKey {
                    key: key.as_ref().to_owned(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let origin = match (origin, verifiers.first()) {
            (_, None) => return Err(UsageError::NoKey),
            (Some(origin), _) => origin.to_owned(),
            (None, Some(first)) => first.name().to_owned(),
        };
        Ok(Trust { verifiers, origin })
    }

    /// The origin checkpoints must be for.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The trusted keys.
    pub fn verifiers(&self) -> &[NoteVerifier] {
        &self.verifiers
    }

    /// Opens a signed checkpoint: a valid signature by a trusted key (strict Ed25519
    /// verification), for the trusted origin.
    pub fn open(&self, note: &str) -> Result<Verified, CheckpointError> {
        let (checkpoint, _) = open_checkpoint(note.as_bytes(), &self.origin, &self.verifiers)?;
        Ok(Verified {
            checkpoint,
            note: note.to_owned(),
        })
    }

    /// Reads and opens a checkpoint file the auditor supplied (one kept from before, or fetched
    /// for a consistency check). Failing to open it makes the check unusable.
    pub fn open_file(&self, path: &Path) -> Result<Verified, UsageError> {
        let note = read_file(path)?;
        self.open(&note).map_err(|source| UsageError::Checkpoint {
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::UsageError;

    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    #[test]
    fn the_origin_defaults_to_the_first_keys_name() {
        let trust = Trust::new(&[VKEY], None).unwrap();
        assert_eq!(trust.origin(), "PeterNeumann");
        assert_eq!(trust.verifiers().len(), 1);
        let pinned = Trust::new(&[VKEY], Some("example.org/log")).unwrap();
        assert_eq!(pinned.origin(), "example.org/log");
    }

    #[test]
    fn keys_must_be_given_and_well_formed() {
        assert!(matches!(
            Trust::new::<&str>(&[], None),
            Err(UsageError::NoKey)
        ));
        let err = Trust::new(&[VKEY, "PeterNeumann+00000000+AQ=="], None).unwrap_err();
        assert!(
            matches!(err, UsageError::BadKey { ref key, .. } if key == "PeterNeumann+00000000+AQ==")
        );
    }
}
