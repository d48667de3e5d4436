//! Signed notes (c2sp.org/signed-note), Ed25519 only, as Go's
//! `golang.org/x/mod/sumdb/note`.
//!
//! A signed note is a UTF-8 text ending in a newline, a blank line, and one
//! or more signature lines:
//!
//! ```text
//! If you think cryptography is the answer to your problem,
//! then you don't know what your problem is.
//!
//! — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=
//! ```
//!
//! Each signature line is an em dash, a space, the key name, a space, and
//! `base64(key id || signature)`. The key is identified by the pair (name,
//! key id), where the key id is the first four bytes of
//! `SHA-256(name || "\n" || 0x01 || public key)`; 0x01 is the Ed25519
//! signature type. The signature covers the text including its final
//! newline but not the blank line.
//!
//! Keys travel as text: a verifier key is `name+hex8(key id)+base64(0x01 ||
//! public key)`, and Go's signer key adds a `PRIVATE+KEY+` prefix and has
//! the 32-byte seed in place of the public key.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// Most signatures [`open_note`] reads from one note (and [`sign_note`]
/// writes), as in Go, so a hostile note cannot make us verify forever. The
/// spec requires accepting at least 16.
pub const MAX_SIGNATURES: usize = 100;

/// Signature type byte of Ed25519 keys, hashed into the key id and prefixed
/// to encoded keys.
const ALG_ED25519: u8 = 0x01;

/// Start of every signature line: em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Errors from parsing keys and from signing or opening notes.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum NoteError {
    /// A key name was empty or had a space, '+' or control character.
    #[error(
        "invalid key name {0:?}: must be non-empty, without spaces, '+' or control characters"
    )]
    InvalidName(String),
    /// A verifier key string was not `name+hex8+base64`, or its key bytes
    /// were not a valid Ed25519 public key.
    #[error("malformed verifier key: {0}")]
    MalformedVerifierKey(&'static str),
    /// A signer key string was not `PRIVATE+KEY+name+hex8+base64`. The
    /// message never repeats any part of the secret.
    #[error("malformed signer key: {0}")]
    MalformedSignerKey(&'static str),
    /// An encoded key used a signature type other than Ed25519 (0x01).
    #[error("unsupported key algorithm {0:#04x} (only Ed25519, 0x01, is supported)")]
    UnknownAlgorithm(u8),
    /// The key id written in an encoded key is not the id of its key.
    #[error("key id {claimed:08x} does not match the key, whose id is {computed:08x}")]
    KeyIdMismatch {
        /// The key id written in the encoded key.
        claimed: u32,
        /// The key id computed from the name and key.
        computed: u32,
    },
    /// The text to sign was not a valid note text.
    #[error("invalid note text: {0}")]
    InvalidText(String),
    /// [`sign_note`] was given no signers.
    #[error("a note needs at least one signer")]
    NoSigners,
    /// More than [`MAX_SIGNATURES`] signatures.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A signed note did not have the signed-note syntax.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// Several of the given verifiers have the name and key id of a
    /// signature, so it is unclear which one to trust.
    #[error("ambiguous key {name}+{key_id:08x}: more than one verifier has this name and key id")]
    AmbiguousVerifier {
        /// The key name.
        name: String,
        /// The key id.
        key_id: u32,
    },
    /// A signature by a known key did not verify.
    #[error("invalid signature for key {name}+{key_id:08x}")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key id.
        key_id: u32,
    },
    /// The note parsed, but none of its signatures is by a known key.
    #[error("note has no signature by a known key")]
    Unverified,
}

/// Reports whether `name` may name a key.
///
/// The spec requires a non-empty name without Unicode spaces or '+' (the
/// separator of encoded keys). ASCII control characters are refused as well,
/// because no note containing them can be opened.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < '\u{20}')
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidName(name.to_owned()))
    }
}

/// Computes the key id of an Ed25519 key:
/// `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(key.as_bytes());
    let sum = h.finalize();
    u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]])
}

/// Parses the 8 hex digits of an encoded key id. Go accepts either case.
fn parse_key_id(hex8: &str) -> Option<u32> {
    if hex8.len() != 8 || !hex8.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex8, 16).ok()
}

