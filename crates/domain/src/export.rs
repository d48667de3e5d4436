//! The export file an auditor receives: one header line, then every entry's canonical bytes, one
//! per line.
//!
//! ```text
//! {"format":"timecredits-export/v1","origin":…,"verifier_key":…,"from":F,"size":N,"frontier":[…],"checkpoint":"<signed note>"}
//! <canonical bytes of entry F>
//! …
//! <canonical bytes of entry N-1>
//! ```
//!
//! A server that cannot finish an export after it began to stream it ends the file with the line
//! of [`interrupted_line`] instead of an entry; a reader reports it as such.
//!
//! Every line, the last included, ends with `\n`. Entry bytes never contain a newline (the
//! canonical encoding is compact JSON, which escapes control characters), so a line is exactly one
//! Merkle leaf. The header is compact JSON too, so the whole file can be read with `jq`. The
//! format is documented for auditors in `AUDIT.md` at the root of the repository; the ledger
//! writes it and the `timecredits-audit` verifier reads it, both through [`ExportHeader`].

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The value of the header's `format` field for this version of the format.
pub const EXPORT_FORMAT: &str = "timecredits-export/v1";

/// The one key of the line a server ends an export with when it cannot finish it (a damaged
/// journal record, say): `{"export_interrupted":"<why>"}`. An HTTP stream has already answered
/// 200 by then, so the file itself must say it is incomplete; no entry line can look like this.
pub const INTERRUPTED: &str = "export_interrupted";

/// The line, newline included, that ends an export the server could not finish.
pub fn interrupted_line(why: &str) -> Vec<u8> {
    let mut line = serde_json::to_vec(&serde_json::json!({ INTERRUPTED: why }))
        .expect("a string map serialises");
    line.push(b'\n');
    line
}

/// Why the server could not finish the export, if `line` (without its newline) is the line
/// that says so.
pub fn interruption(line: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let object = value.as_object().filter(|o| o.len() == 1)?;
    object.get(INTERRUPTED)?.as_str().map(str::to_owned)
}

/// The longest header line a reader needs to accept, newline included. A header holds one signed
/// note and at most 62 frontier hashes, far below this.
pub const MAX_HEADER_LINE: usize = 64 * 1024;

/// The first line of an export.
///
/// Nothing in the header is trusted by itself: the checkpoint is verified against keys the auditor
/// pinned, and the frontier and entries must hash to the checkpoint's root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportHeader {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The log's origin, as in its checkpoints.
    pub origin: String,
    /// The C2SP verifier key (`name+keyid+base64`) that signed the export's checkpoint: the
    /// key the log had handed over to at that size. For convenience only: an auditor pins the
    /// key obtained out of band.
    pub verifier_key: String,
    /// During a key rotation's overlap, the key before [`ExportHeader::verifier_key`], which
    /// signed the checkpoint too; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_verifier_key: Option<String>,
    /// The sequence number of the first entry in the file (0 for a full export).
    pub from: u64,
    /// The tree size the export is complete up to: the checkpoint's size. The file holds entries
    /// `from..size`.
    pub size: u64,
    /// The RFC 6962 frontier of the first `from` entries: the roots of the perfect subtrees tiling
    /// them, largest (leftmost) first, one per set bit of `from` (empty when `from` is 0), each
    /// standard base64. With it a partial export still hashes to the signed root.
    #[serde(serialize_with = "hashes_to_base64")]
    #[serde(deserialize_with = "hashes_from_base64")]
    pub frontier: Vec<[u8; 32]>,
    /// The signed checkpoint (C2SP signed-note text) for the tree of `size` entries.
    pub checkpoint: String,
}

/// Why a header line could not be read.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The line is not a JSON object with a `format` field.
    #[error("the first line is not an export header: {0}")]
    NotAHeader(String),
    /// The header is of another format or version.
    #[error("unsupported export format {0:?} (this reader knows {EXPORT_FORMAT:?})")]
    UnknownFormat(String),
    /// The header of this format has missing, unknown or mistyped fields.
    #[error("malformed {EXPORT_FORMAT} header: {0}")]
    Malformed(String),
}

impl ExportHeader {
    /// A header of the current format.
    pub fn new(
        origin: String,
        verifier_key: String,
        from: u64,
        size: u64,
        frontier: Vec<[u8; 32]>,
        checkpoint: String,
    ) -> ExportHeader {
        ExportHeader {
            format: EXPORT_FORMAT.to_owned(),
            origin,
            verifier_key,
            previous_verifier_key: None,
            from,
            size,
            frontier,
            checkpoint,
        }
    }

    /// The header line: compact JSON and a newline.
    pub fn to_line(&self) -> Vec<u8> {
        // A struct of strings, integers and a list of strings always serializes.
        let mut line = serde_json::to_vec(self).expect("header serializes");
        line.push(b'\n');
        line
    }

    /// Reads a header line (with or without its newline), checking the format first so that a
    /// newer version is reported as such rather than as a malformed header.
    pub fn parse(line: &[u8]) -> Result<ExportHeader, HeaderError> {
        #[derive(Deserialize)]
        struct Format {
            format: String,
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let Format { format } =
            serde_json::from_slice(line).map_err(|e| HeaderError::NotAHeader(e.to_string()))?;
        if format != EXPORT_FORMAT {
            return Err(HeaderError::UnknownFormat(format));
        }
        serde_json::from_slice(line).map_err(|e| HeaderError::Malformed(e.to_string()))
    }
}

fn hashes_to_base64<S: Serializer>(hashes: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(hashes.iter().map(|h| BASE64.encode(h)))
}

fn hashes_from_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            BASE64
                .decode(s)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "frontier hash {s:?} is not the base64 of 32 bytes"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ExportHeader {
        ExportHeader::new(
            "example.org/ledger".into(),
            "example.org/ledger+01234567+AQ==".into(),
            3,
            10,
            vec![[1; 32], [2; 32]],
            "example.org/ledger\n10\nAAAA\n\n\u{2014} example.org/ledger sig\n".into(),
        )
    }

    #[test]
    fn a_header_is_one_line_of_compact_json_that_reads_back() {
        let line = header().to_line();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(line.starts_with(br#"{"format":"timecredits-export/v1","origin":"#));
        assert_eq!(ExportHeader::parse(&line), Ok(header()));
    }

    #[test]
    fn other_formats_and_malformed_headers_are_told_apart() {
        assert!(matches!(
            ExportHeader::parse(br#"{"seq":0}"#),
            Err(HeaderError::NotAHeader(_))
        ));
        assert_eq!(
            ExportHeader::parse(br#"{"format":"timecredits-export/v9","extra":1}"#),
            Err(HeaderError::UnknownFormat("timecredits-export/v9".into()))
        );
        let line = String::from_utf8(header().to_line()).unwrap();
        for bad in [
            line.replace(r#""from":3,"#, ""),
            line.replace(r#""from":3,"#, r#""from":3,"to":4,"#),
            line.replace("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "AQ=="),
        ] {
            assert!(
                matches!(
                    ExportHeader::parse(bad.as_bytes()),
                    Err(HeaderError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
