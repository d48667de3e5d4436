//! The verifiable log: the latest signed checkpoint, the key that signs it and consistency
//! proofs (public: a transparency log's checkpoints are meant to be checked by anyone), and the
//! auditor's export (streamed).

use actix_web::{web, HttpResponse};
use base64::Engine;
use serde::{Deserialize, Serialize};
use timecredits_domain::entry::format_time;
use timecredits_domain::EntryBody;
use timecredits_ledger::{Export, ExportRange};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::responses::AuthProblems;
use crate::auth::{Caller, Operation};
use crate::problem::{ApiError, Problem};
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
#[schema(example = json!({
    "origin": "localhost/timecredits",
    "verifier_key": "localhost/timecredits+7a9f2c31+AQ2b1i0yPp4x8bTt6xE0mEwZ9gkQe0HcJm0o2Qk0rQ5w",
    "rotations": [{"seq": 1042, "id": "0192f0c1-8a40-7d21-b7c3-5a1f0e9d3c78",
        "recorded": "2026-11-23T10:15:00.123456Z",
        "vkey": "localhost/timecredits+7a9f2c31+AQ2b1i0yPp4x8bTt6xE0mEwZ9gkQe0HcJm0o2Qk0rQ5w"}]
}))]
pub struct LedgerKey {
    /// The checkpoint origin.
    pub origin: String,
    /// The current C2SP verifier key: `name+keyid+base64(0x01 || ed25519 public key)`.
    pub verifier_key: String,
    /// The signing key rotations, oldest first: the `key` entries, each naming the key that took
    /// over and endorsed by the one before (fetch the entry for the endorsement and its receipt).
    pub rotations: Vec<KeyRotationView>,
}

/// A `key` entry: where checkpoint signing was handed over to a new key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRotationView {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's id.
    pub id: Uuid,
    /// When the rotation was recorded.
    pub recorded: String,
    /// The key that took over.
    pub vkey: String,
}

/// Get the verifier key
///
/// The key that verifies the ledger's checkpoints, as a C2SP verifier key string, and the key
/// rotations recorded in the log. Auditors pin the key (obtain it out of band too, to be sure it
/// is the right one); after a rotation, each new key is endorsed in the log by the one before,
/// which `timecredits-audit verify` checks. To verify an export that holds rotations, pin the key
/// you trusted before them or the `vkey` of the first one: `verifier_key` alone starts the chain
/// only when the export holds at most one rotation. No credential needed.
#[utoipa::path(get, path = "/v1/ledger/key", tag = "ledger",
    responses((status = 200, description = "The origin, the current verifier key and the rotations", body = LedgerKey)))]
pub async fn key(state: web::Data<AppState>) -> Result<web::Json<LedgerKey>, ApiError> {
    let rotations = state
        .ledger
        .key_rotations()?
        .iter()
        .filter_map(|entry| match &entry.body {
            EntryBody::Key(rotation) => Some(KeyRotationView {
                seq: entry.seq,
                id: entry.id,
                recorded: format_time(&entry.recorded),
                vkey: rotation.vkey().to_owned(),
            }),
            _ => None,
        })
        .collect();
    Ok(web::Json(LedgerKey {
        origin: state.ledger.origin().to_owned(),
        verifier_key: state.ledger.verifier_key(),
        rotations,
    }))
}

/// The two tree sizes of a consistency proof.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    /// The older size (at least 1).
    #[param(minimum = 1)]
    pub from: u64,
    /// The newer size (at most the current size).
    pub to: u64,
}

/// An RFC 6962 consistency proof.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"from": 7, "to": 43, "proof": ["q1GIqbF5sP0CUoUGV0Ulh7n4YMBL0Ifn0bqhU5UM6oE="]}))]
pub struct ConsistencyProof {
    /// The tree size of the older checkpoint.
    pub from: u64,
    /// The tree size of the newer checkpoint.
    pub to: u64,
    /// The proof's hashes, base64, in RFC 6962 order.
    pub proof: Vec<String>,
}