/// Decodes `base64(0x01 || 32 bytes)`, the key part of encoded keys.
/// The error is `None` for malformed input, or the unknown algorithm byte.
fn decode_key(b64: &str) -> Result<[u8; 32], Option<u8>> {
    let raw = BASE64.decode(b64).map_err(|_| None)?;
    match raw.split_first() {
        Some((&ALG_ED25519, key)) => key.try_into().map_err(|_| None),
        Some((&alg, _)) => Err(Some(alg)),
        None => Err(None),
    }
}

/// A named Ed25519 key that signs notes.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

impl NoteSigner {
    /// Returns a signer for `key` under the key name `name`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let key_id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// Parses a signer key in Go's format,
    /// `PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x01 || 32-byte seed)>`,
    /// checking that the key id is that of the derived public key.
    pub fn from_go_skey(skey: &str) -> Result<Self, NoteError> {
        // The base64 part may itself contain '+', so split off only the
        // first four fields.
        let mut parts = skey.splitn(5, '+');
        if parts.next() != Some("PRIVATE") || parts.next() != Some("KEY") {
            return Err(NoteError::MalformedSignerKey(
                "does not start with PRIVATE+KEY+",
            ));
        }
        let (Some(name), Some(hex8), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::MalformedSignerKey("missing fields"));
        };
        check_name(name)?;
        let claimed = parse_key_id(hex8)
            .ok_or(NoteError::MalformedSignerKey("key id is not 8 hex digits"))?;
        let seed = decode_key(b64).map_err(|e| match e {
            Some(alg) => NoteError::UnknownAlgorithm(alg),
            None => NoteError::MalformedSignerKey("key is not base64 of 0x01 and a 32-byte seed"),
        })?;
        let signer = Self::new(name, SigningKey::from_bytes(&seed))?;
        // The id names the public key, which is only known now.
        if signer.key_id != claimed {
            return Err(NoteError::KeyIdMismatch {
                claimed,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Returns the verifier for this signer's public key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Returns the Ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

impl fmt::Debug for NoteSigner {
    // Only public facts: a signer must never leak its key through logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// A named Ed25519 public key that verifies note signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Returns a verifier for `key` under the key name `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, &key),
            key,
        })
    }

    /// Parses a verifier key, `<name>+<hex8 key id>+<base64(0x01 || public
    /// key)>`, checking that the key id is that of the key.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hex8), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::MalformedVerifierKey("missing fields"));
        };
        check_name(name)?;
        let claimed = parse_key_id(hex8).ok_or(NoteError::MalformedVerifierKey(
            "key id is not 8 hex digits",
        ))?;
        let bytes = decode_key(b64).map_err(|e| match e {
            Some(alg) => NoteError::UnknownAlgorithm(alg),
            None => NoteError::MalformedVerifierKey("key is not base64 of 0x01 and 32 bytes"),
        })?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| NoteError::MalformedVerifierKey("not an Ed25519 public key"))?;
        let verifier = Self::new(name, key)?;
        if verifier.key_id != claimed {
            return Err(NoteError::KeyIdMismatch {
                claimed,
                computed: verifier.key_id,
            });
        }
        Ok(verifier)
    }

    /// Returns the encoded verifier key, the format [`NoteVerifier::parse`]
    /// reads.
    pub fn to_vkey(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(key))
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Reports whether `sig` is a valid Ed25519 signature of `msg` by this
    /// key. Uses strict verification, which also refuses malleable
    /// signatures and weak keys.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        Signature::from_slice(sig).is_ok_and(|sig| self.key.verify_strict(msg, &sig).is_ok())
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

/// A note's text and signatures, as read by [`open_note`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    /// Every distinct signature, verified or by an unknown key, in the order
    /// of the note.
    pub signatures: Vec<NoteSignature>,
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id.
    pub key_id: u32,
    /// The signature bytes, without the key id prefix.
    pub signature: Vec<u8>,
}

/// Checks the rules a note text must follow: it ends in a newline and has
/// no control characters other than newline.
///
/// Blank lines and lines that look like signatures are fine: the text is
/// separated from the signatures by the *last* blank line of the note,
/// which is always the one [`sign_note`] adds.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::InvalidText(
            "text must be non-empty and end with a newline".into(),
        ));
    }
    if text.chars().any(|c| c < '\u{20}' && c != '\n') {
        return Err(NoteError::InvalidText(
            "text must not contain control characters other than newline".into(),
        ));
    }
    Ok(())
}

