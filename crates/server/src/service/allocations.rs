//! Allocating budget: the programme gives an earn partner credits to issue for time given, an
//! `allocate` entry from the programme account to the partner's budget.

use timecredits_domain::{
    AccountId, Details, IdempotencyKey, Intent, Minutes, MovementKind, Transfer,
};
use timecredits_ledger::Committed;
use uuid::Uuid;

use super::submit;
use crate::auth::{Caller, Operation};
use crate::problem::ApiError;
use crate::AppState;

/// Allocates `minutes` to earn partner `partner_id`'s budget, with `details` (a reference).
/// Administrators only.
pub async fn allocate(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    partner_id: Uuid,
    minutes: Minutes,
    details: Details,
) -> Result<Committed, ApiError> {
    caller.permit(Operation::Allocate)?;
    let partner = state
        .registry
        .partner(partner_id)
        .ok_or_else(|| ApiError::PartnerNotFound(format!("partner {partner_id} does not exist")))?;
    let budget = partner.budget_account.ok_or_else(|| {
        ApiError::WrongPartnerRole(format!("partner {} is not an earn partner", partner.id))
    })?;
    let intent = Intent::Transfer(Transfer {
        kind: MovementKind::Allocate,
        debit: state.ledger.programme_account(),
        credit: AccountId(budget),
        minutes,
        effective: None,
        details,
    });
    submit(state, caller, idempotency_key, vec![intent]).await
}
