//! Issuing a spend code: a member's consent to one spend, remembered in the spend-code table
//! under the request's idempotency key.

use timecredits_domain::{AccountId, IdempotencyKey};

use super::{begin, Remembered};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::spend_codes::Issued;
use crate::AppState;

/// Issues a spend code for `member` (the caller's wallet), capped at `cap` minutes if given;
/// `fingerprint` identifies the request. Returns the code and whether this answers a repeat.
pub fn issue(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    member: AccountId,
    fingerprint: String,
    cap: Option<u64>,
) -> Result<(Issued, bool), ApiError> {
    let _guard = begin(
        state,
        caller.actor(),
        idempotency_key,
        Remembered::SpendCodes,
    )?;
    let now = chrono::Utc::now();
    let changed = super::members::credential_changed(state, member.0);
    state.spend_codes.issue(
        member.0,
        idempotency_key.as_str(),
        &fingerprint,
        cap,
        now,
        changed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{members, testing};

    #[actix_web::test]
    async fn a_repeat_gets_the_same_code_and_another_request_under_its_key_is_refused() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let registered = members::register(&state, &admin, &key("m"), None)
            .await
            .unwrap()
            .0;
        let member = AccountId(registered.member_id);
        let (first, replayed) = issue(&state, &admin, &key("c"), member, "a".into(), None).unwrap();
        assert!(!replayed);
        let (again, replayed) = issue(&state, &admin, &key("c"), member, "a".into(), None).unwrap();
        assert_eq!((again.code, replayed), (first.code, true));
        let other = issue(&state, &admin, &key("c"), member, "b".into(), Some(5));
        assert!(matches!(other, Err(ApiError::IdempotencyKeyReused(_))));
    }
}
