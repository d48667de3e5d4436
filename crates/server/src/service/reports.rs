//! Impact reports over the ledger: the very computation `timecredits-audit report` runs over a
//! verified export (`timecredits_domain::report`), so a funder can re-derive the service's
//! figures from the signed log, byte for byte.
//!
//! A report is a scan of the entries from the first, as the ledger holds them at the start of
//! the scan (entries committed meanwhile are left for the next report): figures depend on every
//! earlier entry (a member is "new" at their first earn ever), and a scan needs no second copy
//! of the figures to keep in step with the ledger. The scan reads the journal front to back
//! ([`timecredits_ledger::Ledger::entries`]), under 2 s for 1,000,000 entries (README, "Impact
//! reports").
//!
//! The programme office shows the same report on every visit: [`ReportCache`] keeps its tally
//! at the size it last covered and adds only the entries committed since, so a visit costs the
//! new entries, never a rescan, and its figures are exact, never stale. The service fills it
//! when it starts ([`spawn_warm_up`]), so the first visit does not wait for the scan either.

use std::sync::{Mutex, PoisonError};

use actix_web::web;
use chrono::{Datelike, NaiveDate, Utc};
use timecredits_domain::report::{
    age_bands, Band, BandRow, DateBasis, Period, Report, ReportError, ReportSpec, Tally, Zone,
};
use timecredits_domain::Entry;

use crate::problem::ApiError;
use crate::AppState;

/// The report `spec` asks for over the ledger's first `size` entries, and that size (the
/// report's exact basis, which an auditor's export of the same size reproduces).
pub fn impact_report(state: &AppState, spec: ReportSpec) -> Result<(Report, u64), ApiError> {
    let (tally, size) = scan(state, 0, |entries| {
        let mut tally = Tally::new(spec);
        entries.for_each(|entry| tally.add(&entry));
        tally
    })?;
    Ok((made(tally.finish())?, size))
}

/// The age-band breakdown of time given (`timecredits_domain::report::age_bands`) over the
/// ledger's first `size` entries, and that size: each member in the band of their profile if
/// they consented to anonymous statistics, else `not_included`. The one report an auditor
/// cannot re-derive: the bands are not in the signed log.
pub fn age_band_report(
    state: &AppState,
    spec: ReportSpec,
) -> Result<(Vec<BandRow>, u64), ApiError> {
    let bands = state.profiles.statistics_bands();
    let band_of = |account: timecredits_domain::AccountId| {
        bands
            .get(&account.0)
            .map_or(Band::NotIncluded, |b| Band::Age(*b))
    };
    scan(state, 0, |entries| age_bands(entries, &spec, band_of))
}

/// The one scan of every report: hands `fold` the committed entries from `from` up to the
/// ledger's size when the scan begins, read front to back, and returns what it made and that
/// size. The first entry that cannot be read ends the scan, and its error is the answer.
fn scan<T>(
    state: &AppState,
    from: u64,
    fold: impl FnOnce(&mut dyn Iterator<Item = Entry>) -> T,
) -> Result<(T, u64), ApiError> {
    let mut entries = state.ledger.entries(from..u64::MAX)?;
    let size = entries.end();
    let mut failure = None;
    let made = fold(&mut entries.by_ref().map_while(|read| match read {
        Ok(entry) => Some(entry),
        Err(e) => {
            failure = Some(e);
            None
        }
    }));
    match failure {
        Some(e) => Err(e.into()),
        None => Ok((made, size)),
    }
}

/// A tally's report, or its failure as the service's own: entries the ledger committed always
/// make a report.
fn made(report: Result<Report, ReportError>) -> Result<Report, ApiError> {
    report
        .map_err(|e| ApiError::Internal(format!("the ledger's entries do not make a report: {e}")))
}

/// A report kept up to date with the ledger for one spec at a time (the programme office's
/// figures for this year): the tally at the size it last covered, brought forward by the entries
/// committed since each time it is asked for. One at a time: a second caller waits for the
/// first and then has only the entries after it to add.
#[derive(Default)]
pub struct ReportCache(Mutex<Option<Cached>>);

/// What [`ReportCache`] keeps.
struct Cached {
    spec: ReportSpec,
    /// Every entry below `size` added.
    tally: Tally,
    size: u64,
    /// The report of `tally`.
    report: Report,
}

