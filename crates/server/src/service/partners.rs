//! Creating a partner: its accounts are opened in the ledger, then it is recorded in the
//! registry; a crash in between is repaired by the client's retry, which finds the ledger's
//! entries under its idempotency key and records the partner then.

use timecredits_domain::{AccountKind, EntryBody, IdempotencyKey, Intent, ShortText};
use timecredits_ledger::Committed;
use uuid::Uuid;

use super::{begin, commit, Remembered};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::registry::{Partner, Role};
use crate::AppState;

/// Creates (or, for a repeat, finds) the partner `name` with `roles` (in any order, repeats
/// ignored), opening its budget and/or venue account. Returns it with the ledger's answer.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    name: ShortText,
    mut roles: Vec<Role>,
) -> Result<(Partner, Committed), ApiError> {
    roles.sort_by_key(|r| *r as u8);
    roles.dedup();
    if roles.is_empty() {
        return Err(ApiError::InvalidRequest(
            "a partner needs at least one role: earn, spend or both".into(),
        ));
    }
    // The guard is held until the partner is recorded, so a concurrent repeat cannot race it.
    let _guard = begin(state, caller.actor(), idempotency_key, Remembered::Ledger)?;
    // A repeat reuses the partner id of the first attempt, so its intents are the same.
    let previous = state
        .ledger
        .previous_request(caller.actor(), idempotency_key)?;
    let id = previous
        .as_ref()
        .and_then(|entries| entries.first())
        .and_then(|e| match e.body {
            EntryBody::Open { owner, .. } => owner,
            _ => None,
        })
        .unwrap_or_else(Uuid::now_v7);
    let intents = roles
        .iter()
        .map(|role| Intent::Open {
            account_kind: match role {
                Role::Earn => AccountKind::Budget,
                Role::Spend => AccountKind::Venue,
            },
            owner: Some(id),
        })
        .collect();
    let committed = commit(state, caller, idempotency_key, intents).await?;
    let account = |kind| {
        committed.entries.iter().find_map(|e| match e.body {
            EntryBody::Open {
                account,
                account_kind,
                ..
            } if account_kind == kind => Some(account.0),
            _ => None,
        })
    };
    let partner = match state.registry.partner(id) {
        Some(p) if p.name != name.as_str() || p.roles != roles => {
            return Err(ApiError::IdempotencyKeyReused(
                idempotency_key.as_str().to_owned(),
            ))
        }
        Some(p) => p,
        None => {
            let p = Partner {
                id,
                name: name.as_str().to_owned(),
                roles,
                budget_account: account(AccountKind::Budget),
                venue_account: account(AccountKind::Venue),
                created: committed.entries[0].recorded,
            };
            state.registry.add_partner(p.clone())?;
            p
        }
    };
    Ok((partner, committed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing;

    fn name(text: &str) -> ShortText {
        ShortText::new("name", text).unwrap()
    }

    #[actix_web::test]
    async fn a_repeat_finds_the_same_partner_and_another_request_under_its_key_is_refused() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key("partner-1");
        let roles = vec![Role::Spend, Role::Earn, Role::Spend];
        let (first, committed) = create(&state, &admin, &key, name("Club"), roles.clone())
            .await
            .unwrap();
        assert_eq!(first.roles, vec![Role::Earn, Role::Spend]);
        assert!(first.budget_account.is_some() && first.venue_account.is_some());
        assert!(!committed.replayed);
        let (again, committed) = create(&state, &admin, &key, name("Club"), roles)
            .await
            .unwrap();
        assert_eq!(again.id, first.id);
        assert!(committed.replayed);
        let other = create(
            &state,
            &admin,
            &key,
            name("Other"),
            vec![Role::Earn, Role::Spend],
        );
        assert!(matches!(
            other.await,
            Err(ApiError::IdempotencyKeyReused(_))
        ));
    }

    #[actix_web::test]
    async fn a_partner_needs_a_role() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key("partner-2");
        let refused = create(&state, &admin, &key, name("Club"), vec![]).await;
        assert!(matches!(refused, Err(ApiError::InvalidRequest(_))));
    }
}
