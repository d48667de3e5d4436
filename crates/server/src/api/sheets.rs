//! Coordinators' sheets: a batch of earns uploaded as CSV (`POST /v1/earn/batch` with
//! `Content-Type: text/csv`), read into the same intents as the JSON batch, with every mistake
//! reported by its line.

use std::future::Future;
use std::pin::Pin;

use actix_web::error::PayloadError;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use chrono::NaiveDate;
use timecredits_domain::{AccountId, Details, Intent, Minutes, MovementKind, ShortText};
use uuid::Uuid;

use super::movements::{transfer, NewEarnBatch};
use crate::problem::{ApiError, RowError};

/// The columns of an earn sheet, in any order: the JSON batch's fields, with `hours` as people
/// write them (`Minutes::from_hours_text`). The first three are required; an empty
/// `reference` or `date_given` is none.
pub const EARN_COLUMNS: [&str; 5] = ["member_id", "hours", "activity", "reference", "date_given"];

/// The body of a batch earn: JSON, or a CSV sheet (by its `Content-Type`).
pub enum EarnBatchBody {
    /// `application/json`.
    Json(web::Json<NewEarnBatch>),
    /// `text/csv`, unread.
    Csv(web::Bytes),
}

impl FromRequest for EarnBatchBody {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !req.content_type().eq_ignore_ascii_case("text/csv") {
            let json = web::Json::<NewEarnBatch>::from_request(req, payload);
            return Box::pin(async move { json.await.map(EarnBatchBody::Json) });
        }
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            bytes.await.map(EarnBatchBody::Csv).map_err(|e| {
                match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError::PayloadTooLarge {
                        limit: crate::MAX_BATCH_BODY_BYTES,
                    },
                    Some(p) if crate::limits::timed_out(p) => ApiError::RequestTimeout,
                    _ => ApiError::InvalidRequest(format!("the body could not be read: {e}")),
                }
                .into()
            })
        })
    }
}

/// The intents of an earn sheet from `budget`, in row order; or every mistake in it, by line.
pub fn earn_intents(sheet: &[u8], budget: AccountId) -> Result<Vec<Intent>, ApiError> {
    let mut reader = csv::Reader::from_reader(sheet);
    let header_error = |field: Option<&str>, detail: String| RowError {
        line: 1,
        field: field.map(str::to_owned),
        detail,
    };
    let headers = reader
        .headers()
        .map_err(|e| ApiError::InvalidRows(vec![header_error(None, e.to_string())]))?
        .clone();
    let mut errors: Vec<RowError> = headers
        .iter()
        .filter(|h| !EARN_COLUMNS.contains(h))
        .map(|h| {
            let known = EARN_COLUMNS.join(", ");
            header_error(Some(h), format!("not a column of an earn sheet ({known})"))
        })
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    for required in &EARN_COLUMNS[..3] {
        if column(required).is_none() {
            errors.push(header_error(
                Some(required),
                "this column is missing".into(),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::InvalidRows(errors));
    }
    let mut intents = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(RowError {
                    line,
                    field: None,
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
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
            let member = AccountId(member);
            let earn = transfer(
                MovementKind::Earn,
                budget,
                member,
                minutes,
                date_given,
                details,
            );
            intents.push(earn);
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
    fn unknown_and_missing_columns_are_refused_on_line_1() {
        let found = rows("member_id,hours,minutes\n");
        let fields: Vec<_> = found.iter().map(|r| (r.line, r.field.clone())).collect();
        assert_eq!(
            fields,
            [(1, Some("minutes".into())), (1, Some("activity".into()))]
        );
    }
}
