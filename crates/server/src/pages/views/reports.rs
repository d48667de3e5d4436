//! The impact report as the pages offer it: this year's, as CSV.

use actix_web::{web, HttpResponse};
use chrono::{Datelike, NaiveDate, Utc};
use timecredits_domain::report::{write_csv, DateBasis, Period, ReportSpec, Zone};
use uuid::Uuid;

use crate::pages::Visitor;
use crate::service;
use crate::AppState;

use super::{not_allowed, signed_in, Page};

/// `GET /app/reports/impact.csv`: this year's impact report, the rows the caller may read.
pub async fn report_csv(v: Visitor, state: web::Data<AppState>) -> Page {
    let caller = signed_in(&v, &state)?;
    let partner = caller
        .report_partner(None)
        .map_err(|_| not_allowed(&v, &caller))?;
    let spec = this_year(partner);
    let state = state.into_inner();
    let (report, size) = web::block(move || service::reports::impact_report(&state, spec))
        .await
        .map_err(|_| not_allowed(&v, &caller))?
        .map_err(|_| not_allowed(&v, &caller))?;
    let mut body = Vec::new();
    write_csv(&report, &mut body).map_err(|_| not_allowed(&v, &caller))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"impact-report-{size}.csv\""),
        ))
        .body(body))
}

/// This year's report, by month, of `partner`'s rows (all with `None`).
pub(super) fn this_year(partner: Option<Uuid>) -> ReportSpec {
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
