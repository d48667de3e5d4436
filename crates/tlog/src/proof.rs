//! Transparency log proofs (c2sp.org/tlog-proof@v1): an offline-verifiable
//! receipt that a record is in a log.
//!
//! A proof bundles the record's index, its RFC 6962 inclusion proof and the
//! signed checkpoint the proof leads to:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64, optional and unauthenticated>
//! index <decimal record index>
//! <base64 proof hash, from the leaf's sibling up>
//! ...
//!
//! <signed checkpoint, verbatim>
//! ```
//!
//! Anyone holding the record, the log's origin and its public key can check
//! the receipt without contacting the log.

use crate::checkpoint::{decode_hash, open_checkpoint, parse_decimal, Checkpoint, CheckpointError};
use crate::merkle::{check_record, leaf_hash, Hash, ProofError};
use crate::note::NoteVerifier;
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};

/// First line of every proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A tlog-proof: the inclusion of one record in a signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque application data. It is not authenticated by anything, so it
    /// must not be trusted, only used to help recompute what is verified.
    pub extra: Option<Vec<u8>>,
    /// Zero-based index of the record in the log.
    pub index: u64,
    /// RFC 6962 inclusion proof of the record in the checkpoint's tree,
    /// from the leaf's sibling up to the root's child.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub signed_checkpoint: String,
}