/// Signs `text` with each signer and returns the signed note: the text, a
/// blank line, and one signature line per signer, in order.
///
/// ```
/// use ed25519_dalek::SigningKey;
/// use timecredits_tlog::note::{open_note, sign_note, NoteSigner};
///
/// let signer = NoteSigner::new("example.org/log", SigningKey::from_bytes(&[7; 32]))?;
/// let signed = sign_note("hello\n", &[&signer])?;
/// let (note, verified) = open_note(signed.as_bytes(), &[signer.verifier()])?;
/// assert_eq!(note.text, "hello\n");
/// assert_eq!(verified.len(), 1);
/// // A changed text no longer verifies.
/// let forged = signed.replace("hello", "hullo");
/// assert!(open_note(forged.as_bytes(), &[signer.verifier()]).is_err());
/// # Ok::<(), timecredits_tlog::note::NoteError>(())
/// ```
pub fn sign_note(text: &str, signers: &[&NoteSigner]) -> Result<String, NoteError> {
    check_text(text)?;
    if signers.is_empty() {
        return Err(NoteError::NoSigners);
    }
    if signers.len() > MAX_SIGNATURES {
        return Err(NoteError::TooManySignatures);
    }
    let mut out = String::with_capacity(text.len() + 1 + signers.len() * 120);
    out.push_str(text);
    out.push('\n');
    for signer in signers {
        let mut raw = Vec::with_capacity(4 + 64);
        raw.extend_from_slice(&signer.key_id.to_be_bytes());
        raw.extend_from_slice(&signer.sign(text.as_bytes()));
        out.push_str(SIG_PREFIX);
        out.push_str(&signer.name);
        out.push(' ');
        out.push_str(&BASE64.encode(raw));
        out.push('\n');
    }
    Ok(out)
}

