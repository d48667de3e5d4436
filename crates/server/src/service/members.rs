//! Registering a member: a wallet opened in the ledger, then the member recorded in the
//! registry with a credential derived from the server secret.

use timecredits_domain::{AccountKind, EntryBody, IdempotencyKey, Intent};
use timecredits_ledger::Committed;
use uuid::Uuid;

use super::{begin, commit, Remembered};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::registry::Member;
use crate::AppState;

/// A member registered, or found again for a repeat.
#[derive(Debug)]
pub struct Registered {
    /// The member's id, which is also their wallet account's id.
    pub member_id: Uuid,
    /// Their credential; on a repeat, only while the replay window and the credential last.
    pub credential: Option<String>,
    /// The ledger's answer: the `open` entry of the wallet and its checkpoint.
    pub committed: Committed,
}

/// Registers a member on behalf of `caller` (an administrator or an earn partner).
pub async fn register(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
) -> Result<Registered, ApiError> {
    let actor = caller.actor();
    let intent = Intent::Open {
        account_kind: AccountKind::Member,
        owner: None,
    };
    // The guard is held until the member is recorded, so a concurrent repeat cannot race it.
    let _guard = begin(state, actor, idempotency_key, Remembered::Ledger)?;
    let committed = commit(state, caller, idempotency_key, vec![intent]).await?;
    let entry = &committed.entries[0];
    let EntryBody::Open { account, .. } = entry.body else {
        return Err(ApiError::IdempotencyKeyReused(
            idempotency_key.as_str().into(),
        ));
    };
    let credential = match state.registry.member(account.0) {
        Some(_) => {
            state
                .registry
                .replay_credential(account.0, None, state.credential_replay_window)
        }
        None => Some(state.registry.add_member(Member {
            account: account.0,
            registered_by: actor,
            registered: entry.recorded,
        })?),
    };
    Ok(Registered {
        member_id: account.0,
        credential,
        committed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing;

    #[actix_web::test]
    async fn a_repeat_finds_the_same_member_with_the_same_credential() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key("member-1");
        let first = register(&state, &admin, &key).await.unwrap();
        assert!(first.credential.is_some() && !first.committed.replayed);
        let again = register(&state, &admin, &key).await.unwrap();
        assert_eq!(
            (again.member_id, again.credential, again.committed.replayed),
            (first.member_id, first.credential, true)
        );
        let other = register(&state, &admin, &testing::idempotency_key("member-2"))
            .await
            .unwrap();
        assert_ne!(other.member_id, first.member_id);
    }
}
