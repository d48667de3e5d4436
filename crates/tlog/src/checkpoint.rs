//! Checkpoints (c2sp.org/tlog-checkpoint v1.0.0): the signed statement of a
//! log's size and root hash.
//!
//! A checkpoint is a signed note whose text is
//!
//! ```text
//! <origin>
//! <tree size in decimal>
//! <base64 root hash>
//! [extension lines]
//! ```
//!
//! The origin names the log, so a checkpoint from one log is never mistaken
//! for one from another even when both use the same key.

use crate::merkle::Hash;
use crate::note::{open_note, sign_note, Note, NoteError, NoteSigner, NoteVerifier};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};

/// A log's tree head: its identity, size and root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Unique identity of the log, such as `example.com/log42`.
    pub origin: String,
    /// Number of records in the tree.
    pub size: u64,
    /// RFC 6962 root hash of the tree.
    pub root: Hash,
    /// Optional opaque extension lines (without newlines). The spec
    /// recommends against them, as monitors cannot audit them.
    pub extensions: Vec<String>,
}

/// Why a checkpoint was rejected.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// The text does not end in a newline.
    #[error("checkpoint text does not end with a newline")]
    MissingFinalNewline,
    /// The text has fewer than three lines; names the first missing one.
    #[error("checkpoint has no {0} line")]
    MissingLine(&'static str),
    /// The origin line is empty.
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    /// The size line is not a canonical decimal `u64`.
    #[error("checkpoint tree size is not a decimal number without leading zeros")]
    InvalidSize,
    /// The root line is not the canonical base64 of 32 bytes.
    #[error("checkpoint root is not the standard base64 encoding of 32 bytes")]
    InvalidRoot,
    /// An extension line is empty.
    #[error("checkpoint has an empty extension line")]
    EmptyExtension,
    /// The checkpoint is from another log.
    #[error("checkpoint is for origin {found:?}, expected {expected:?}")]
    OriginMismatch {
        /// The origin the caller trusts.
        expected: String,
        /// The origin in the checkpoint.
        found: String,
    },
    /// The signed note could not be opened.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// Parses an ASCII decimal `u64` with no sign and no leading zeros (other
/// than `0` itself), the form checkpoints and tlog-proofs use.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Decodes the standard, padded base64 of exactly one hash. The decoder
/// rejects non-zero trailing bits, so only the canonical encoding passes.
pub(crate) fn decode_hash(s: &str) -> Option<Hash> {
    BASE64.decode(s).ok()?.try_into().ok()
}

impl Checkpoint {
    /// Returns the checkpoint's note text.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        );
        for ext in &self.extensions {
            text.push_str(ext);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint's note text strictly: exactly one encoding of a
    /// given checkpoint is accepted.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        let origin = lines.next().ok_or(CheckpointError::MissingLine("origin"))?;
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = lines
            .next()
            .ok_or(CheckpointError::MissingLine("tree size"))?;
        let size = parse_decimal(size).ok_or(CheckpointError::InvalidSize)?;
        let root = lines
            .next()
            .ok_or(CheckpointError::MissingLine("root hash"))?;
        let root = decode_hash(root).ok_or(CheckpointError::InvalidRoot)?;
        let extensions = lines
            .map(|ext| {
                if ext.is_empty() {
                    Err(CheckpointError::EmptyExtension)
                } else {
                    Ok(ext.to_owned())
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

/// Signs the checkpoint and returns the signed note.
///
/// Fails with [`NoteError::InvalidText`] if the checkpoint would not parse
/// back to itself (an empty origin, a field containing a newline, an empty
/// extension), so a log can never sign a checkpoint that readers see
/// differently.
pub fn sign_checkpoint(cp: &Checkpoint, signers: &[&NoteSigner]) -> Result<String, NoteError> {
    let text = cp.to_text();
    match Checkpoint::parse(&text) {
        Ok(parsed) if parsed == *cp => sign_note(&text, signers),
        Ok(_) => Err(NoteError::InvalidText(
            "checkpoint field contains a newline".into(),
        )),
        Err(err) => Err(NoteError::InvalidText(err.to_string())),
    }
}

/// Opens a signed checkpoint: verifies the note against `verifiers` (see
/// [`open_note`]), parses the checkpoint and checks that it is for `origin`.
/// Returns the checkpoint and the opened note.
pub fn open_checkpoint(
    signed: &[u8],
    origin: &str,
    verifiers: &[NoteVerifier],
) -> Result<(Checkpoint, Note), CheckpointError> {
    let (note, _) = open_note(signed, verifiers)?;
    let cp = Checkpoint::parse(&note.text)?;
    if cp.origin != origin {
        return Err(CheckpointError::OriginMismatch {
            expected: origin.to_owned(),
            found: cp.origin,
        });
    }
    Ok((cp, note))
}

/// Parses the checkpoint of a signed note **without checking any signature**: for a caller that
/// verifies it later, with keys it learns meanwhile, or that signed the note itself.
pub fn unverified_checkpoint(signed: &str) -> Result<Checkpoint, CheckpointError> {
    // As in `open_note`: the text may have blank lines of its own; the last one is the
    // separator, and the text keeps its final newline.
    let split = signed.rfind("\n\n").ok_or(NoteError::MalformedNote(
        "no blank line before the signatures",
    ))?;
    Checkpoint::parse(&signed[..=split])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::empty_root;
    use ed25519_dalek::SigningKey;

    // The example from the tlog-checkpoint spec (text only; its signature
    // is by a key we do not have).
    const SPEC_TEXT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size: 42,
            root: [7; 32],
            extensions: vec![],
        }
    }

    #[test]
    fn spec_example_round_trips() {
        let cp = Checkpoint::parse(SPEC_TEXT).unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20852163);
        assert_eq!(
            BASE64.encode(cp.root),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        assert!(cp.extensions.is_empty());
        assert_eq!(cp.to_text(), SPEC_TEXT);

        let with_ext = format!("{SPEC_TEXT}ext one\nanother\n");
        let cp = Checkpoint::parse(&with_ext).unwrap();
        assert_eq!(cp.extensions, ["ext one", "another"]);
        assert_eq!(cp.to_text(), with_ext);

        let empty = Checkpoint {
            origin: "o".into(),
            size: 0,
            root: empty_root(),
            extensions: vec![],
        };
        assert_eq!(Checkpoint::parse(&empty.to_text()), Ok(empty));
    }

    #[test]
    fn strict_parsing() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let cases: Vec<(String, CheckpointError)> = vec![
            ("".into(), CheckpointError::MissingFinalNewline),
            (
                "o\n1\n".to_owned() + root,
                CheckpointError::MissingFinalNewline,
            ),
            ("\n".into(), CheckpointError::EmptyOrigin),
            ("o\n".into(), CheckpointError::MissingLine("tree size")),
            ("o\n1\n".into(), CheckpointError::MissingLine("root hash")),
            (format!("\n1\n{root}\n"), CheckpointError::EmptyOrigin),
            (format!("o\n01\n{root}\n"), CheckpointError::InvalidSize),
            (format!("o\n00\n{root}\n"), CheckpointError::InvalidSize),
            (format!("o\n+1\n{root}\n"), CheckpointError::InvalidSize),
            (format!("o\n-1\n{root}\n"), CheckpointError::InvalidSize),
            (format!("o\n 1\n{root}\n"), CheckpointError::InvalidSize),
            (format!("o\n\n{root}\n"), CheckpointError::InvalidSize),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                CheckpointError::InvalidSize,
            ),
            ("o\n1\n\n".into(), CheckpointError::InvalidRoot),
            // Unpadded, non-canonical trailing bits, too short, too long.
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n".into(),
                CheckpointError::InvalidRoot,
            ),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n".into(),
                CheckpointError::InvalidRoot,
            ),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\n".into(),
                CheckpointError::InvalidRoot,
            ),
            (
                "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I1\n".into(),
                CheckpointError::InvalidRoot,
            ),
            (format!("o\n1\n{root}\n\n"), CheckpointError::EmptyExtension),
            (
                format!("o\n1\n{root}\na\n\nb\n"),
                CheckpointError::EmptyExtension,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(want), "{text:?}");
        }
        assert_eq!(
            Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n"))
                .unwrap()
                .size,
            u64::MAX
        );
    }

    #[test]
    fn sign_and_open() {
        let log = signer("example.com/log", 1);
        let witness = signer("witness.example", 2);
        let cp = sample();
        let signed = sign_checkpoint(&cp, &[&log, &witness]).unwrap();
        assert!(signed.starts_with(&cp.to_text()));

        let (opened, note) =
            open_checkpoint(signed.as_bytes(), "example.com/log", &[log.verifier()]).unwrap();
        assert_eq!(opened, cp);
        assert_eq!(note.text, cp.to_text());
        assert_eq!(note.signatures.len(), 2);

        assert_eq!(
            open_checkpoint(signed.as_bytes(), "example.com/other", &[log.verifier()]),
            Err(CheckpointError::OriginMismatch {
                expected: "example.com/other".into(),
                found: "example.com/log".into()
            })
        );
        assert_eq!(
            open_checkpoint(
                signed.as_bytes(),
                "example.com/log",
                &[signer("example.com/log", 3).verifier()]
            ),
            Err(CheckpointError::Note(NoteError::Unverified))
        );
        let forged = signed.replacen("42", "43", 1);
        assert!(matches!(
            open_checkpoint(forged.as_bytes(), "example.com/log", &[log.verifier()]),
            Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
        ));
        // A validly signed note that is not a checkpoint.
        let not_cp = sign_note("hello\n", &[&log]).unwrap();
        assert_eq!(
            open_checkpoint(not_cp.as_bytes(), "hello", &[log.verifier()]),
            Err(CheckpointError::MissingLine("tree size"))
        );
    }

    #[test]
    fn refuses_to_sign_ambiguous_checkpoints() {
        let log = signer("example.com/log", 1);
        let mut cp = sample();
        cp.extensions = vec!["a\nb".into()];
        assert!(matches!(
            sign_checkpoint(&cp, &[&log]),
            Err(NoteError::InvalidText(_))
        ));
        let mut cp = sample();
        cp.extensions = vec![String::new()];
        assert!(matches!(
            sign_checkpoint(&cp, &[&log]),
            Err(NoteError::InvalidText(_))
        ));
        let mut cp = sample();
        cp.origin = String::new();
        assert!(matches!(
            sign_checkpoint(&cp, &[&log]),
            Err(NoteError::InvalidText(_))
        ));
        let mut cp = sample();
        cp.origin = "a\n1".into();
        assert!(matches!(
            sign_checkpoint(&cp, &[&log]),
            Err(NoteError::InvalidText(_))
        ));
    }
}
