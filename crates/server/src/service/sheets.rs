//! Coordinators' sheets: a batch of earns or of member registrations written as CSV (RFC
//! 4180, UTF-8, a header row naming the columns in any order), read into the very intents and
//! references the JSON batches make, with every mistake reported by its line and column. The
//! API takes a sheet as a `text/csv` body (`api::sheets`), the partner desk as an upload.

use chrono::NaiveDate;
use timecredits_domain::{AccountId, Details, Intent, Minutes, MovementKind, ShortText, Transfer};
use uuid::Uuid;

use crate::problem::{ApiError, RowError};

/// The columns of an earn sheet, in any order: the JSON batch's fields, with `hours` as people
/// write them (`Minutes::from_hours_text`). The first three are required; an empty
/// `reference` or `date_given` is none.
pub const EARN_COLUMNS: [&str; 5] = ["member_id", "hours", "activity", "reference", "date_given"];

/// The columns of a registration sheet: the registering partner's reference for each member,
/// required (a sheet is how a partner's own list becomes members).
pub const MEMBER_COLUMNS: [&str; 1] = ["reference"];

/// A mistake on the header row.
fn header_error(field: Option<&str>, detail: String) -> RowError {
    RowError {
        line: 1,
        field: field.map(str::to_owned),
        detail,
    }
}

/// The header row of a sheet whose columns are `known`, the first `required` of them required;
/// or its mistakes.
fn header(
    reader: &mut csv::Reader<&[u8]>,
    known: &[&str],
    required: usize,
) -> Result<csv::StringRecord, ApiError> {
    let headers = reader
        .headers()
        .map_err(|e| ApiError::InvalidRows(vec![header_error(None, e.to_string())]))?
        .clone();
    let mut errors: Vec<RowError> = headers
        .iter()
        .filter(|h| !known.contains(h))
        .map(|h| {
            let detail = format!("not a column of this sheet ({})", known.join(", "));
            header_error(Some(h), detail)
        })
        .collect();
    for name in &known[..required] {
        if !headers.iter().any(|h| h == *name) {
            errors.push(header_error(Some(name), "this column is missing".into()));
        }
    }
    if errors.is_empty() {
        Ok(headers)
    } else {
        Err(ApiError::InvalidRows(errors))
    }
}

/// The line a record starts on.
fn line_of(position: Option<&csv::Position>) -> u64 {
    position.map_or(0, csv::Position::line)
}

/// The references of a registration sheet, in row order; or every mistake in it, by line.
pub fn member_references(sheet: &[u8]) -> Result<Vec<ShortText>, ApiError> {
    let mut reader = csv::Reader::from_reader(sheet);
    header(&mut reader, &MEMBER_COLUMNS, MEMBER_COLUMNS.len())?;
    let mut references = Vec::new();
    let mut errors = Vec::new();
    for record in reader.records() {
        let read = record.map_err(|e| (line_of(e.position()), None, e.to_string()));
        let reference = read.and_then(|r| {
            let line = line_of(r.position());
            ShortText::from_input("reference", r.get(0).unwrap_or(""))
                .map_err(|e| (line, Some("reference".to_owned()), e.to_string()))
        });
        match reference {
            Ok(reference) => references.push(reference),
            Err((line, field, detail)) => errors.push(RowError {
                line,
                field,
                detail,
            }),
        }
    }
    if errors.is_empty() {
        Ok(references)
    } else {
        Err(ApiError::InvalidRows(errors))
    }
}

