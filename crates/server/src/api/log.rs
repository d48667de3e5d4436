//! The verifiable log: the latest signed checkpoint and the key that signs it. Public: a
//! transparency log's checkpoints are meant to be seen by anyone who wants to check them.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::ApiError;
use crate::AppState;

/// The media type of a C2SP signed note.
const NOTE_TYPE: &str = "text/plain; charset=utf-8";

/// Get the latest checkpoint
///
/// The latest signed checkpoint as C2SP signed-note text: origin, tree size, base64 root hash,
/// a blank line, and the signature line(s). Keep it: a later checkpoint must be consistent
/// with it. No credential needed.
#[utoipa::path(get, path = "/v1/ledger/checkpoint", tag = "ledger",
    responses(
        (status = 200, description = "The signed note", body = String, content_type = "text/plain",
         example = "localhost/timecredits\n43\nq1GIqbF5sP0CUoUGV0Ulh7n4YMBL0Ifn0bqhU5UM6oE=\n\n— localhost/timecredits Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"),
    ))]
pub async fn checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let signed = state.ledger.checkpoint()?;
    Ok(HttpResponse::Ok().content_type(NOTE_TYPE).body(signed.note))
}

/// The ledger's public identity.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"origin": "localhost/timecredits", "verifier_key": "localhost/timecredits+7a9f2c31+AQ2b1i0yPp4x8bTt6xE0mEwZ9gkQe0HcJm0o2Qk0rQ5w"}))]
pub struct LedgerKey {
    /// The checkpoint origin.
    pub origin: String,
    /// The C2SP verifier key: `name+keyid+base64(0x01 || ed25519 public key)`.
    pub verifier_key: String,
}

/// Get the verifier key
///
/// The key that verifies the ledger's checkpoints, as a C2SP verifier key string. Auditors pin
/// it (obtain it out of band too, to be sure it is the right one). No credential needed.
#[utoipa::path(get, path = "/v1/ledger/key", tag = "ledger",
    responses((status = 200, description = "The origin and verifier key", body = LedgerKey)))]
pub async fn key(state: web::Data<AppState>) -> web::Json<LedgerKey> {
    web::Json(LedgerKey {
        origin: state.ledger.origin().to_owned(),
        verifier_key: state.ledger.verifier_key(),
    })
}
