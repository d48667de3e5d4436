//! Impact reports over the ledger: the very computation `timecredits-audit report` runs over a
//! verified export (`timecredits_domain::report`), so a funder can re-derive the service's
//! figures from the signed log, byte for byte.
//!
//! A report is a scan of the entries from the first, as the ledger holds them at the start of
//! the scan (entries committed meanwhile are left for the next report): figures depend on every
//! earlier entry (a member is "new" at their first earn ever), and a scan needs no second copy
//! of the figures to keep in step with the ledger.

use timecredits_domain::report::{age_bands, Band, BandRow, Report, ReportSpec, Tally};

use crate::problem::ApiError;
use crate::AppState;

/// The report `spec` asks for over the ledger's first `size` entries, and that size (the
/// report's exact basis, which an auditor's export of the same size reproduces).
pub fn impact_report(state: &AppState, spec: ReportSpec) -> Result<(Report, u64), ApiError> {
    let size = state.ledger.size()?;
    let mut tally = Tally::new(spec);
    for seq in 0..size {
        let entry = state.ledger.entry(seq)?.ok_or_else(|| {
            ApiError::Internal(format!("entry {seq} of {size} could not be read"))
        })?;
        tally.add(&entry);
    }
    // Entries the ledger committed always make a report; a failure here is the service's own.
    let report = tally.finish().map_err(|e| {
        ApiError::Internal(format!("the ledger's entries do not make a report: {e}"))
    })?;
    Ok((report, size))
}

/// The age-band breakdown of time given (`timecredits_domain::report::age_bands`) over the
/// ledger's first `size` entries, and that size: each member in the band of their profile if
/// they consented to anonymous statistics, else `not_included`. The one report an auditor
/// cannot re-derive: the bands are not in the signed log.
pub fn age_band_report(
    state: &AppState,
    spec: ReportSpec,
) -> Result<(Vec<BandRow>, u64), ApiError> {
    let size = state.ledger.size()?;
    let bands = state.profiles.statistics_bands();
    // Read as the breakdown goes, one entry at a time; the first failure ends the scan.
    let mut failure = None;
    let entries = (0..size).map_while(|seq| match state.ledger.entry(seq) {
        Ok(Some(entry)) => Some(entry),
        Ok(None) => {
            failure = Some(ApiError::Internal(format!(
                "entry {seq} of {size} could not be read"
            )));
            None
        }
        Err(e) => {
            failure = Some(e.into());
            None
        }
    });
    let band_of = |account: timecredits_domain::AccountId| {
        bands
            .get(&account.0)
            .map_or(Band::NotIncluded, |b| Band::Age(*b))
    };
    let rows = age_bands(entries, &spec, band_of);
    match failure {
        Some(e) => Err(e),
        None => Ok((rows, size)),
    }
}
