//! Impact reports: the programme's figures per period, partner and activity, as CSV or JSON
//! (docs/reports.md defines every figure).

use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
use timecredits_domain::report::{
    write_band_csv, write_csv, write_json, BandRow, DateBasis, Period, Report, ReportSpec, Zone,
};
use utoipa::IntoParams;
use uuid::Uuid;

use super::responses::AuthProblems;
use crate::auth::Caller;
use crate::problem::{ApiError, Problem};
use crate::service::reports::{age_band_report, impact_report};
use crate::AppState;

/// The header naming the ledger size a report was computed over: an auditor's export of that
/// size gives the same report (`timecredits-audit report`).
pub const LEDGER_SIZE_HEADER: &str = "Ledger-Size";

/// What to report on.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// The length of the periods: day, week (ISO, from Monday), month (default), quarter, year.
    pub period: Option<String>,
    /// Which date places a movement in a period: `effective` (default: the day the hour was
    /// given or used) or `recorded` (when the ledger recorded it, as a day in `tz`).
    pub date: Option<String>,
    /// The time zone of recorded days: an IANA name (`Europe/London`), `UTC` (default) or a
    /// fixed offset (`+01:00`).
    pub tz: Option<String>,
    /// The first day reported on (inclusive), `YYYY-MM-DD`.
    pub from: Option<NaiveDate>,
    /// The last day reported on (inclusive), `YYYY-MM-DD`.
    pub to: Option<NaiveDate>,
    /// Only this partner's rows (administrators and auditors; a partner always gets its own).
    pub partner: Option<Uuid>,
    /// Only the earn and spend rows of this activity (compared exactly).
    pub activity: Option<String>,
    /// `json` (default) or `csv` (RFC 4180, UTF-8, CRLF line ends).
    pub format: Option<String>,
}

impl ReportParams {
    /// Whether CSV was asked for (`format=csv`) rather than JSON.
    fn csv(&self) -> Result<bool, ApiError> {
        match self.format.as_deref() {
            None | Some("json") => Ok(false),
            Some("csv") => Ok(true),
            Some(other) => Err(ApiError::InvalidQuery(format!(
                "unknown format {other:?}: json or csv"
            ))),
        }
    }

    fn spec(&self, partner: Option<Uuid>) -> Result<ReportSpec, ApiError> {
        fn parse<T: std::str::FromStr<Err = String> + Default>(
            value: Option<&String>,
        ) -> Result<T, ApiError> {
            value.map_or(Ok(T::default()), |v| {
                v.parse().map_err(ApiError::InvalidQuery)
            })
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from > to {
                return Err(ApiError::InvalidQuery(format!(
                    "`from` ({from}) is after `to` ({to})"
                )));
            }
        }
        Ok(ReportSpec {
            period: parse::<Period>(self.period.as_ref())?,
            basis: parse::<DateBasis>(self.date.as_ref())?,
            zone: parse::<Zone>(self.tz.as_ref())?,
            from: self.from,
            to: self.to,
            partner,
            activity: self.activity.clone(),
        })
    }
}

/// Impact report
///
/// The programme's figures per period: per earn partner and activity (minutes given, members
/// active and new), per partner's budget, per venue and activity (minutes redeemed, visits,
/// adults, children), gifts, reversals and the credit in circulation, as rows of `period,
/// section, partner, activity, figure, value` (docs/reports.md defines each figure). Computed
/// from the ledger's first `Ledger-Size` entries, by the same code as `timecredits-audit report
/// --key VKEY EXPORT` over a verified export of that size, which gives the same bytes.
/// Administrators and auditors read every row; a partner reads its own.
#[utoipa::path(get, path = "/v1/reports/impact", tag = "reports",
    params(ReportParams),
    responses(
        (status = 200, description = "The report: JSON rows, or CSV with `format=csv`",
            headers(("Ledger-Size" = u64, description = "The ledger size the report covers"))),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A member, or a partner asking for another's rows (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn impact(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<ReportParams>,
) -> Result<HttpResponse, ApiError> {
    serve(
        state,
        &caller,
        &params,
        "impact-report",
        impact_report,
        write_impact,
    )
    .await
}

