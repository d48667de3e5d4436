//! Creating an API key: for an administrator, a new auditor, or a partner with some or all of
//! its roles' scopes. Remembered in the registry under the request's idempotency key, so a
//! repeat answers with the same key (and secret, while the server secret is the same).

use chrono::Utc;
use serde::{Deserialize, Serialize};
use timecredits_domain::{IdempotencyKey, ShortText};
use utoipa::ToSchema;
use uuid::Uuid;

use super::begin_registry_write;
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::registry::{ApiKey, Previous, Principal, Role, Scope};
use crate::AppState;

/// Whom a new API key is for.
// Every variant has braces: serde refuses unknown fields in struct variants only (a unit variant
// of an internally tagged enum ignores them).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyHolder {
    /// Another administrator key.
    Administrator {},
    /// A new auditor (read-only access and exports).
    Auditor {},
    /// A partner; `scopes` may narrow its roles (e.g. a till that only redeems).
    Partner {
        /// The partner's id.
        id: Uuid,
        /// The roles the key may use; all of the partner's roles when absent.
        #[serde(default)]
        #[schema(min_items = 1)]
        scopes: Option<Vec<Scope>>,
    },
}

/// An API key created, or found again for a repeat.
#[derive(Debug)]
pub struct Created {
    /// The key's public record.
    pub api_key: ApiKey,
    /// Its bearer token: absent on a repeat after a rotation of the server secret.
    pub secret: Option<String>,
    /// Whether this answers a repeat of the request that created it.
    pub replayed: bool,
}

/// Creates the API key `label` for `holder`; `fingerprint` identifies the request, so that a
/// repeat under `idempotency_key` is told from another request.
pub fn create(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    label: ShortText,
    holder: &KeyHolder,
) -> Result<Created, ApiError> {
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    if let Previous::Same(id) = write.previous {
        let api_key = recorded_key(state, id)?;
        let secret = state.registry.replay_api_key_secret(id);
        return Ok(Created {
            api_key,
            secret,
            replayed: true,
        });
    }
    let api_key = new_key(state, holder, &label)?;
    let secret = state.registry.add_api_key(api_key.clone(), write.request)?;
    Ok(Created {
        api_key,
        secret: Some(secret),
        replayed: false,
    })
}

/// The key a repeated request made, which the registry must hold.
pub(super) fn recorded_key(state: &AppState, id: Uuid) -> Result<ApiKey, ApiError> {
    state
        .registry
        .api_key(id)
        .ok_or_else(|| ApiError::Internal(format!("API key {id} is missing")))
}

/// A new key's record for `holder`, labelled `label` (not yet recorded).
pub(super) fn new_key(
    state: &AppState,
    holder: &KeyHolder,
    label: &ShortText,
) -> Result<ApiKey, ApiError> {
    let (principal, scopes) = principal_and_scopes(state, holder)?;
    Ok(ApiKey {
        id: Uuid::now_v7(),
        label: label.as_str().to_owned(),
        principal,
        scopes,
        created: Utc::now(),
        revoked: None,
    })
}

/// The principal and scopes of a new key for `holder`: a partner's key takes its roles' scopes,
/// all of them or those asked for.
fn principal_and_scopes(
    state: &AppState,
    holder: &KeyHolder,
) -> Result<(Principal, Vec<Scope>), ApiError> {
    Ok(match holder {
        KeyHolder::Administrator {} => (Principal::Administrator, vec![Scope::Admin]),
        KeyHolder::Auditor {} => (
            Principal::Auditor { id: Uuid::now_v7() },
            vec![Scope::Audit],
        ),
        KeyHolder::Partner { id, scopes } => {
            let partner = state
                .registry
                .partner(*id)
                .ok_or_else(|| ApiError::PartnerNotFound(format!("partner {id} does not exist")))?;
            let allowed: Vec<Scope> = partner
                .roles
                .iter()
                .map(|r| match r {
                    Role::Earn => Scope::Earn,
                    Role::Spend => Scope::Spend,
                })
                .collect();
            let scopes = match scopes {
                None => allowed,
                Some(asked) => {
                    if let Some(s) = asked.iter().find(|s| !allowed.contains(s)) {
                        return Err(ApiError::WrongPartnerRole(format!(
                            "scope {s:?} is not one of the partner's roles"
                        )));
                    }
                    if asked.is_empty() {
                        return Err(ApiError::InvalidRequest("a key needs a scope".into()));
                    }
                    asked.clone()
                }
            };
            (Principal::Partner { id: *id }, scopes)
        }
    })
}

/// Revokes the API key `id` (a revoked key stays revoked); `fingerprint` identifies the
/// request. Returns the key's record and whether this answers a repeat.
pub fn revoke(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
) -> Result<(ApiKey, bool), ApiError> {
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    let not_found = || ApiError::ApiKeyNotFound(format!("API key {id} does not exist"));
    let existing = state.registry.api_key(id).ok_or_else(not_found)?;
    if caller.api_key_id() == Some(id) {
        return Err(ApiError::ApiKeyInUse(
            "an administrator cannot revoke the key it is calling with".into(),
        ));
    }
    if existing.revoked.is_none() {
        state.registry.revoke_api_key(id, write.request)?;
    }
    let revoked = state.registry.api_key(id).ok_or_else(not_found)?;
    Ok((revoked, matches!(write.previous, Previous::Same(_))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{partners, testing};

    #[actix_web::test]
    async fn a_partner_key_takes_only_its_roles_scopes_and_a_repeat_gets_the_same_key() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let name = ShortText::new("name", "Pool").unwrap();
        let partner_key = testing::idempotency_key("partner");
        let (venue, _) = partners::create(&state, &admin, &partner_key, name, vec![Role::Spend])
            .await
            .unwrap();
        let label = || ShortText::new("label", "till").unwrap();
        let key = testing::idempotency_key("api-key-1");
        let earn = KeyHolder::Partner {
            id: venue.id,
            scopes: Some(vec![Scope::Earn]),
        };
        let refused = create(&state, &admin, &key, "a".into(), label(), &earn);
        assert!(matches!(refused, Err(ApiError::WrongPartnerRole(_))));
        let all = KeyHolder::Partner {
            id: venue.id,
            scopes: None,
        };
        let first = create(&state, &admin, &key, "b".into(), label(), &all).unwrap();
        assert_eq!(first.api_key.scopes, vec![Scope::Spend]);
        assert!(!first.replayed && first.secret.is_some());
        let again = create(&state, &admin, &key, "b".into(), label(), &all).unwrap();
        assert_eq!(
            (again.api_key.id, again.replayed, again.secret),
            (first.api_key.id, true, first.secret)
        );
        let other = create(&state, &admin, &key, "c".into(), label(), &all);
        assert!(matches!(other, Err(ApiError::IdempotencyKeyReused(_))));
        let revoking = testing::idempotency_key("revoke-1");
        let id = first.api_key.id;
        let (revoked, replayed) = revoke(&state, &admin, &revoking, "r".into(), id).unwrap();
        assert!(revoked.revoked.is_some() && !replayed);
        let (_, replayed) = revoke(&state, &admin, &revoking, "r".into(), id).unwrap();
        assert!(replayed);
    }
}
