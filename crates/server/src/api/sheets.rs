//! Coordinators' sheets over HTTP: the CSV body of a batch of earns (`POST /v1/earn/batch` with
//! `Content-Type: text/csv`) or of member registrations (`POST /v1/members/batch`). What a sheet
//! holds, and every mistake in it by line, is `service::sheets`' (the desk page reads the same).

use std::future::Future;
use std::pin::Pin;

use super::movements::NewEarnBatch;
use crate::problem::ApiError;
use actix_web::error::PayloadError;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};

/// A CSV body (`Content-Type: text/csv`), unread; any other type is refused (415).
pub struct CsvBody(pub web::Bytes);

fn is_csv(req: &HttpRequest) -> bool {
    req.content_type().eq_ignore_ascii_case("text/csv")
}

impl FromRequest for CsvBody {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !is_csv(req) {
            let refused = ApiError::UnsupportedMediaType(
                "the body must be CSV with Content-Type: text/csv".into(),
            );
            return Box::pin(std::future::ready(Err(refused.into())));
        }
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            bytes.await.map(CsvBody).map_err(|e| {
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
        if is_csv(req) {
            let csv = CsvBody::from_request(req, payload);
            return Box::pin(async move { csv.await.map(|c| EarnBatchBody::Csv(c.0)) });
        }
        let json = web::Json::<NewEarnBatch>::from_request(req, payload);
        Box::pin(async move { json.await.map(EarnBatchBody::Json) })
    }
}
