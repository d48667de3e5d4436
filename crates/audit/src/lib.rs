//! `timecredits-audit`: checks a timecredits ledger's evidence offline, with nothing but the
//! ledger's public key.
//!
//! - [`verify::verify_file`] checks an export: the checkpoint's signature against pinned keys
//!   and origin, every entry's canonical bytes, their order and times, the Merkle root and size
//!   they hash to, a replay of the ledger rules (balances, reversals, idempotency keys) and,
//!   against a checkpoint kept from before, that the log only grew.
//! - [`proofs::verify_receipt`] checks a member's receipt (a C2SP `tlog-proof@v1`).
//! - [`proofs::verify_consistency`] checks a consistency proof between two checkpoints.
//! - [`report::report_file`] verifies an export and re-derives the ledger's impact report from
//!   it, with the domain's report code (`docs/reports.md`).
//!
//! The crate depends on the log-format crate (`timecredits-tlog`) and the domain crate
//! (`timecredits-domain`, whose [`rules::apply`](timecredits_domain::rules::apply) the ledger
//! itself runs) and on no storage or HTTP code. `AUDIT.md` at the root of the repository is the
//! auditor's guide: the export format in full, what each check proves, and the exit codes.

#![forbid(unsafe_code)]

pub mod error;
pub mod keychain;
pub mod proofs;
pub mod render;
pub mod replay;
pub mod report;
pub mod trust;
pub mod verify;

use std::path::Path;

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};

pub use error::{Failure, Inconsistency, Stop, UsageError};
pub use trust::{Trust, Verified};
pub use verify::{verify_file, Report, VerifyOptions};

/// Exit code of a check that passed.
pub const EXIT_VALID: i32 = 0;
/// Exit code of invalid evidence.
pub const EXIT_INVALID: i32 = 1;
/// Exit code of unusable input or arguments.
pub const EXIT_UNUSABLE: i32 = 2;

/// Standard base64, the encoding of hashes in checkpoints and proofs.
pub(crate) fn b64(hash: &[u8]) -> String {
    BASE64.encode(hash)
}

/// Maps an I/O error on `path` to a [`UsageError`].
pub(crate) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> UsageError + '_ {
    move |source| UsageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a whole text file (a checkpoint, a receipt, a proof).
pub(crate) fn read_file(path: &Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path).map_err(io_error(path))
}
