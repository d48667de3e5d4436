//! Staff logins: how a person signs in to the pages (`/app/`).
//!
//! A staff login is a username and a password bound to an API key of its own, made with it and
//! recorded in one event, so the login acts with exactly that key's principal and scopes and is
//! revoked by revoking the key. The key has no bearer token (nothing authenticates with it but
//! the login). The password is derived as the API keys' secrets are (`HMAC(server secret,
//! "staff-password" || key id)`, so a repeated creation shows it again), and only its Argon2id
//! hash (RFC 9106, the `argon2` crate's defaults: 19 MiB, 2 passes) is recorded: a stolen
//! registry file costs an attacker a memory-hard hash per guess, even with the server secret.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiKey, Event, Registry, RegistryError, RequestRef};

/// A username: 3 to 64 characters, lower-case ASCII letters, digits and `.`, `_`, `-`, `@`
/// (an e-mail address fits), so that two people never differ only by case or by a look-alike
/// character.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, min_length = 3, max_length = 64, pattern = "^[a-z0-9._@-]{3,64}$")]
pub struct Username(String);

/// Why a username was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a username is 3 to 64 characters: lower-case letters a-z, digits and . _ - @")]
pub struct BadUsername;

impl Username {
    /// The shortest username.
    pub const MIN_LEN: usize = 3;
    /// The longest username.
    pub const MAX_LEN: usize = 64;

    /// Takes `text` as typed: surrounding spaces are dropped and letters lower-cased, so that
    /// "Ana@Club.org " signs in as `ana@club.org`.
    pub fn from_input(text: &str) -> Result<Username, BadUsername> {
        Username::try_from(text.trim().to_ascii_lowercase())
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = BadUsername;

    fn try_from(text: String) -> Result<Username, BadUsername> {
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b);
        if (Username::MIN_LEN..=Username::MAX_LEN).contains(&text.len())
            && text.bytes().all(allowed)
        {
            Ok(Username(text))
        } else {
            Err(BadUsername)
        }
    }
}

impl From<Username> for String {
    fn from(username: Username) -> String {
        username.0
    }
}

/// A staff login as the registry keeps it.
#[derive(Clone, Debug)]
pub struct StaffLogin {
    /// The username.
    pub username: String,
    /// The API key the login acts with.
    pub key: Uuid,
    /// The Argon2id hash of the password, in the PHC string format.
    pub password_hash: String,
}

/// Hashes `password` with Argon2id and a new random salt.
pub fn hash_password(password: &str) -> String {
    let mut random = [0u8; 16];
    getrandom::getrandom(&mut random).expect("the operating system gives random bytes");
    let salt = SaltString::encode_b64(&random).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with its default parameters hashes any password")
        .to_string()
}

/// A valid hash of no password anyone knows: checked against when the username is unknown, so
/// that an unknown username costs the same time as a wrong password and the answer's timing does
/// not tell which.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut random = [0u8; 32];
        getrandom::getrandom(&mut random).expect("the operating system gives random bytes");
        hash_password(&hex::encode(random))
    })
}

impl Registry {
    /// The password of the staff login acting with key `key`, as shown when it was made.
    pub fn staff_password(&self, key: Uuid) -> String {
        // 24 characters of base64url: 144 bits, to paste into a password manager.
        self.derive("staff-password", key)[..24].to_owned()
    }

    /// Records a staff login and its key; `Ok(false)` (nothing recorded) if the username is
    /// taken. Returns the password to show.
    pub fn add_staff_login(
        &self,
        key: ApiKey,
        username: &Username,
        request: RequestRef,
    ) -> Result<Option<String>, RegistryError> {
        let password = self.staff_password(key.id);
        let event = Event::StaffLoginCreated {
            key,
            username: username.as_str().to_owned(),
            password_hash: hash_password(&password),
            request,
        };
        let added = self.append_checked(vec![event], |state| {
            !state.staff_logins.contains_key(username.as_str())
        })?;
        Ok(added.then_some(password))
    }

    /// The staff login named `username`, if there is one.
    pub fn staff_login(&self, username: &str) -> Option<StaffLogin> {
        self.read().staff_logins.get(username).cloned()
    }

    /// The staff login acting with key `key`, if it is one.
    pub fn staff_login_of_key(&self, key: Uuid) -> Option<StaffLogin> {
        self.read()
            .staff_logins
            .values()
            .find(|login| login.key == key)
            .cloned()
    }

    /// Every staff login, by username.
    pub fn staff_logins(&self) -> Vec<StaffLogin> {
        let mut all: Vec<StaffLogin> = self.read().staff_logins.values().cloned().collect();
        all.sort_by(|a, b| a.username.cmp(&b.username));
        all
    }

    /// The key of the staff login `username` if `password` is its password and the key is not
    /// revoked. Takes one Argon2 hash's time (tens of milliseconds) whatever the outcome: run it
    /// off the async workers.
    pub fn check_staff_password(&self, username: &str, password: &str) -> Option<ApiKey> {
        let login = self.staff_login(username);
        let hash = login
            .as_ref()
            .map_or(decoy_hash(), |l| l.password_hash.as_str());
        let matches = PasswordHash::new(hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        let key = self.api_key(login?.key)?;
        (matches && key.revoked.is_none()).then_some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_case_and_bounded() {
        assert_eq!(
            Username::from_input(" Ana@Club.org ").unwrap().as_str(),
            "ana@club.org"
        );
        for bad in ["ab", "a b", "ana\u{0430}", "", &"a".repeat(65), "ana/1"] {
            assert_eq!(Username::from_input(bad), Err(BadUsername), "{bad:?}");
        }
        assert!(Username::from_input(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse");
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"correct horsf", &parsed)
            .is_err());
    }
}
