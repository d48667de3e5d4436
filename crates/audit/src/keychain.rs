//! Following the ledger's signing keys through its `key` entries.
//!
//! The auditor pins the key(s) they obtained out of band. When the ledger rotates its key it
//! records a `key` entry naming the new key, endorsed by the key it replaces (an ed25519
//! signature over [`KeyRotation::message`]). A verifier that trusts the old key can therefore
//! trust the new one, and from then on only the new one: the checkpoint of an export that
//! includes a rotation must be signed by the last key the log handed over to.
//!
//! A rotation is accepted when its endorsement verifies with the key current before it (or,
//! before the first rotation in the export, with any pinned key), or when the auditor pinned
//! the new key itself. When the first rotation is neither, the failure names the key it hands
//! over to: pinning it (or the older key, which no entry names) starts the chain. AUDIT.md's
//! Python verifier applies the same rule with the same messages.

use serde::Serialize;
use timecredits_domain::KeyRotation;
use timecredits_tlog::checkpoint::open_checkpoint;
use timecredits_tlog::note::NoteVerifier;

use crate::error::Failure;
use crate::trust::Trust;

/// One hand-over the export records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The `key` entry's sequence number.
    pub seq: u64,
    /// The key it hands over to.
    pub vkey: String,
}

/// The keys followed so far.
pub struct KeyChain<'a> {
    trust: &'a Trust,
    /// The key the last `key` entry handed over to.
    current: Option<NoteVerifier>,
    rotations: Vec<Rotation>,
}

impl<'a> KeyChain<'a> {
    /// A chain that starts from the pinned keys.
    pub fn new(trust: &'a Trust) -> Self {
        KeyChain {
            trust,
            current: None,
            rotations: Vec::new(),
        }
    }

    /// Follows the `key` entry `seq`, or says why it cannot be trusted.
    pub fn follow(&mut self, seq: u64, rotation: &KeyRotation) -> Result<(), Failure> {
        let refuse = |reason: String| Failure::KeyRotation { seq, reason };
        let new = NoteVerifier::parse(rotation.vkey())
            .map_err(|e| refuse(format!("names a malformed verifier key: {e}")))?;
        if new.name() != self.trust.origin() {
            return Err(refuse(format!(
                "names a key for {:?}, not for the origin {:?}",
                new.name(),
                self.trust.origin()
            )));
        }
        let message = KeyRotation::message(rotation.vkey());
        let endorsed = match &self.current {
            Some(current) => current.verify(&message, rotation.endorsement()),
            None => self
                .trust
                .verifiers()
                .iter()
                .any(|pinned| pinned.verify(&message, rotation.endorsement())),
        };
        let pinned = self.trust.verifiers().contains(&new);
        if !endorsed && !pinned {
            return Err(refuse(match &self.current {
                Some(current) => format!(
                    "is not endorsed by the key it replaces, {current} (entry {})",
                    self.rotations.last().map_or(0, |r| r.seq)
                ),
                // The key before the first hand-over is in no entry: name the one that is.
                None => format!(
                    "is endorsed by none of the pinned keys: pin {}, the key it hands over to, \
                     or the key the ledger had before it",
                    rotation.vkey()
                ),
            }));
        }
        self.rotations.push(Rotation {
            seq,
            vkey: rotation.vkey().to_owned(),
        });
        self.current = Some(new);
        Ok(())
    }

    /// The key the last `key` entry handed over to, with that entry's sequence number.
    pub fn current(&self) -> Option<(u64, &NoteVerifier)> {
        let seq = self.rotations.last()?.seq;
        Some((seq, self.current.as_ref()?))
    }

    /// After a hand-over, checks that `note` (a signed checkpoint) is signed by the key the log
    /// last handed over to; `None` when there was no hand-over.
    pub fn check_signed_by_current(&self, note: &str) -> Option<Result<(), Failure>> {
        let (seq, current) = self.current()?;
        let opened = open_checkpoint(
            note.as_bytes(),
            self.trust.origin(),
            std::slice::from_ref(current),
        );
        Some(opened.map(drop).map_err(|source| Failure::NotCurrentKey {
            seq,
            vkey: current.to_vkey(),
            source,
        }))
    }

    /// The hand-overs followed, in log order.
    pub fn into_rotations(self) -> Vec<Rotation> {
        self.rotations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use timecredits_tlog::note::NoteSigner;

    const ORIGIN: &str = "example.org/ledger";

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn rotation(from: &NoteSigner, to: &NoteSigner) -> KeyRotation {
        let vkey = to.verifier().to_vkey();
        KeyRotation::new(&vkey, from.sign(&KeyRotation::message(&vkey))).unwrap()
    }

    #[test]
    fn a_chain_is_followed_from_a_pinned_key() {
        let (k1, k2, k3) = (signer(1), signer(2), signer(3));
        let trust = Trust::new(&[k1.verifier().to_vkey()], None).unwrap();
        let mut chain = KeyChain::new(&trust);
        chain.follow(5, &rotation(&k1, &k2)).unwrap();
        chain.follow(9, &rotation(&k2, &k3)).unwrap();
        assert_eq!(
            chain.current().map(|(seq, v)| (seq, v.clone())),
            Some((9, k3.verifier()))
        );
        let seqs: Vec<u64> = chain.into_rotations().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [5, 9]);
    }

    #[test]
    fn a_retired_key_cannot_endorse_again() {
        let (k1, k2, k3) = (signer(1), signer(2), signer(3));
        let trust = Trust::new(&[k1.verifier().to_vkey()], None).unwrap();
        let mut chain = KeyChain::new(&trust);
        chain.follow(5, &rotation(&k1, &k2)).unwrap();
        let err = chain.follow(9, &rotation(&k1, &k3)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("entry 9: the key rotation is not endorsed by the key it replaces"),
            "{err}"
        );
    }

    #[test]
    fn an_unendorsed_key_is_refused_unless_pinned() {
        let (k1, k2, stranger) = (signer(1), signer(2), signer(7));
        let trust = Trust::new(&[k1.verifier().to_vkey()], None).unwrap();
        let forged = rotation(&stranger, &k2);
        let err = KeyChain::new(&trust).follow(3, &forged).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "entry 3: the key rotation is endorsed by none of the pinned keys: pin {}, the \
                 key it hands over to, or the key the ledger had before it",
                k2.verifier()
            )
        );
        let both = Trust::new(&[k1.verifier().to_vkey(), k2.verifier().to_vkey()], None).unwrap();
        KeyChain::new(&both).follow(3, &forged).unwrap();
    }

    #[test]
    fn a_key_for_another_origin_is_refused() {
        let k1 = signer(1);
        let other = NoteSigner::new("other.org/log", SigningKey::from_bytes(&[2; 32])).unwrap();
        let trust = Trust::new(&[k1.verifier().to_vkey()], None).unwrap();
        let err = KeyChain::new(&trust)
            .follow(3, &rotation(&k1, &other))
            .unwrap_err();
        assert!(err.to_string().contains("not for the origin"), "{err}");
    }
}
