//! A partner's year-end statement: for each of its accounts, the balance the year opened with,
//! every movement in or out of it recorded during the year (UTC), and the balance it closed
//! with, as CSV (RFC 4180: UTF-8, CRLF line ends, fields quoted when they must be).

use chrono::NaiveDate;
use timecredits_domain::{csv, AccountId, AccountKind, Balance, Entry, EntryBody};
use timecredits_ledger::HistoryQuery;

use crate::problem::ApiError;
use crate::registry::Partner;
use crate::AppState;

/// The first line of every statement.
const HEADER: &str =
    "account_kind,line,date,seq,kind,minutes,counterparty_kind,reference,balance_minutes";

/// The years a statement may be asked for: from the Unix epoch to the last four-digit year.
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// The statement of `partner` for `year` (one of [`YEARS`]).
pub fn statement(state: &AppState, partner: &Partner, year: i32) -> Result<String, ApiError> {
    let (first, last) = match (
        NaiveDate::from_ymd_opt(year, 1, 1),
        NaiveDate::from_ymd_opt(year, 12, 31),
    ) {
        (Some(first), Some(last)) if YEARS.contains(&year) => (first, last),
        _ => {
            return Err(ApiError::InvalidQuery(format!(
                "year must be from {} to {}",
                YEARS.start(),
                YEARS.end()
            )))
        }
    };
    let mut csv = format!("{HEADER}\r\n");
    let accounts = [
        (AccountKind::Budget, partner.budget_account),
        (AccountKind::Venue, partner.venue_account),
    ];
    for (kind, account) in accounts {
        let Some(account) = account.map(AccountId) else {
            continue;
        };
        // The balance after each entry; `opening` stops following it at the year's start.
        let (mut opening, mut balance): (Balance, Balance) = (0, 0);
        let mut movements = String::new();
        for entry in oldest_first(state, account)? {
            let EntryBody::Move(m) = &entry.body else {
                continue;
            };
            let day = entry.recorded.date_naive();
            if day > last {
                break;
            }
            let (delta, other) = if m.credit == account {
                (m.minutes.as_balance(), m.debit)
            } else {
                (-m.minutes.as_balance(), m.credit)
            };
            balance += delta;
            if day < first {
                opening = balance;
                continue;
            }
            let counterparty = state.ledger.account(other)?.map_or("", |a| a.kind.as_str());
            let reference = m.details.reference.as_ref().map_or("", |r| r.as_str());
            let reference = csv::text(reference);
            movements += &csv::record(&[
                kind.as_str(),
                "movement",
                &day.to_string(),
                &entry.seq.to_string(),
                m.kind.as_str(),
                &delta.to_string(),
                counterparty,
                &reference,
                &balance.to_string(),
            ]);
        }
        let total = |name: &str, day: NaiveDate, minutes: Balance| {
            let (day, minutes) = (day.to_string(), minutes.to_string());
            csv::record(&[kind.as_str(), name, &day, "", "", "", "", "", &minutes])
        };
        csv += &total("opening", first, opening);
        csv += &movements;
        csv += &total("closing", last, balance);
    }
    Ok(csv)
}

/// Every entry of `account`'s history, oldest first.
fn oldest_first(state: &AppState, account: AccountId) -> Result<Vec<Entry>, ApiError> {
    let mut entries = Vec::new();
    let mut query = HistoryQuery {
        before: None,
        limit: HistoryQuery::MAX_LIMIT,
        kinds: Vec::new(),
        from: None,
        to: None,
    };
    loop {
        let page = state.ledger.history(account, &query)?;
        entries.extend(page.entries);
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    entries.reverse();
    Ok(entries)
}
