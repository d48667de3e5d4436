//! Calendar periods and time zones: which period a day belongs to, and which day an instant is.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, Utc};
use serde::Serialize;

/// The length of a report's periods. Every period starts on the day [`Period::start`] gives and
/// holds every day up to the next start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// One calendar day.
    Day,
    /// An ISO 8601 week: Monday to Sunday, labelled with its ISO week-numbering year.
    Week,
    /// A calendar month.
    #[default]
    Month,
    /// A calendar quarter: January, April, July or October and the two months after.
    Quarter,
    /// A calendar year.
    Year,
}

impl Period {
    /// The first day of the period that holds `day`. Total: at the very edge of the calendar
    /// (a week begun before [`NaiveDate::MIN`]) the period starts at `day` itself.
    pub fn start(self, day: NaiveDate) -> NaiveDate {
        let (year, month) = (day.year(), day.month());
        let first = |month| NaiveDate::from_ymd_opt(year, month, 1);
        match self {
            Period::Day => Some(day),
            Period::Week => {
                day.checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))
            }
            Period::Month => first(month),
            Period::Quarter => first((month - 1) / 3 * 3 + 1),
            Period::Year => first(1),
        }
        .unwrap_or(day)
    }

    /// The label of the period that starts on `start`: `2026-11-23`, `2026-W48`, `2026-11`,
    /// `2026-Q4` or `2026`. Labels of one granularity sort as their periods do (for years 0 to
    /// 9999).
    pub fn label(self, start: NaiveDate) -> String {
        match self {
            Period::Day => start.format("%Y-%m-%d").to_string(),
            Period::Week => {
                let week = start.iso_week();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
            Period::Month => format!("{:04}-{:02}", start.year(), start.month()),
            Period::Quarter => format!("{:04}-Q{}", start.year(), (start.month() - 1) / 3 + 1),
            Period::Year => format!("{:04}", start.year()),
        }
    }

    /// The stable lowercase name, as in `--period`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Period::Day,
            Period::Week,
            Period::Month,
            Period::Quarter,
            Period::Year,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| format!("unknown period {s:?}: day, week, month, quarter or year"))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The time zone that turns a recorded instant into a local day: an IANA zone (with its
/// daylight-saving rules, from the tz database built into `chrono-tz`) or a fixed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// A fixed offset from UTC (UTC itself is offset zero).
    Fixed(FixedOffset),
    /// An IANA zone such as `Europe/London`.
    Named(chrono_tz::Tz),
}

impl Zone {
    /// UTC.
    pub const UTC: Zone = Zone::Fixed(FixedOffset::east_opt(0).expect("zero is a valid offset"));

    /// The local calendar day of the instant `t` in this zone.
    pub fn day(&self, t: &DateTime<Utc>) -> NaiveDate {
        match self {
            Zone::Fixed(offset) => t.with_timezone(offset).date_naive(),
            Zone::Named(tz) => t.with_timezone(tz).date_naive(),
        }
    }
}

impl Default for Zone {
    fn default() -> Self {
        Zone::UTC
    }
}

impl FromStr for Zone {
    type Err = String;
    /// `UTC`, an offset `+HH:MM` or `-HH:MM`, or an IANA zone name.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "UTC" {
            return Ok(Zone::UTC);
        }
        if s.starts_with(['+', '-']) {
            return offset(s)
                .map(Zone::Fixed)
                .ok_or_else(|| format!("bad offset {s:?}: +HH:MM or -HH:MM, below 24 hours"));
        }
        s.parse::<chrono_tz::Tz>()
            .map(Zone::Named)
            .map_err(|_| format!("unknown time zone {s:?}: an IANA name, UTC or +HH:MM"))
    }
}

/// Parses `+HH:MM` or `-HH:MM` exactly.
fn offset(s: &str) -> Option<FixedOffset> {
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let digits = |i: usize| -> Option<i32> {
        let pair = s.get(i..i + 2)?;
        pair.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| pair.parse().ok())?
    };
    let (hours, minutes) = (digits(1)?, digits(4)?);
    if minutes >= 60 {
        return None;
    }
    let seconds = (hours * 60 + minutes) * 60;
    match b[0] {
        b'+' => FixedOffset::east_opt(seconds),
        _ => FixedOffset::west_opt(seconds),
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Fixed(offset) if offset.local_minus_utc() == 0 => f.write_str("UTC"),
            Zone::Fixed(offset) => offset.fmt(f),
            Zone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_start_and_are_labelled() {
        let d = day("2026-11-26"); // a Thursday
        let cases = [
            (Period::Day, "2026-11-26", "2026-11-26"),
            (Period::Week, "2026-11-23", "2026-W48"),
            (Period::Month, "2026-11-01", "2026-11"),
            (Period::Quarter, "2026-10-01", "2026-Q4"),
            (Period::Year, "2026-01-01", "2026"),
        ];
        for (period, start, label) in cases {
            assert_eq!(period.start(d), day(start), "{period}");
            assert_eq!(period.label(period.start(d)), label, "{period}");
            assert_eq!(period.as_str().parse::<Period>(), Ok(period));
        }
    }

    #[test]
    fn iso_weeks_cross_years() {
        // 2027-01-01 is a Friday: its ISO week is week 53 of 2026, begun on Monday 2026-12-28.
        let start = Period::Week.start(day("2027-01-01"));
        assert_eq!(start, day("2026-12-28"));
        assert_eq!(Period::Week.label(start), "2026-W53");
    }

    #[test]
    fn the_calendar_edges_do_not_panic() {
        for period in [
            Period::Day,
            Period::Week,
            Period::Month,
            Period::Quarter,
            Period::Year,
        ] {
            for d in [NaiveDate::MIN, NaiveDate::MAX] {
                let start = period.start(d);
                assert!(start <= d);
                let _ = period.label(start);
            }
        }
    }

    #[test]
    fn zones_give_local_days() {
        let t: DateTime<Utc> = "2026-07-01T23:30:00Z".parse().unwrap();
        let london: Zone = "Europe/London".parse().unwrap();
        assert_eq!(london.day(&t), day("2026-07-02")); // BST, UTC+1
        let winter: DateTime<Utc> = "2026-12-01T23:30:00Z".parse().unwrap();
        assert_eq!(london.day(&winter), day("2026-12-01")); // GMT
        assert_eq!("UTC".parse::<Zone>().unwrap().day(&t), day("2026-07-01"));
        assert_eq!("-05:00".parse::<Zone>().unwrap().day(&t), day("2026-07-01"));
        assert_eq!("+00:30".parse::<Zone>().unwrap().day(&t), day("2026-07-02"));
        for bad in ["+1:00", "+01:60", "+24:00", "Mars/Base", "", "+01:0x"] {
            assert!(bad.parse::<Zone>().is_err(), "{bad}");
        }
        assert_eq!(london.to_string(), "Europe/London");
        assert_eq!("+05:30".parse::<Zone>().unwrap().to_string(), "+05:30");
    }
}
