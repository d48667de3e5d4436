//! Reversing an entry: the mirror of an earlier movement, recorded by whoever may reverse it.

use timecredits_domain::{IdempotencyKey, Intent, ShortText};
use timecredits_ledger::Committed;
use uuid::Uuid;

use super::submit;
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::AppState;

/// Reverses the entry `entry_id` with an optional `reference` (the reason), if `caller` may
/// (see [`Caller::may_reverse`]). The entry is looked up first: an unknown one is not found,
/// whoever asks.
pub async fn reverse(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    entry_id: Uuid,
    reference: Option<&str>,
) -> Result<Committed, ApiError> {
    let not_found = || ApiError::EntryNotFound(format!("entry {entry_id} does not exist"));
    let entry = state.ledger.entry_by_id(entry_id)?.ok_or_else(not_found)?;
    caller.may_reverse(&entry, state.reversal_window, chrono::Utc::now())?;
    let intent = Intent::Reverse {
        entry: entry.seq,
        reference: reference
            .map(|r| ShortText::from_input("reference", r))
            .transpose()?,
    };
    submit(state, caller, idempotency_key, vec![intent]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Code;
    use crate::registry::{Role, Scope};
    use crate::service::{partners, testing};

    #[actix_web::test]
    async fn an_entry_is_found_then_the_caller_checked_then_the_ledger_asked() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let unknown = reverse(&state, &admin, &key("r1"), Uuid::now_v7(), None).await;
        assert!(matches!(unknown, Err(ApiError::EntryNotFound(_))));
        let name = ShortText::new("name", "Club").unwrap();
        let (partner, committed) =
            partners::create(&state, &admin, &key("p"), name, vec![Role::Earn])
                .await
                .unwrap();
        let opening = committed.entries[0].id;
        let caller = testing::partner(&partner, vec![Scope::Earn]);
        let theirs = reverse(&state, &caller, &key("r2"), opening, None).await;
        assert!(matches!(theirs, Err(ApiError::Forbidden(_))));
        let refused = reverse(&state, &admin, &key("r3"), opening, Some("by mistake"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::NotReversible);
        let bad = reverse(&state, &admin, &key("r4"), opening, Some("a\nb")).await;
        assert!(matches!(bad, Err(ApiError::Validation(_))));
    }
}