/// Get a consistency proof
///
/// Proves that the tree of size `from` is a prefix of the tree of size `to`: nothing the ledger
/// had at `from` was changed by `to`. Check it against two signed checkpoints with
/// `timecredits-audit consistency`. No credential needed.
#[utoipa::path(get, path = "/v1/ledger/consistency", tag = "ledger",
    params(ConsistencyParams),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "`invalid_query`, `invalid_size`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn consistency(
    state: web::Data<AppState>,
    params: web::Query<ConsistencyParams>,
) -> Result<web::Json<ConsistencyProof>, ApiError> {
    let ConsistencyParams { from, to } = params.into_inner();
    if from == 0 || from > to {
        return Err(ApiError::InvalidSize(format!(
            "a consistency proof needs 1 <= from <= to, got from={from} to={to}"
        )));
    }
    let proof = state.ledger.consistency_proof(from, to)?;
    Ok(web::Json(ConsistencyProof {
        from,
        to,
        proof: proof
            .iter()
            .map(|h| base64::engine::general_purpose::STANDARD.encode(h))
            .collect(),
    }))
}

/// Bounds of an export.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// The first entry to include (default 0: a full export, the only kind whose rules can be
    /// replayed).
    pub from: Option<u64>,
    /// Export up to this tree size, which must have a signed checkpoint (default: the latest).
    pub size: Option<u64>,
}

/// Export the ledger
///
/// The auditor's export, streamed: a JSON header line (format, origin, verifier key, bounds, the
/// signed checkpoint it is complete up to), then every entry's exact canonical bytes, one per
/// line. Verify it offline with `timecredits-audit verify --key VKEY FILE`; the format is in
/// AUDIT.md. Administrators and auditors.
#[utoipa::path(get, path = "/v1/ledger/export", tag = "ledger",
    params(ExportParams),
    responses(
        (status = 200, description = "The export (JSON lines)", body = String, content_type = "application/x-ndjson"),
        (status = 400, description = "`invalid_query`, `invalid_size`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator or auditor (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ),
    security(("bearer" = [])))]
pub async fn export(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<ExportParams>,
) -> Result<HttpResponse, ApiError> {
    caller.permit(Operation::Export)?;
    let range = ExportRange {
        from: params.from.unwrap_or(0),
        size: params.size,
    };
    export_response(state, range)
}

/// The export of `range`, streamed (the API's answer and the programme office's download).
pub(crate) fn export_response(
    state: web::Data<AppState>,
    range: ExportRange,
) -> Result<HttpResponse, ApiError> {
    // Bounds are checked before the first byte, so a bad request gets a problem, not a 200.
    let export = state.ledger.export(range)?;
    let chunks = futures_util::stream::try_unfold(Some((export, state)), next_chunk);
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(chunks))
}

/// Reads the next chunk of an export on the blocking pool (entries are read from disk). The 200
/// and the first lines are sent by the time a damaged record can be met, so an export that cannot
/// be finished ends with the line that says so (see [`timecredits_domain::export::INTERRUPTED`]),
/// never with a silent cut.
async fn next_chunk(
    exporting: Option<(Export, web::Data<AppState>)>,
) -> Result<Option<(web::Bytes, Option<(Export, web::Data<AppState>)>)>, actix_web::Error> {
    let Some((mut export, state)) = exporting else {
        return Ok(None);
    };
    let (export, state, chunk) = web::block(move || {
        let chunk = export.next_chunk(&state.ledger);
        (export, state, chunk)
    })
    .await?;
    match chunk {
        Ok(Some(bytes)) => Ok(Some((web::Bytes::from(bytes), Some((export, state))))),
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::error!(error = %e, "an export could not be finished");
            let line = timecredits_domain::export::interrupted_line(&e.to_string());
            Ok(Some((web::Bytes::from(line), None)))
        }
    }
}