fn write_impact(report: &Report, csv: bool, out: &mut Vec<u8>) -> std::io::Result<()> {
    if csv {
        write_csv(report, out)
    } else {
        write_json(report, out)
    }
}

/// The impact report for `spec` as CSV: the API's answer, which the pages' download is too.
pub async fn impact_csv(
    state: web::Data<AppState>,
    spec: ReportSpec,
) -> Result<HttpResponse, ApiError> {
    respond(
        state,
        spec,
        true,
        "impact-report",
        impact_report,
        write_impact,
    )
    .await
}

/// Computes a report of the ledger as it is now: its rows and the ledger size they cover.
type Compute<R> = fn(&AppState, ReportSpec) -> Result<(R, u64), ApiError>;

/// Serves a report: the caller's rows for `params`, computed off the async workers by
/// `compute`, written as CSV or JSON by `write`, with the ledger size they cover.
async fn serve<R: Send + 'static>(
    state: web::Data<AppState>,
    caller: &Caller,
    params: &ReportParams,
    name: &str,
    compute: Compute<R>,
    write: fn(&R, bool, &mut Vec<u8>) -> std::io::Result<()>,
) -> Result<HttpResponse, ApiError> {
    let partner = caller.report_partner(params.partner)?;
    let spec = params.spec(partner)?;
    let csv = params.csv()?;
    respond(state, spec, csv, name, compute, write).await
}

/// The report `spec` computed off the async workers by `compute`, written as CSV or JSON by
/// `write`, as an answer naming the ledger size it covers.
async fn respond<R: Send + 'static>(
    state: web::Data<AppState>,
    spec: ReportSpec,
    csv: bool,
    name: &str,
    compute: Compute<R>,
    write: fn(&R, bool, &mut Vec<u8>) -> std::io::Result<()>,
) -> Result<HttpResponse, ApiError> {
    let state = state.into_inner();
    let (report, size) = web::block(move || compute(&state, spec))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let mut body = Vec::new();
    write(&report, csv, &mut body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(answer(body, size, csv, name))
}

/// A report's answer: its body, the ledger size it covers, and for CSV a file name.
fn answer(body: Vec<u8>, size: u64, csv: bool, name: &str) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.insert_header((LEDGER_SIZE_HEADER, size.to_string()));
    if csv {
        response
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{name}-{size}.csv\""),
            ));
    } else {
        response.content_type("application/json");
    }
    response.body(body)
}

/// Impact report by age band
///
/// Time given per period and age band: minutes given, earn movements and distinct members
/// credited (the `earn` section's figures of the impact report, with the same parameters), for
/// members who consented to anonymous statistics, by the age band in their profile
/// (`undisclosed` if none); everyone else is counted as `not_included`, so per period the bands
/// add up to the impact report's earn rows. Unlike the impact report, it cannot be re-derived
/// from a signed export: age bands live in profiles, outside the ledger (docs/reports.md).
/// Administrators and auditors read every row; a partner the rows of its own earns.
#[utoipa::path(get, path = "/v1/reports/impact/age-bands", tag = "reports",
    params(ReportParams),
    responses(
        (status = 200, description = "The breakdown: a JSON array of rows `{period, band, figure, value}` (figures `given_minutes`, `earns`, `members_active`), or CSV (`period,band,figure,value`) with `format=csv`",
            headers(("Ledger-Size" = u64, description = "The ledger size the report covers"))),
        (status = 400, description = "`invalid_query`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A member, or a partner asking for another's rows (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn age_bands(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<ReportParams>,
) -> Result<HttpResponse, ApiError> {
    let write = |rows: &Vec<BandRow>, csv: bool, out: &mut Vec<u8>| {
        if csv {
            write_band_csv(rows, out)
        } else {
            serde_json::to_writer(out, rows).map_err(std::io::Error::other)
        }
    };
    serve(
        state,
        &caller,
        &params,
        "age-band-report",
        age_band_report,
        write,
    )
    .await
}