/// Why a tlog-proof was rejected.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TlogProofError {
    /// The text is not in the tlog-proof format.
    #[error("malformed tlog-proof: {0}")]
    Malformed(&'static str),
    /// The checkpoint is not validly signed by a trusted key for the origin.
    #[error("tlog-proof checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("tlog-proof inclusion proof: {0}")]
    Inclusion(#[from] ProofError),
}

/// Splits off the next line, which must end in a newline.
fn next_line(s: &str) -> Result<(&str, &str), TlogProofError> {
    s.split_once('\n')
        .ok_or(TlogProofError::Malformed("unexpected end of proof"))
}

impl TlogProof {
    /// Returns the proof in its text form (a `.tlog-proof` file).
    pub fn to_text(&self) -> String {
        let mut text = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            text.push_str(&format!("extra {}\n", BASE64.encode(extra)));
        }
        text.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            text.push_str(&BASE64.encode(h));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.signed_checkpoint);
        text
    }

    /// Parses the text form strictly. The checkpoint is kept verbatim; it
    /// is only checked by [`TlogProof::verify`].
    pub fn parse(text: &str) -> Result<Self, TlogProofError> {
        let (header, rest) = next_line(text)?;
        if header != TLOG_PROOF_HEADER {
            return Err(TlogProofError::Malformed(
                "first line is not c2sp.org/tlog-proof@v1",
            ));
        }
        let (mut line, mut rest) = next_line(rest)?;
        let extra = match line.strip_prefix("extra ") {
            Some(b64) => {
                let extra = BASE64
                    .decode(b64)
                    .map_err(|_| TlogProofError::Malformed("extra data is not base64"))?;
                (line, rest) = next_line(rest)?;
                Some(extra)
            }
            None => None,
        };
        let index = line.strip_prefix("index ").and_then(parse_decimal).ok_or(
            TlogProofError::Malformed(
                "missing \"index <n>\" line, with n decimal without leading zeros",
            ),
        )?;
        let mut hashes = Vec::new();
        loop {
            let (line, tail) = next_line(rest)?;
            rest = tail;
            if line.is_empty() {
                break;
            }
            hashes.push(
                decode_hash(line)
                    .ok_or(TlogProofError::Malformed("proof line is not a base64 hash"))?,
            );
        }
        if rest.is_empty() {
            return Err(TlogProofError::Malformed("missing checkpoint"));
        }
        Ok(Self {
            extra,
            index,
            hashes,
            signed_checkpoint: rest.to_owned(),
        })
    }

    /// Verifies that the record `leaf_data` is in the log: the checkpoint is
    /// signed by one of `verifiers` for `origin`, and the inclusion proof
    /// leads from the record's leaf hash at `index` to the checkpoint's
    /// root. Returns the verified checkpoint.
    pub fn verify(
        &self,
        origin: &str,
        verifiers: &[NoteVerifier],
        leaf_data: &[u8],
    ) -> Result<Checkpoint, TlogProofError> {
        self.verify_leaf_hash(origin, verifiers, &leaf_hash(leaf_data))
    }

    /// Like [`TlogProof::verify`], for a record known only by its leaf hash
    /// (`SHA-256(0x00 || record)`).
    pub fn verify_leaf_hash(
        &self,
        origin: &str,
        verifiers: &[NoteVerifier],
        leaf: &Hash,
    ) -> Result<Checkpoint, TlogProofError> {
        let (cp, _) = open_checkpoint(self.signed_checkpoint.as_bytes(), origin, verifiers)?;
        check_record(&self.hashes, cp.size, &cp.root, self.index, leaf)?;
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::sign_checkpoint;
    use crate::merkle::{prove_record, tree_hash, MemoryHashes};
    use crate::note::{NoteError, NoteSigner};
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "example.com/ledger";

    // The example from the tlog-proof spec; its signatures are elided, so it
    // can only be parsed, not verified.
    const SPEC_EXAMPLE: &str = "c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u{2014} example.com/fancylog hI2DJw[...]1roloI=
\u{2014} witness1.example mJirIklj[...]qY9v2B/5bg==
";

    fn records() -> Vec<Vec<u8>> {
        (0..11)
            .map(|i| format!("record {i}").into_bytes())
            .collect()
    }

    /// A log of 11 records with a signed checkpoint, and the proof for
    /// record `index`.
    fn receipt(log: &NoteSigner, index: u64) -> TlogProof {
        let mem = MemoryHashes::from_leaves(records().iter().map(|r| leaf_hash(r)));
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: 11,
            root: tree_hash(11, &mem).unwrap(),
            extensions: vec![],
        };
        TlogProof {
            extra: None,
            index,
            hashes: prove_record(11, index, &mem).unwrap(),
            signed_checkpoint: sign_checkpoint(&cp, &[log]).unwrap(),
        }
    }

    fn log_signer() -> NoteSigner {
        NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[9; 32])).unwrap()
    }

    #[test]
    fn spec_example_parses_and_round_trips() {
        let p = TlogProof::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(p.index, 73894);
        assert_eq!(p.hashes.len(), 5);
        assert!(p
            .extra
            .as_deref()
            .unwrap()
            .starts_with(b"age-v1.2.1-darwin-arm64.tar.gz"));
        assert!(p
            .signed_checkpoint
            .starts_with("example.com/fancylog\n109482\n"));
        assert_eq!(p.to_text(), SPEC_EXAMPLE);
    }

    #[test]
    fn receipts_verify() {
        let log = log_signer();
        for (index, record) in records().iter().enumerate() {
            let mut p = receipt(&log, index as u64);
            p.extra = (index % 2 == 0).then(|| vec![index as u8; index]);
            let text = p.to_text();
            let parsed = TlogProof::parse(&text).unwrap();
            assert_eq!(parsed, p);
            let cp = parsed.verify(ORIGIN, &[log.verifier()], record).unwrap();
            assert_eq!(cp.size, 11);
        }
    }

    #[test]
    fn wrong_receipts_fail() {
        let log = log_signer();
        let p = receipt(&log, 4);
        let v = [log.verifier()];
        let recs = records();
        assert_eq!(
            p.verify(ORIGIN, &v, &recs[5]),
            Err(TlogProofError::Inclusion(ProofError::RootMismatch))
        );
        let mut moved = p.clone();
        moved.index = 5;
        assert_eq!(
            moved.verify(ORIGIN, &v, &recs[4]),
            Err(TlogProofError::Inclusion(ProofError::RootMismatch))
        );
        let mut beyond = p.clone();
        beyond.index = 11;
        assert_eq!(
            beyond.verify(ORIGIN, &v, &recs[4]),
            Err(TlogProofError::Inclusion(ProofError::IndexOutOfRange {
                index: 11,
                size: 11
            }))
        );
        let mut short = p.clone();
        short.hashes.pop();
        assert!(matches!(
            short.verify(ORIGIN, &v, &recs[4]),
            Err(TlogProofError::Inclusion(
                ProofError::WrongProofLength { .. }
            ))
        ));
        assert!(matches!(
            p.verify("example.com/other", &v, &recs[4]),
            Err(TlogProofError::Checkpoint(
                CheckpointError::OriginMismatch { .. }
            ))
        ));
        let stranger = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[8; 32])).unwrap();
        assert_eq!(
            p.verify(ORIGIN, &[stranger.verifier()], &recs[4]),
            Err(TlogProofError::Checkpoint(CheckpointError::Note(
                NoteError::Unverified
            )))
        );
        let mut forged = p.clone();
        forged.signed_checkpoint = forged.signed_checkpoint.replacen("\n11\n", "\n12\n", 1);
        assert!(matches!(
            forged.verify(ORIGIN, &v, &recs[4]),
            Err(TlogProofError::Checkpoint(CheckpointError::Note(
                NoteError::InvalidSignature { .. }
            )))
        ));
    }

    #[test]
    fn strict_parsing() {
        let good = receipt(&log_signer(), 3).to_text();
        let after_index = &good[good.find("index 3\n").unwrap() + "index 3\n".len()..];
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            (good.replacen("@v1", "@v2", 1), "wrong version"),
            (good.replacen("index 3", "index 03", 1), "leading zero"),
            (good.replacen("index 3", "index +3", 1), "sign"),
            (good.replacen("index 3", "index  3", 1), "double space"),
            (good.replacen("index 3", "index", 1), "no index"),
            (good.replacen("index 3", "idx 3", 1), "misspelled index"),
            (good.replacen("index 3\n", "", 1), "index missing"),
            (
                good.replacen("index 3\n", "extra !!\nindex 3\n", 1),
                "bad extra",
            ),
            (
                good.replacen("index 3\n", "index 3\nextra AA==\n", 1),
                "extra after index",
            ),
            (
                format!("{TLOG_PROOF_HEADER}\nindex 3\nnot a hash\n\n{after_index}"),
                "bad hash",
            ),
            (
                format!("{TLOG_PROOF_HEADER}\nindex 3\nAAAA\n\n{after_index}"),
                "short hash",
            ),
            (format!("{TLOG_PROOF_HEADER}\nindex 3\n"), "no blank line"),
            (format!("{TLOG_PROOF_HEADER}\nindex 3\n\n"), "no checkpoint"),
        ];
        for (text, what) in &cases {
            assert!(
                matches!(TlogProof::parse(text), Err(TlogProofError::Malformed(_))),
                "{what}: {:?}",
                TlogProof::parse(text)
            );
        }
        // An empty extra and an empty proof are both representable.
        let p = TlogProof {
            extra: Some(vec![]),
            index: 0,
            hashes: vec![],
            signed_checkpoint: "x".into(),
        };
        assert_eq!(
            p.to_text(),
            format!("{TLOG_PROOF_HEADER}\nextra \nindex 0\n\nx")
        );
        assert_eq!(TlogProof::parse(&p.to_text()), Ok(p));
    }
}
