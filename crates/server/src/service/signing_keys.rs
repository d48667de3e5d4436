//! Rotating the ledger's signing key on an administrator's request.

use timecredits_domain::IdempotencyKey;
use timecredits_ledger::Committed;

use super::{begin, Remembered};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::AppState;

/// Hands checkpoint signing over to a new key: returns its verifier key and the ledger's answer
/// (the `key` entry). Blocking, since it writes a key file and waits for its entry: run it off
/// the async workers.
pub fn rotate(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
) -> Result<(String, Committed), ApiError> {
    let actor = caller.actor();
    let _guard = begin(state, actor, idempotency_key, Remembered::Ledger)?;
    Ok(state.ledger.rotate_key(actor, idempotency_key.clone())?)
}
