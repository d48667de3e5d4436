//! Creating a partner: its accounts are opened in the ledger, then it is recorded in the
//! registry; a crash in between is repaired by the client's retry, which finds the ledger's
//! entries under its idempotency key and records the partner then. Suspending and reinstating
//! a partner: registry records, read back at every start.

use timecredits_domain::{AccountKind, EntryBody, IdempotencyKey, Intent, ShortText};
use timecredits_ledger::Committed;
use uuid::Uuid;

use super::{begin, begin_registry_write, commit, Remembered};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::registry::{Partner, Previous, Role};
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
                suspended: None,
            };
            state.registry.add_partner(p.clone())?;
            p
        }
    };
    Ok((partner, committed))
}

/// Suspends partner `id` (`suspend`) or reinstates it; suspending a suspended partner, or
/// reinstating one that is not, changes nothing. `fingerprint` identifies the request. Returns
/// the partner's record and whether this answers a repeat.
pub fn set_suspended(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
    suspend: bool,
) -> Result<(Partner, bool), ApiError> {
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    let not_found = || ApiError::PartnerNotFound(format!("partner {id} does not exist"));
    let partner = state.registry.partner(id).ok_or_else(not_found)?;
    match (suspend, partner.suspended.is_some()) {
        (true, false) => state.registry.suspend_partner(id, write.request)?,
        (false, true) => state.registry.reinstate_partner(id, write.request)?,
        _ => {}
    }
    let partner = state.registry.partner(id).ok_or_else(not_found)?;
    Ok((partner, matches!(write.previous, Previous::Same(_))))
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
    async fn a_suspension_is_kept_until_a_reinstatement_and_repeats_change_nothing() {
        let (dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let (partner, _) = create(&state, &admin, &key("p"), name("Club"), vec![Role::Earn])
            .await
            .unwrap();
        let suspend = |k: &str| set_suspended(&state, &admin, &key(k), k.into(), partner.id, true);
        let (suspended, replayed) = suspend("s1").unwrap();
        assert!(suspended.suspended.is_some() && !replayed);
        let (again, replayed) = suspend("s1").unwrap();
        assert_eq!((again.suspended, replayed), (suspended.suspended, true));
        let (twice, _) = suspend("s2").unwrap();
        assert_eq!(twice.suspended, suspended.suspended);
        let nobody = set_suspended(&state, &admin, &key("n"), "n".into(), Uuid::now_v7(), true);
        assert!(matches!(nobody, Err(ApiError::PartnerNotFound(_))));
        // The suspension is in the registry's file: a restart reads it back.
        drop(state);
        let settings = crate::Settings::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        let state = AppState::open(&settings).unwrap();
        assert!(state
            .registry
            .partner(partner.id)
            .unwrap()
            .suspended
            .is_some());
        let (reinstated, _) =
            set_suspended(&state, &admin, &key("r"), "r".into(), partner.id, false).unwrap();
        assert!(reinstated.suspended.is_none());
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