/// The intents of an earn sheet from `budget`, in row order; or every mistake in it, by line.
pub fn earn_intents(sheet: &[u8], budget: AccountId) -> Result<Vec<Intent>, ApiError> {
    let mut reader = csv::Reader::from_reader(sheet);
    let headers = header(&mut reader, &EARN_COLUMNS, 3)?;
    let column = |name: &str| headers.iter().position(|h| h == name);
    let mut errors = Vec::new();
    let mut intents = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                errors.push(RowError {
                    line: line_of(e.position()),
                    field: None,
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let line = line_of(record.position());
        let cell = |name: &str| column(name).and_then(|i| record.get(i)).unwrap_or("");
        let mut mistake = |field: &str, detail: String| {
            errors.push(RowError {
                line,
                field: Some(field.to_owned()),
                detail,
            });
        };
        let member = Uuid::parse_str(cell("member_id").trim())
            .map_err(|_| mistake("member_id", "not a member id (a UUID)".into()))
            .ok();
        let minutes = Minutes::from_hours_text(cell("hours"))
            .map_err(|e| mistake("hours", e.to_string()))
            .ok();
        let activity = ShortText::from_input("activity", cell("activity"))
            .map_err(|e| mistake("activity", e.to_string()))
            .ok();
        let reference = Some(cell("reference"))
            .filter(|r| !r.is_empty())
            .map(|r| ShortText::from_input("reference", r))
            .transpose()
            .map_err(|e| mistake("reference", e.to_string()));
        let date_given = Some(cell("date_given").trim())
            .filter(|d| !d.is_empty())
            .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d"))
            .transpose()
            .map_err(|_| mistake("date_given", "not a date (YYYY-MM-DD)".into()));
        if let (Some(member), Some(minutes), Some(activity), Ok(reference), Ok(date_given)) =
            (member, minutes, activity, reference, date_given)
        {
            let details = Details {
                activity: Some(activity),
                reference,
                ..Details::default()
            };
            intents.push(Intent::Transfer(Transfer {
                kind: MovementKind::Earn,
                debit: budget,
                credit: AccountId(member),
                minutes,
                effective: date_given,
                details,
            }));
        }
    }
    if errors.is_empty() {
        Ok(intents)
    } else {
        Err(ApiError::InvalidRows(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBER: &str = "0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12";

    fn rows(sheet: &str) -> Vec<RowError> {
        match earn_intents(sheet.as_bytes(), AccountId(Uuid::nil())) {
            Err(ApiError::InvalidRows(rows)) => rows,
            other => panic!("not refused by rows: {other:?}"),
        }
    }

    #[test]
    fn a_sheet_becomes_earns_in_row_order_with_hours_as_written() {
        let sheet = format!(
            "activity,member_id,hours,date_given,reference\r\n\
             lunch club,{MEMBER},1.5,2026-11-22,R-1\r\n\
             \"garden, front\",{MEMBER},1:30,,\r\n"
        );
        let intents = earn_intents(sheet.as_bytes(), AccountId(Uuid::nil())).unwrap();
        let [Intent::Transfer(first), Intent::Transfer(second)] = &intents[..] else {
            panic!("two transfers: {intents:?}");
        };
        assert_eq!((first.minutes.get(), second.minutes.get()), (90, 90));
        assert_eq!(first.effective, NaiveDate::from_ymd_opt(2026, 11, 22));
        assert_eq!(
            first.details.reference.as_ref().map(|r| r.as_str()),
            Some("R-1")
        );
        assert_eq!(second.effective, None);
        assert_eq!(second.details.reference, None);
        let activity = second.details.activity.as_ref().map(|a| a.as_str());
        assert_eq!(activity, Some("garden, front"));
    }

    #[test]
    fn every_mistake_is_reported_with_its_line_and_column() {
        let sheet = format!(
            "member_id,hours,activity\n\
             {MEMBER},1.33,lunch\n\
             not-an-id,2,\n\
             {MEMBER},2,lunch\n\
             {MEMBER},2\n"
        );
        let found: Vec<_> = rows(&sheet)
            .into_iter()
            .map(|r| (r.line, r.field))
            .collect();
        let field = |f: &str| Some(f.to_owned());
        assert_eq!(
            found,
            [
                (2, field("hours")),
                (3, field("member_id")),
                (3, field("activity")),
                (5, None),
            ]
        );
        assert!(rows(&sheet)[0].detail.contains("79.8 minutes"));
    }

    #[test]
    fn a_registration_sheet_is_its_references_each_checked() {
        let refs = member_references(b"reference\r\nM-1\r\n\"M-2, Jo\"\r\n").unwrap();
        let refs: Vec<_> = refs.iter().map(ShortText::as_str).collect();
        assert_eq!(refs, ["M-1", "M-2, Jo"]);
        let Err(ApiError::InvalidRows(found)) =
            member_references("reference\nM-1\n\"M\u{202e}2\"\nM-3,x\n".as_bytes())
        else {
            panic!("refused by rows");
        };
        let found: Vec<_> = found.into_iter().map(|r| (r.line, r.field)).collect();
        assert_eq!(found, [(3, Some("reference".into())), (4, None)]);
    }

    #[test]
    fn unknown_and_missing_columns_are_refused_on_line_1() {
        let found = rows("member_id,hours,minutes\n");
        let fields: Vec<_> = found.iter().map(|r| (r.line, r.field.clone())).collect();
        assert_eq!(
            fields,
            [(1, Some("minutes".into())), (1, Some("activity".into()))]
        );
    }
}