/// Parses the signed note `msg` and verifies its signatures against the
/// known `verifiers`, like Go's `note.Open`.
///
/// Every signature whose name and key id match a verifier must verify, or
/// the note is rejected; signatures by unknown keys are kept in the result
/// but not trusted; and at least one signature must verify. Repeated
/// signatures are dropped: for a known key only its first signature counts,
/// for unknown keys identical lines are kept once. Returns the note and
/// the verifiers whose signatures verified, in note order.
pub fn open_note(
    msg: &[u8],
    verifiers: &[NoteVerifier],
) -> Result<(Note, Vec<NoteVerifier>), NoteError> {
    let msg = std::str::from_utf8(msg).map_err(|_| NoteError::MalformedNote("not valid UTF-8"))?;
    if msg.chars().any(|c| c < '\u{20}' && c != '\n') {
        return Err(NoteError::MalformedNote(
            "contains a control character other than newline",
        ));
    }
    // The text may have blank lines of its own; the last one is the separator.
    let split = msg.rfind("\n\n").ok_or(NoteError::MalformedNote(
        "no blank line before the signatures",
    ))?;
    let (text, sigs) = (&msg[..=split], &msg[split + 2..]);
    let sigs = sigs.strip_suffix('\n').ok_or(NoteError::MalformedNote(
        "signatures must end with a newline",
    ))?;

    let mut signatures = Vec::new();
    let mut verified: Vec<NoteVerifier> = Vec::new();
    let mut unknown_lines = Vec::new();
    for (count, line) in sigs.split('\n').enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let (name, b64) = line
            .strip_prefix(SIG_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or(NoteError::MalformedNote(
                "signature line is not \"\u{2014} <name> <signature>\"",
            ))?;
        if !is_valid_name(name) {
            return Err(NoteError::MalformedNote(
                "invalid key name in signature line",
            ));
        }
        let raw = BASE64
            .decode(b64)
            .map_err(|_| NoteError::MalformedNote("signature is not base64"))?;
        let (id, sig) = match raw.split_first_chunk::<4>() {
            Some((id, sig)) if !sig.is_empty() => (u32::from_be_bytes(*id), sig),
            _ => return Err(NoteError::MalformedNote("signature is too short")),
        };

        let mut known = verifiers
            .iter()
            .filter(|v| v.name == name && v.key_id == id);
        let Some(verifier) = known.next() else {
            // Unknown keys (even sharing a name or an id with a known key)
            // must be ignored; keep the signature for the caller's records.
            if !unknown_lines.contains(&line) {
                unknown_lines.push(line);
                signatures.push(NoteSignature {
                    name: name.to_owned(),
                    key_id: id,
                    signature: sig.to_vec(),
                });
            }
            continue;
        };
        if known.next().is_some() {
            return Err(NoteError::AmbiguousVerifier {
                name: name.to_owned(),
                key_id: id,
            });
        }
        if verified.iter().any(|v| v.name == name && v.key_id == id) {
            continue;
        }
        if !verifier.verify(text.as_bytes(), sig) {
            return Err(NoteError::InvalidSignature {
                name: name.to_owned(),
                key_id: id,
            });
        }
        verified.push(verifier.clone());
        signatures.push(NoteSignature {
            name: name.to_owned(),
            key_id: id,
            signature: sig.to_vec(),
        });
    }
    if verified.is_empty() {
        return Err(NoteError::Unverified);
    }
    Ok((
        Note {
            text: text.to_owned(),
            signatures,
        },
        verified,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from Go's sumdb/note package documentation.
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const SIG_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn go_note() -> String {
        format!("{TEXT}\n{SIG_LINE}")
    }

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn go_example_verifies() {
        let v = NoteVerifier::parse(VKEY).unwrap();
        assert_eq!(v.name(), "PeterNeumann");
        assert_eq!(v.key_id(), 0xc74f20a3);
        assert_eq!(v.to_vkey(), VKEY);
        assert_eq!(v.to_string(), VKEY);
        let (note, verified) = open_note(go_note().as_bytes(), std::slice::from_ref(&v)).unwrap();
        assert_eq!(note.text, TEXT);
        assert_eq!(verified, vec![v]);
        assert_eq!(note.signatures.len(), 1);
        assert_eq!(note.signatures[0].name, "PeterNeumann");
        assert_eq!(note.signatures[0].key_id, 0xc74f20a3);
        assert_eq!(note.signatures[0].signature.len(), 64);
    }

    #[test]
    fn go_example_signs_identically() {
        let s = NoteSigner::from_go_skey(SKEY).unwrap();
        assert_eq!(s.name(), "PeterNeumann");
        assert_eq!(s.key_id(), 0xc74f20a3);
        assert_eq!(s.verifier().to_vkey(), VKEY);
        assert_eq!(sign_note(TEXT, &[&s]).unwrap(), go_note());
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = NoteSigner::from_go_skey(SKEY).unwrap();
        let shown = format!("{s:?}");
        assert_eq!(
            shown,
            "NoteSigner { name: \"PeterNeumann\", key_id: c74f20a3, .. }"
        );
        let seed_b64 = &SKEY[SKEY.rfind('+').unwrap() + 1..];
        assert!(!shown.contains(seed_b64));
    }

    #[test]
    fn tampered_or_wrongly_keyed_notes_fail() {
        let v = NoteVerifier::parse(VKEY).unwrap();
        let tampered = go_note().replacen("cryptography", "cryptographY", 1);
        assert_eq!(
            open_note(tampered.as_bytes(), std::slice::from_ref(&v)),
            Err(NoteError::InvalidSignature {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3
            })
        );
        // Same name, different key: a different key id, so the signature is
        // from an unknown key and the note is unverified.
        let other = signer("PeterNeumann", 7).verifier();
        assert_ne!(other.key_id(), v.key_id());
        assert_eq!(
            open_note(go_note().as_bytes(), &[other]),
            Err(NoteError::Unverified)
        );
        assert_eq!(
            open_note(go_note().as_bytes(), &[]),
            Err(NoteError::Unverified)
        );
        // A corrupted signature byte from the known key is an error.
        let mut raw = BASE64
            .decode(SIG_LINE[SIG_PREFIX.len() + 13..].trim_end())
            .unwrap();
        raw[10] ^= 0x40;
        let bad = format!("{TEXT}\n\u{2014} PeterNeumann {}\n", BASE64.encode(&raw));
        assert!(matches!(
            open_note(bad.as_bytes(), &[v]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn verifier_key_parsing() {
        // Key id that does not match the key.
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::KeyIdMismatch {
                claimed: 0xc74f20a4,
                computed: 0xc74f20a3
            })
        );
        // Key id is of the name too.
        assert!(matches!(
            NoteVerifier::parse(
                "PeterNeumann2+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::KeyIdMismatch { .. })
        ));
        // Uppercase hex is accepted, as in Go.
        assert!(NoteVerifier::parse(
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        )
        .is_ok());
        // Algorithm byte 0x02 instead of 0x01.
        assert_eq!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::UnknownAlgorithm(2))
        );
        for bad in [
            "",
            "PeterNeumann",
            "PeterNeumann+c74f20a3",
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20ag+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy1w==",
            "PeterNeumann+c74f20a3+",
        ] {
            assert!(
                matches!(
                    NoteVerifier::parse(bad),
                    Err(NoteError::MalformedVerifierKey(_))
                ),
                "{bad:?}: {:?}",
                NoteVerifier::parse(bad)
            );
        }
        assert!(matches!(
            NoteVerifier::parse(
                "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(NoteError::InvalidName(_))
        ));
        // Round trip of a fresh key.
        let v = signer("example.com/log", 3).verifier();
        assert_eq!(NoteVerifier::parse(&v.to_vkey()), Ok(v));
    }

    #[test]
    fn signer_key_parsing() {
        assert_eq!(
            NoteSigner::from_go_skey(
                "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
            )
            .unwrap_err(),
            NoteError::KeyIdMismatch {
                claimed: 0xc74f20a4,
                computed: 0xc74f20a3
            }
        );
        for bad in [
            VKEY,
            "PRIVATE+KEY+PeterNeumann",
            "PRIVATE+KEY+PeterNeumann+c74f20a3",
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
            "PRIVATE+KEY+PeterNeumann+xyz+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
            "private+key+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        ] {
            let err = NoteSigner::from_go_skey(bad).unwrap_err();
            assert!(
                matches!(err, NoteError::MalformedSignerKey(_)),
                "{bad:?}: {err:?}"
            );
            // Errors never echo key material.
            assert!(!err.to_string().contains("AYEKFALV"));
        }
        assert_eq!(
            NoteSigner::from_go_skey(
                "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
            )
            .unwrap_err(),
            NoteError::UnknownAlgorithm(2)
        );
    }

    #[test]
    fn names_are_validated() {
        for bad in [
            "",
            "a b",
            "a+b",
            "a\tb",
            "a\u{a0}b",
            "a\u{2003}b",
            "a\u{1}b",
            "a\nb",
        ] {
            assert_eq!(
                NoteSigner::new(bad, SigningKey::from_bytes(&[1; 32])).unwrap_err(),
                NoteError::InvalidName(bad.into()),
                "{bad:?}"
            );
        }
        for good in ["a", "example.com/log42", "\u{00e9}t\u{00e9}", "x\u{7f}"] {
            assert!(
                NoteSigner::new(good, SigningKey::from_bytes(&[1; 32])).is_ok(),
                "{good:?}"
            );
        }
    }

    #[test]
    fn sign_validates_text() {
        let s = signer("a", 1);
        for bad in ["", "no newline", "carriage\r\n", "tab\there\n"] {
            assert!(
                matches!(sign_note(bad, &[&s]), Err(NoteError::InvalidText(_))),
                "{bad:?}"
            );
        }
        assert_eq!(sign_note("x\n", &[]), Err(NoteError::NoSigners));
        let many: Vec<&NoteSigner> = std::iter::repeat_n(&s, MAX_SIGNATURES + 1).collect();
        assert_eq!(sign_note("x\n", &many), Err(NoteError::TooManySignatures));
    }

    #[test]
    fn multiple_signers_and_awkward_texts_round_trip() {
        let a = signer("a.example", 1);
        let b = signer("b.example", 2);
        for text in [
            "\n",
            "x\n",
            "blank\n\nlines\n\n",
            "looks signed\n\n\u{2014} a.example AAAA\n",
        ] {
            let signed = sign_note(text, &[&a, &b]).unwrap();
            let (note, verified) = open_note(signed.as_bytes(), &[b.verifier()]).unwrap();
            assert_eq!(note.text, text);
            assert_eq!(verified, vec![b.verifier()]);
            // a's signature is kept but not trusted.
            assert_eq!(note.signatures.len(), 2);
            assert_eq!(note.signatures[0].name, "a.example");
            let (_, verified) =
                open_note(signed.as_bytes(), &[a.verifier(), b.verifier()]).unwrap();
            assert_eq!(verified, vec![a.verifier(), b.verifier()]);
        }
    }

    #[test]
    fn duplicate_and_ambiguous_signatures() {
        let a = signer("a.example", 1);
        let signed = sign_note("hello\n", &[&a]).unwrap();
        let line = &signed["hello\n\n".len()..];
        // A second line from a known key is dropped without being checked,
        // as in Go; a known key's first signature decides.
        let garbage = format!(
            "\u{2014} a.example {}\n",
            BASE64.encode([&a.key_id().to_be_bytes()[..], &[0; 64]].concat())
        );
        let doubled = format!("{signed}{garbage}");
        let (note, verified) = open_note(doubled.as_bytes(), &[a.verifier()]).unwrap();
        assert_eq!((note.signatures.len(), verified.len()), (1, 1));
        let bad_first = format!("hello\n\n{garbage}{line}");
        assert!(matches!(
            open_note(bad_first.as_bytes(), &[a.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Identical unknown lines are kept once; a repeated known line is
        // dropped.
        let b = signer("b.example", 2);
        let both = sign_note("hello\n", &[&a, &b]).unwrap();
        let b_line = &both[both.rfind('\u{2014}').unwrap()..];
        let twice = format!("{both}{b_line}");
        let (note, verified) = open_note(twice.as_bytes(), &[a.verifier()]).unwrap();
        assert_eq!((note.signatures.len(), verified.len()), (2, 1));
        let (note, verified) = open_note(twice.as_bytes(), &[a.verifier(), b.verifier()]).unwrap();
        assert_eq!((note.signatures.len(), verified.len()), (2, 2));
        // Two verifiers claiming the same name and id cannot be told apart.
        assert_eq!(
            open_note(signed.as_bytes(), &[a.verifier(), a.verifier()]),
            Err(NoteError::AmbiguousVerifier {
                name: "a.example".into(),
                key_id: a.key_id()
            })
        );
    }

    #[test]
    fn signature_limit() {
        let a = signer("a.example", 1);
        let signed = sign_note("hello\n", &[&a]).unwrap();
        let line = &signed["hello\n\n".len()..];
        let unknown = "\u{2014} z.example AAAAAAE=\n";
        let ok = format!("{signed}{}", unknown.repeat(MAX_SIGNATURES - 1));
        assert!(open_note(ok.as_bytes(), &[a.verifier()]).is_ok());
        let too_many = format!("{ok}{line}");
        assert_eq!(
            open_note(too_many.as_bytes(), &[a.verifier()]),
            Err(NoteError::TooManySignatures)
        );
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let v = NoteVerifier::parse(VKEY).unwrap();
        let good = go_note();
        let sig_b64 = SIG_LINE[SIG_PREFIX.len() + "PeterNeumann ".len()..].trim_end();
        let cases: Vec<(String, &str)> = vec![
            (TEXT.to_owned(), "no blank line"),
            (format!("{TEXT}\n"), "no signatures"),
            (good.trim_end().to_owned(), "no final newline"),
            (format!("{TEXT}\n- PeterNeumann {sig_b64}\n"), "ASCII dash"),
            (
                format!("{TEXT}\n\u{2014}PeterNeumann {sig_b64}\n"),
                "no space after dash",
            ),
            (format!("{TEXT}\n\u{2014} PeterNeumann\n"), "no signature"),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann \n"),
                "empty signature",
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann {sig_b64} \n"),
                "trailing space",
            ),
            (
                format!("{TEXT}\n\u{2014}  PeterNeumann {sig_b64}\n"),
                "empty name",
            ),
            (
                format!("{TEXT}\n\u{2014} Peter+Neumann {sig_b64}\n"),
                "plus in name",
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann AAAAAA==\n"),
                "short signature",
            ),
            (
                format!("{TEXT}\n\u{2014} PeterNeumann !!!!\n"),
                "not base64",
            ),
            (
                format!("{TEXT}\n{SIG_LINE}junk\n"),
                "junk line after signature",
            ),
            (format!("{TEXT}\n{SIG_LINE}\n"), "blank line at end"),
            (good.replace("\n\n", "\r\n\r\n"), "carriage returns"),
            (good.replacen("If", "If\t", 1), "tab in text"),
        ];
        for (msg, what) in &cases {
            let err = open_note(msg.as_bytes(), std::slice::from_ref(&v)).unwrap_err();
            assert!(
                matches!(err, NoteError::MalformedNote(_)),
                "{what}: {err:?}"
            );
        }
        let mut invalid_utf8 = good.into_bytes();
        invalid_utf8[3] = 0xff;
        assert_eq!(
            open_note(&invalid_utf8, &[v]),
            Err(NoteError::MalformedNote("not valid UTF-8"))
        );
    }
}
