//! The impact report as the pages offer it: this year's, as CSV.

use actix_web::web;

use crate::pages::Visitor;
use crate::service;
use crate::AppState;

use super::{failed, not_allowed, signed_in, Page};

/// `GET /app/reports/impact.csv`: this year's impact report, the rows the caller may read: the
/// API's CSV answer (with its `Ledger-Size`).
pub async fn report_csv(v: Visitor, state: web::Data<AppState>) -> Page {
    let caller = signed_in(&v, &state)?;
    let partner = caller
        .report_partner(None)
        .map_err(|_| not_allowed(&v, &caller))?;
    crate::api::reports::impact_csv(state, service::reports::this_year(partner))
        .await
        .map_err(|e| failed(&v, &caller, ("", "desk-reports"), &e))
}
