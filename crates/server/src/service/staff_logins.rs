//! Staff logins for the pages: an administrator makes one for a person, with the principal and
//! scopes an API key for the same holder would have (see [`crate::registry::staff`]). Revoking
//! the login's key (`POST /v1/api-keys/{id}/revoke`) revokes the login, at once.

use timecredits_domain::{IdempotencyKey, ShortText};

use super::api_keys::{new_key, recorded_key, KeyHolder};
use super::begin_registry_write;
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::registry::staff::Username;
use crate::registry::{ApiKey, Previous};
use crate::AppState;

/// A staff login created, or found again for a repeat.
#[derive(Debug)]
pub struct Created {
    /// The username.
    pub username: Username,
    /// The key the login acts with (its id revokes the login).
    pub api_key: ApiKey,
    /// The password, shown to the administrator to hand over.
    pub password: String,
    /// Whether this answers a repeat of the request that created it.
    pub replayed: bool,
}

/// Creates the staff login `username` for `holder`, labelled `label`; `fingerprint` identifies
/// the request, so that a repeat under `idempotency_key` is told from another request.
pub fn create(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    username: Username,
    label: ShortText,
    holder: &KeyHolder,
) -> Result<Created, ApiError> {
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    if let Previous::Same(id) = write.previous {
        let api_key = recorded_key(state, id)?;
        return Ok(Created {
            username,
            password: state.registry.staff_password(id),
            api_key,
            replayed: true,
        });
    }
    let api_key = new_key(state, holder, &label)?;
    let password = state
        .registry
        .add_staff_login(api_key.clone(), &username, write.request)?
        .ok_or_else(|| {
            ApiError::UsernameTaken(format!(
                "the username {} is taken: choose another",
                username.as_str()
            ))
        })?;
    Ok(Created {
        username,
        api_key,
        password,
        replayed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Role, Scope};
    use crate::service::{partners, testing};

    #[actix_web::test]
    async fn a_login_signs_in_with_its_password_until_its_key_is_revoked() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let name = ShortText::new("name", "Lunch club").unwrap();
        let (club, _) = partners::create(
            &state,
            &admin,
            &testing::idempotency_key("p"),
            name,
            vec![Role::Earn],
        )
        .await
        .unwrap();
        let holder = KeyHolder::Partner {
            id: club.id,
            scopes: None,
        };
        let label = || ShortText::new("label", "Ana").unwrap();
        let ana = || Username::from_input("ana").unwrap();
        let key = testing::idempotency_key("login-1");
        let made = create(&state, &admin, &key, "f".into(), ana(), label(), &holder).unwrap();
        assert_eq!(made.api_key.scopes, vec![Scope::Earn]);
        let again = create(&state, &admin, &key, "f".into(), ana(), label(), &holder).unwrap();
        assert_eq!(
            (again.api_key.id, again.password.as_str(), again.replayed),
            (made.api_key.id, made.password.as_str(), true)
        );
        let other = testing::idempotency_key("login-2");
        let taken = create(&state, &admin, &other, "g".into(), ana(), label(), &holder);
        assert!(matches!(taken, Err(ApiError::UsernameTaken(_))));

        let registry = &state.registry;
        let signed_in = registry
            .check_staff_password("ana", &made.password)
            .unwrap();
        assert_eq!(signed_in.id, made.api_key.id);
        assert!(registry.check_staff_password("ana", "wrong").is_none());
        assert!(registry
            .check_staff_password("bob", &made.password)
            .is_none());
        // The key has no bearer token of its own.
        let token = registry.api_key_secret(made.api_key.id);
        assert!(registry.api_key_by_token(&token).is_none());

        let revoking = testing::idempotency_key("revoke");
        let id = made.api_key.id;
        crate::service::api_keys::revoke(&state, &admin, &revoking, "r".into(), id).unwrap();
        assert!(registry
            .check_staff_password("ana", &made.password)
            .is_none());
    }
}
