//! The age-band breakdown of time given: per period and age band, the minutes given, the earn
//! movements and the distinct members credited.
//!
//! It is the one report that needs more than the ledger: a member's age band lives in their
//! profile, outside the signed log, so an auditor cannot re-derive it from an export (see
//! `docs/reports.md`). What it can check is that it adds up: every earn movement the impact
//! report's `earn` section counts (same spec: period, dates, partner, activity) is counted in
//! exactly one band row here, so per period the bands' `given_minutes` and `earns` sum to the
//! `earn` rows' sums. Members without a profile, or who did not consent to anonymous
//! statistics, are counted together as [`Band::NotIncluded`], never by age.
//!
//! # Method
//! One pass over the entries: per budget account its owner (for the partner filter), and one
//! cell per period and band that occurs, with the set of members credited there. Memory is
//! `O(budgets + cells + earns)`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;
use uuid::Uuid;

use super::{DateBasis, Figure, ReportSpec};
use crate::csv;
use crate::entry::{AccountId, AccountKind, Entry, EntryBody, MovementKind};
use crate::profile::AgeBand;

/// A row group of the breakdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "&'static str")]
pub enum Band {
    /// Members who consented to anonymous statistics, by the age band they gave
    /// ([`AgeBand::Undisclosed`] if none).
    Age(AgeBand),
    /// Members without a profile, or who did not consent: counted, never by age.
    NotIncluded,
}

impl Band {
    /// The stable name, as in the `band` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Age(band) => band.as_str(),
            Band::NotIncluded => "not_included",
        }
    }
}

impl From<Band> for &'static str {
    fn from(band: Band) -> &'static str {
        band.as_str()
    }
}

/// The figures of each row, in row order.
pub const BAND_FIGURES: [Figure; 3] = [Figure::GivenMinutes, Figure::Earns, Figure::MembersActive];

/// The CSV header of the breakdown.
pub const BAND_CSV_HEADER: &str = "period,band,figure,value\r\n";

/// One row of the breakdown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BandRow {
    /// The period's label.
    pub period: String,
    /// The band.
    pub band: Band,
    /// What is counted: `given_minutes`, `earns` or `members_active`.
    pub figure: Figure,
    /// The exact figure.
    pub value: i64,
}

#[derive(Default)]
struct Cell {
    minutes: i64,
    earns: i64,
    members: HashSet<AccountId>,
}

/// The breakdown of `entries` (in log order) for `spec`, with each member's band from
/// `band_of`: rows by period, then band (age bands in [`AgeBand::ALL`] order, then
/// `not_included`), then figure in [`BAND_FIGURES`] order. Only periods and bands with an earn
/// have rows.
pub fn age_bands<E: std::borrow::Borrow<Entry>>(
    entries: impl IntoIterator<Item = E>,
    spec: &ReportSpec,
    band_of: impl Fn(AccountId) -> Band,
) -> Vec<BandRow> {
    let mut budgets: HashMap<AccountId, Option<Uuid>> = HashMap::new();
    let mut cells: BTreeMap<(NaiveDate, Band), Cell> = BTreeMap::new();
    for entry in entries {
        let entry = entry.borrow();
        let m = match &entry.body {
            EntryBody::Open {
                account,
                account_kind: AccountKind::Budget,
                owner,
            } => {
                budgets.insert(*account, *owner);
                continue;
            }
            EntryBody::Move(m) if m.kind == MovementKind::Earn => m,
            _ => continue,
        };
        let day = match spec.basis {
            DateBasis::Effective => m.effective,
            DateBasis::Recorded => spec.zone.day(&entry.recorded),
        };
        let in_range =
            spec.from.is_none_or(|from| day >= from) && spec.to.is_none_or(|to| day <= to);
        let partner = budgets.get(&m.debit).copied().flatten();
        let of_partner = spec.partner.is_none_or(|p| partner == Some(p));
        let of_activity = spec
            .activity
            .as_deref()
            .is_none_or(|a| m.details.activity.as_ref().map(|t| t.as_str()) == Some(a));
        if !(in_range && of_partner && of_activity) {
            continue;
        }
        let cell = cells
            .entry((spec.period.start(day), band_of(m.credit)))
            .or_default();
        cell.minutes = cell.minutes.saturating_add(m.minutes.as_balance());
        cell.earns = cell.earns.saturating_add(1);
        cell.members.insert(m.credit);
    }
    let mut rows = Vec::with_capacity(cells.len() * BAND_FIGURES.len());
    for ((start, band), cell) in cells {
        let members = i64::try_from(cell.members.len()).unwrap_or(i64::MAX);
        for (figure, value) in BAND_FIGURES
            .into_iter()
            .zip([cell.minutes, cell.earns, members])
        {
            rows.push(BandRow {
                period: spec.period.label(start),
                band,
                figure,
                value,
            });
        }
    }
    rows
}

/// Writes the breakdown as CSV (RFC 4180, through [`crate::csv`]).
pub fn write_band_csv(rows: &[BandRow], out: &mut impl std::io::Write) -> std::io::Result<()> {
    out.write_all(BAND_CSV_HEADER.as_bytes())?;
    for row in rows {
        let value = row.value.to_string();
        let line = csv::record(&[&row.period, row.band.as_str(), row.figure.as_str(), &value]);
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

// Tested in the parent module's tests, over its random logs: `the_age_bands_add_up_to_the_earn_section`.