/// The report `spec` asks for over the ledger's first `size` entries, and that size, as
/// [`impact_report`] gives it, from `state`'s [`ReportCache`]: only the entries committed since
/// the last call are read (all of them when the spec changed, say at the turn of the year).
pub fn cached_report(state: &AppState, spec: ReportSpec) -> Result<(Report, u64), ApiError> {
    let mut cache = state
        .reports
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let now = state.ledger.size()?;
    // Taken out while it is brought forward: if reading fails half-way, nothing is kept.
    let (tally, from) = match cache.take() {
        Some(c) if c.spec == spec => {
            if c.size == now {
                let answer = (c.report.clone(), c.size);
                *cache = Some(c);
                return Ok(answer);
            }
            (c.tally, c.size)
        }
        _ => (Tally::new(spec.clone()), 0),
    };
    let (tally, size) = scan(state, from, move |entries| {
        let mut tally = tally;
        entries.for_each(|entry| tally.add(&entry));
        tally
    })?;
    let report = made(tally.report())?;
    *cache = Some(Cached {
        spec,
        tally,
        size,
        report: report.clone(),
    });
    Ok((report, size))
}

/// This year's report by month (in UTC, by effective date), of `partner`'s rows (all with
/// `None`): what the pages show and offer to download.
pub fn this_year(partner: Option<uuid::Uuid>) -> ReportSpec {
    let year = Utc::now().year();
    ReportSpec {
        period: Period::Month,
        basis: DateBasis::default(),
        zone: Zone::default(),
        from: NaiveDate::from_ymd_opt(year, 1, 1),
        to: None,
        partner,
        activity: None,
    }
}

/// Fills the [`ReportCache`] with the programme office's report on a thread of its own, once,
/// so that the first visit after a start does not wait for a scan of the whole ledger (1 to 2 s
/// at 1,000,000 entries). A visit meanwhile waits for it, as it would for another visit.
pub fn spawn_warm_up(state: &web::Data<AppState>) {
    let service = std::sync::Arc::downgrade(&state.clone().into_inner());
    let spawned = std::thread::Builder::new()
        .name("report-warm-up".into())
        .spawn(move || {
            if let Some(state) = service.upgrade() {
                if let Err(e) = cached_report(&state, this_year(None)) {
                    tracing::warn!(error = %e, "the office's report could not be made at start");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the office's report is not made at start");
    }
}

#[cfg(test)]
mod tests {
    use timecredits_domain::report::Period;
    use timecredits_domain::{AccountKind, MovementKind};
    use timecredits_testkit::intents::transfer;
    use timecredits_testkit::ledger::{open_account, submit, Scheme};

    use super::*;
    use crate::Settings;

    #[test]
    fn the_cached_report_is_the_full_scans_at_every_size_and_spec() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        let state = AppState::open(&settings).unwrap();
        let ledger = &state.ledger;
        let s = Scheme::new(ledger, 1_000_000);
        let by_month = ReportSpec::default();
        let by_day = ReportSpec {
            period: Period::Day,
            ..ReportSpec::default()
        };
        let mut members = vec![s.alice, s.bob];
        for round in 0..12u64 {
            // A new member, an earn for every member (the newcomer's is its first), a spend.
            members.push(open_account(ledger, AccountKind::Member));
            for (i, member) in members.iter().enumerate() {
                let earn = transfer(MovementKind::Earn, s.budget, *member, 10 + i as u64);
                submit(ledger, s.admin, earn).unwrap();
            }
            let spend = transfer(MovementKind::Spend, s.alice, s.venue, 5);
            submit(ledger, s.admin, spend).unwrap();
            // The spec changes now and then, as this year's does at the turn of the year.
            let spec = if round % 4 == 3 { &by_day } else { &by_month };
            let cached = cached_report(&state, spec.clone()).unwrap();
            let scanned = impact_report(&state, spec.clone()).unwrap();
            assert_eq!(cached, scanned, "round {round}");
            assert_eq!(cached.1, ledger.size().unwrap());
            // Asked again with nothing new: the same answer.
            assert_eq!(cached_report(&state, spec.clone()).unwrap(), cached);
        }
    }

    #[test]
    fn the_offices_report_is_made_at_start_before_anyone_asks() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        let state = web::Data::new(AppState::open(&settings).unwrap());
        let s = Scheme::new(&state.ledger, 1_000);
        let earn = transfer(MovementKind::Earn, s.budget, s.alice, 30);
        submit(&state.ledger, s.admin, earn).unwrap();
        let size = state.ledger.size().unwrap();
        spawn_warm_up(&state);
        let kept = || {
            let cache = state.reports.0.lock().unwrap();
            cache.as_ref().map(|c| (c.spec.clone(), c.size))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while kept().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(kept(), Some((this_year(None), size)));
        // The office's visit is then the kept report, the full scan's.
        assert_eq!(
            cached_report(&state, this_year(None)).unwrap(),
            impact_report(&state, this_year(None)).unwrap()
        );
    }
}
