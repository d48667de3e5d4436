//! `receipt` and `consistency`: the two proofs that need no export.
//!
//! A **receipt** is a C2SP `tlog-proof@v1` whose `extra` line carries the entry's canonical
//! bytes; it proves that this entry is leaf `index` of a tree whose root a trusted key signed.
//!
//! A **consistency proof** between two signed checkpoints proves that the newer tree extends the
//! older one: same entries up to the older size, nothing rewritten. The proof file is either one
//! standard base64 hash per line (RFC 6962 order), or the JSON the ledger's consistency endpoint
//! returns: `{"from":M,"to":N,"proof":["base64",…]}`.

use std::path::Path;

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use serde::Deserialize;
use timecredits_domain::Entry;
use timecredits_tlog::checkpoint::Checkpoint;
use timecredits_tlog::merkle::{check_tree, empty_root, Hash, ProofError};
use timecredits_tlog::proof::TlogProof;

use crate::error::{Failure, Inconsistency, UsageError};
use crate::read_file;
use crate::trust::{Trust, Verified};

/// A receipt that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The entry it proves.
    pub entry: Entry,
    /// The entry's canonical bytes.
    pub bytes: Vec<u8>,
    /// The signed checkpoint whose tree includes it.
    pub checkpoint: Checkpoint,
}

/// Verifies the receipt in the file at `path`. `Ok(Err(_))` is an invalid receipt.
pub fn verify_receipt(path: &Path, trust: &Trust) -> Result<Result<Receipt, Failure>, UsageError> {
    let text = read_file(path)?;
    let proof = TlogProof::parse(&text).map_err(|source| UsageError::Receipt {
        path: path.to_owned(),
        source,
    })?;
    Ok(check_receipt(&proof, trust))
}

/// Checks a parsed receipt: the entry decodes strictly, is the one at the proof's index, and the
/// inclusion proof leads to a checkpoint signed by a trusted key for the trusted origin.
pub fn check_receipt(proof: &TlogProof, trust: &Trust) -> Result<Receipt, Failure> {
    let bytes = proof.extra.clone().ok_or(Failure::ReceiptWithoutEntry)?;
    let entry = Entry::decode(&bytes).map_err(Failure::ReceiptEntry)?;
    if entry.seq != proof.index {
        return Err(Failure::ReceiptIndex {
            index: proof.index,
            found: entry.seq,
        });
    }
    let checkpoint = proof
        .verify(trust.origin(), trust.verifiers(), &bytes)
        .map_err(Failure::Receipt)?;
    Ok(Receipt {
        entry,
        bytes,
        checkpoint,
    })
}

/// A consistency proof as read from a file: its hashes and, for the endpoint's JSON, the sizes
/// (from, to) it states.
pub type ProofFile = (Vec<Hash>, Option<(u64, u64)>);

/// Reads a consistency proof file: base64 hashes one per line, or the endpoint's JSON.
pub fn read_proof(path: &Path) -> Result<ProofFile, UsageError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Json {
        from: u64,
        to: u64,
        proof: Vec<String>,
    }
    let bad = |reason: String| UsageError::ProofFile {
        path: path.to_owned(),
        reason,
    };
    let text = read_file(path)?;
    let (lines, sizes): (Vec<String>, _) = if text.trim_start().starts_with('{') {
        let json: Json = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        (json.proof, Some((json.from, json.to)))
    } else {
        (text.lines().map(str::to_owned).collect(), None)
    };
    let hashes = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            BASE64
                .decode(line)
                .ok()
                .and_then(|raw| Hash::try_from(raw).ok())
                .ok_or_else(|| bad(format!("hash {} is not the base64 of 32 bytes", i + 1)))
        })
        .collect::<Result<_, _>>()?;
    Ok((hashes, sizes))
}

/// Checks that `new` extends `old` with `proof`. `Ok(Err(_))` carries the evidence of a
/// rewritten log.
pub fn check_consistency(
    old: &Verified,
    new: &Verified,
    proof: &[Hash],
) -> Result<Result<(), Failure>, UsageError> {
    let (o, n) = (&old.checkpoint, &new.checkpoint);
    if o.size > n.size {
        return Err(UsageError::CheckpointsSwapped {
            old: o.size,
            new: n.size,
        });
    }
    let checked = if o.size == 0 {
        // Every tree extends the empty one; there is no proof to check, only its root.
        match (proof.is_empty(), o.root == empty_root()) {
            (false, _) => Err(ProofError::WrongProofLength {
                got: proof.len(),
                want: 0,
            }),
            (true, false) => Err(ProofError::OldRootMismatch),
            (true, true) => Ok(()),
        }
    } else {
        check_tree(proof, n.size, &n.root, o.size, &o.root)
    };
    Ok(checked.map_err(|error| {
        Failure::NotConsistent(Box::new(Inconsistency {
            old_note: old.note.clone(),
            new_note: new.note.clone(),
            old_size: o.size,
            new_size: n.size,
            proof: proof.to_vec(),
            error,
            recomputed_old_root: None,
        }))
    }))
}

/// Verifies a consistency proof file between two checkpoint files.
pub fn verify_consistency(
    trust: &Trust,
    old: &Path,
    new: &Path,
    proof: &Path,
) -> Result<Result<(Verified, Verified), Failure>, UsageError> {
    let (old, new) = (trust.open_file(old)?, trust.open_file(new)?);
    let (hashes, sizes) = read_proof(proof)?;
    if let Some((from, to)) = sizes {
        if (from, to) != (old.checkpoint.size, new.checkpoint.size) {
            return Err(UsageError::ProofFile {
                path: proof.to_owned(),
                reason: format!(
                    "it is a proof from size {from} to {to}, but the checkpoints have sizes {} and {}",
                    old.checkpoint.size, new.checkpoint.size
                ),
            });
        }
    }
    Ok(check_consistency(&old, &new, &hashes)?.map(|()| (old, new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, contents: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn proof_files_are_lines_of_base64_or_the_endpoints_json() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (BASE64.encode([1u8; 32]), BASE64.encode([2u8; 32]));
        let lines = file(dir.path(), "p.txt", &format!("{a}\n{b}\n"));
        assert_eq!(read_proof(&lines).unwrap(), (vec![[1; 32], [2; 32]], None));
        let json = file(
            dir.path(),
            "p.json",
            &format!(r#"{{"from":3,"to":9,"proof":["{a}","{b}"]}}"#),
        );
        assert_eq!(
            read_proof(&json).unwrap(),
            (vec![[1; 32], [2; 32]], Some((3, 9)))
        );
        assert_eq!(
            read_proof(&file(dir.path(), "e.txt", "")).unwrap().0,
            Vec::<Hash>::new()
        );
        let bad = file(dir.path(), "bad.txt", &format!("{a}\nnot base64\n"));
        let err = read_proof(&bad).unwrap_err().to_string();
        assert!(
            err.ends_with("hash 2 is not the base64 of 32 bytes"),
            "{err}"
        );
        let short = file(
            dir.path(),
            "short.txt",
            &format!("{}\n", BASE64.encode([1u8; 31])),
        );
        assert!(read_proof(&short).is_err());
    }
}
