//! `report`: the impact report of a ledger, re-derived offline from a verified export.
//!
//! The export is verified exactly as `verify` does it, and every entry that passes is fed, in
//! order, to the domain's report [`Tally`], the very code the service runs over its own entries.
//! The report is given only when the whole export verified; its CSV is then byte for byte the
//! service's for the same ledger size and the same [`ReportSpec`].

use std::cell::RefCell;
use std::path::Path;

use timecredits_domain::report::{ReportSpec, Tally};
use timecredits_domain::Entry;

use crate::error::UsageError;
use crate::trust::Trust;
use crate::verify::{self, verify_file, VerifyOptions};

/// What re-deriving a report found.
#[derive(Debug)]
pub enum Derived {
    /// The export verified: its report.
    Report(timecredits_domain::report::Report),
    /// The export did not verify: the verification's report, whose failure says why.
    Invalid(Box<verify::Report>),
}

/// Verifies the full export at `path` against `trust` and computes its report for `spec`.
/// `progress` is passed to the verification (see [`VerifyOptions::progress`]).
pub fn report_file(
    path: &Path,
    trust: &Trust,
    spec: &ReportSpec,
    progress: Option<&(dyn Fn(u64, u64) + Sync)>,
) -> Result<Derived, UsageError> {
    let tally = RefCell::new(Tally::new(spec.clone()));
    let each_entry = |entry: &Entry| tally.borrow_mut().add(entry);
    let options = VerifyOptions {
        progress,
        each_entry: Some(&each_entry),
        ..VerifyOptions::default()
    };
    let verified = verify_file(path, trust, &options)?;
    if !verified.is_valid() {
        return Ok(Derived::Invalid(Box::new(verified)));
    }
    if verified.header.from != 0 {
        return Err(UsageError::PartialExport {
            from: verified.header.from,
        });
    }
    tally
        .into_inner()
        .finish()
        .map(Derived::Report)
        .map_err(UsageError::Report)
}
