//! Who may call the API: partners, API keys and member credentials.
//!
//! This is the service's own small database, kept apart from the ledger because it holds what
//! the ledger must not: partner names, credential hashes, revocations. It is an append-only file
//! of JSON events in the ledger's checksummed journal format (`registry` in the data directory),
//! `fdatasync`ed before a change is acknowledged and read whole into memory at start.
//!
//! # Secrets
//! No secret is stored. API keys and member credentials are derived as
//! `HMAC-SHA256(server secret, purpose || id)` and only their SHA-256 is recorded, so a repeated
//! request (same `Idempotency-Key`) can answer with the very secret it answered with the first
//! time, while the registry file alone reveals nothing. The server secret is a random 32-byte
//! file (`server-secret`, mode 0600) next to the ledger's signing key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use timecredits_domain::AccountId;
use timecredits_ledger::journal::{Journal, JournalError};
use timecredits_ledger::keys::write_private_file;
use utoipa::ToSchema;
use uuid::Uuid;

/// Files of the registry in the data directory.
pub mod layout {
    /// The append-only event file.
    pub const REGISTRY: &str = "registry";
    /// The random key credentials are derived with.
    pub const SERVER_SECRET: &str = "server-secret";
    /// The first administrator API key, written once at creation.
    pub const ADMIN_API_KEY: &str = "admin-api-key";
}

/// A registry failure: always the server's, never the client's.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("registry record {index} is unreadable: {reason}")]
    Corrupt { index: usize, reason: String },
}

/// What a partner does in the scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Issues credits to members for time given, from its budget account.
    Earn,
    /// Redeems credits members spend, into its venue account.
    Spend,
}

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Programme administration: everything.
    Admin,
    /// Read-only access to everything, and exports.
    Audit,
    /// Register members and issue credits from the partner's budget.
    Earn,
    /// Redeem spend codes into the partner's venue account.
    Spend,
}

/// Whom an API key speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// The programme administration.
    Administrator,
    /// An auditor, named by an id of its own.
    Auditor { id: Uuid },
    /// A partner organisation.
    Partner { id: Uuid },
}

/// A partner organisation: an earn partner, a venue, or both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Partner {
    /// The partner's id: the owner of its accounts and the actor of its entries.
    pub id: Uuid,
    /// Display name (organisation name, not personal data).
    pub name: String,
    pub roles: Vec<Role>,
    /// The budget account it issues from (earn partners).
    pub budget_account: Option<Uuid>,
    /// The account its redemptions go to (spend partners).
    pub venue_account: Option<Uuid>,
    pub created: DateTime<Utc>,
}

/// An API key's public record (the secret is never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    /// A label to tell keys apart (e.g. "till 2", "2026 rotation").
    pub label: String,
    pub principal: Principal,
    pub scopes: Vec<Scope>,
    pub created: DateTime<Utc>,
    /// When it was revoked; a revoked key is refused.
    pub revoked: Option<DateTime<Utc>>,
}

/// A registered member. The ledger knows only the account; nothing personal is kept anywhere
/// in this service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's wallet account, which is also the member's id.
    pub account: Uuid,
    /// The administrator or partner that registered the member.
    pub registered_by: Uuid,
    pub registered: DateTime<Utc>,
}

/// The idempotency record of a registry-only write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRef {
    pub actor: Uuid,
    pub key: String,
    /// SHA-256 of the request (method, path, body), hex.
    pub fingerprint: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Administrator {
        id: Uuid,
    },
    PartnerCreated {
        partner: Partner,
    },
    ApiKeyCreated {
        key: ApiKey,
        hash: String,
        request: Option<RequestRef>,
    },
    ApiKeyRevoked {
        id: Uuid,
        at: DateTime<Utc>,
        request: RequestRef,
    },
    MemberRegistered {
        member: Member,
        hash: String,
    },
}

#[derive(Default)]
struct State {
    administrator: Option<Uuid>,
    partners: HashMap<Uuid, Partner>,
    /// Partners by account (budget or venue).
    account_owner: HashMap<Uuid, Uuid>,
    keys: HashMap<Uuid, ApiKey>,
    key_by_hash: HashMap<String, Uuid>,
    members: HashMap<Uuid, Member>,
    member_by_hash: HashMap<String, Uuid>,
    requests: HashMap<(Uuid, String), (String, Uuid)>,
}

impl State {
    fn apply(&mut self, event: Event) {
        match event {
            Event::Administrator { id } => self.administrator = Some(id),
            Event::PartnerCreated { partner } => {
                for account in [partner.budget_account, partner.venue_account]
                    .into_iter()
                    .flatten()
                {
                    self.account_owner.insert(account, partner.id);
                }
                self.partners.insert(partner.id, partner);
            }
            Event::ApiKeyCreated { key, hash, request } => {
                if let Some(r) = request {
                    self.requests
                        .insert((r.actor, r.key), (r.fingerprint, key.id));
                }
                self.key_by_hash.insert(hash, key.id);
                self.keys.insert(key.id, key);
            }
            Event::ApiKeyRevoked { id, at, request } => {
                self.requests
                    .insert((request.actor, request.key), (request.fingerprint, id));
                if let Some(key) = self.keys.get_mut(&id) {
                    key.revoked.get_or_insert(at);
                }
            }
            Event::MemberRegistered { member, hash } => {
                self.member_by_hash.insert(hash, member.account);
                self.members.insert(member.account, member);
            }
        }
    }
}

/// The outcome of looking up an earlier registry-only request.
pub enum Previous {
    /// No request with this (actor, key) was made.
    None,
    /// The same request was made and produced this object.
    Same(Uuid),
    /// A different request was made with this key.
    Different,
}

/// The registry: in memory, persisted as an append-only event file.
pub struct Registry {
    journal: Mutex<Journal>,
    state: RwLock<State>,
    secret: [u8; 32],
}

type HmacSha256 = Hmac<Sha256>;

/// The SHA-256 of a credential, hex: what the registry keeps.
pub fn credential_hash(credential: &str) -> String {
    hex::encode(Sha256::digest(credential.as_bytes()))
}

impl Registry {
    /// Opens the registry in `dir`, creating the server secret, the administrator and its first
    /// API key (written to [`layout::ADMIN_API_KEY`]) on first use.
    pub fn open(dir: &Path) -> Result<Registry, RegistryError> {
        let secret = load_or_create_secret(&dir.join(layout::SERVER_SECRET))?;
        let (journal, records) = Journal::open(&dir.join(layout::REGISTRY), 0)?;
        let mut state = State::default();
        for (index, (_, payload)) in records.into_iter().enumerate() {
            let event: Event =
                serde_json::from_slice(&payload).map_err(|e| RegistryError::Corrupt {
                    index,
                    reason: e.to_string(),
                })?;
            state.apply(event);
        }
        let registry = Registry {
            journal: Mutex::new(journal),
            state: RwLock::new(state),
            secret,
        };
        if registry.read().administrator.is_none() {
            registry.bootstrap(dir)?;
        }
        Ok(registry)
    }

    /// Creates the administrator and its first key, and writes the key where the operator finds
    /// it. The key file is written before the event, so a crash in between leaves a key file for
    /// a key that the next start simply creates again (the same secret: it is derived).
    fn bootstrap(&self, dir: &Path) -> Result<(), RegistryError> {
        let admin = Uuid::now_v7();
        let key = ApiKey {
            id: Uuid::now_v7(),
            label: "first administrator key".into(),
            principal: Principal::Administrator,
            scopes: vec![Scope::Admin],
            created: Utc::now(),
            revoked: None,
        };
        let token = self.api_key_secret(key.id);
        let path = dir.join(layout::ADMIN_API_KEY);
        write_private_file(&path, format!("{token}\n").as_bytes())?;
        self.append(vec![
            Event::Administrator { id: admin },
            Event::ApiKeyCreated {
                hash: credential_hash(&token),
                key,
                request: None,
            },
        ])?;
        tracing::info!(
            path = %path.display(),
            "created the administrator; its API key is in this file (mode 0600)"
        );
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends events durably, then applies them.
    fn append(&self, events: Vec<Event>) -> Result<(), RegistryError> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("registry events always serialize"))
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        journal.append(&refs)?;
        journal.sync()?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for event in events {
            state.apply(event);
        }
        Ok(())
    }

    fn derive(&self, purpose: &str, id: Uuid) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key size");
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A 32-byte key derived from the server secret for `purpose` (e.g. keying the hashes of
    /// spend codes), so that no other store needs a secret file of its own.
    pub fn subkey(&self, purpose: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key size");
        mac.update(b"subkey\n");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The secret of API key `id`, as shown to its holder.
    pub fn api_key_secret(&self, id: Uuid) -> String {
        format!("tck_{}", self.derive("api-key", id))
    }

    /// The credential of member `account`, as shown to the member.
    pub fn member_credential(&self, account: Uuid) -> String {
        format!("tcm_{}", self.derive("member", account))
    }

    /// The administrator's actor id.
    pub fn administrator(&self) -> Uuid {
        self.read()
            .administrator
            .expect("the registry is bootstrapped at open")
    }

    /// The API key a bearer token belongs to, if it is known (revoked keys included).
    pub fn api_key_by_token(&self, token: &str) -> Option<ApiKey> {
        let state = self.read();
        let id = state.key_by_hash.get(&credential_hash(token))?;
        state.keys.get(id).cloned()
    }

    /// The member a credential belongs to.
    pub fn member_by_credential(&self, credential: &str) -> Option<Member> {
        let state = self.read();
        let id = state.member_by_hash.get(&credential_hash(credential))?;
        state.members.get(id).cloned()
    }

    pub fn partner(&self, id: Uuid) -> Option<Partner> {
        self.read().partners.get(&id).cloned()
    }

    /// All partners, oldest first.
    pub fn partners(&self) -> Vec<Partner> {
        let mut all: Vec<Partner> = self.read().partners.values().cloned().collect();
        all.sort_by_key(|p| p.id);
        all
    }

    /// The partner owning a budget or venue account.
    pub fn owner_of(&self, account: Uuid) -> Option<Uuid> {
        self.read().account_owner.get(&account).copied()
    }

    pub fn member(&self, account: Uuid) -> Option<Member> {
        self.read().members.get(&account).cloned()
    }

    pub fn api_key(&self, id: Uuid) -> Option<ApiKey> {
        self.read().keys.get(&id).cloned()
    }

    /// All API keys, oldest first, optionally only those of one principal.
    pub fn api_keys(&self, principal: Option<Principal>) -> Vec<ApiKey> {
        let mut all: Vec<ApiKey> = self
            .read()
            .keys
            .values()
            .filter(|k| principal.is_none_or(|p| k.principal == p))
            .cloned()
            .collect();
        all.sort_by_key(|k| k.id);
        all
    }

    /// What an earlier registry-only request with (actor, key) did.
    pub fn previous(&self, actor: Uuid, key: &str, fingerprint: &str) -> Previous {
        match self.read().requests.get(&(actor, key.to_owned())) {
            None => Previous::None,
            Some((f, id)) if f == fingerprint => Previous::Same(*id),
            Some(_) => Previous::Different,
        }
    }

    /// Whether a registry-only request with (actor, key) was made.
    pub fn knows(&self, actor: Uuid, key: &str) -> bool {
        self.read().requests.contains_key(&(actor, key.to_owned()))
    }

    /// Records a partner whose accounts the ledger has opened.
    pub fn add_partner(&self, partner: Partner) -> Result<(), RegistryError> {
        self.append(vec![Event::PartnerCreated { partner }])
    }

    /// Records a new API key and returns its secret.
    pub fn add_api_key(&self, key: ApiKey, request: RequestRef) -> Result<String, RegistryError> {
        let token = self.api_key_secret(key.id);
        self.append(vec![Event::ApiKeyCreated {
            hash: credential_hash(&token),
            key,
            request: Some(request),
        }])?;
        Ok(token)
    }

    /// Revokes an API key (revoking a revoked key changes nothing).
    pub fn revoke_api_key(&self, id: Uuid, request: RequestRef) -> Result<(), RegistryError> {
        self.append(vec![Event::ApiKeyRevoked {
            id,
            at: Utc::now(),
            request,
        }])
    }

    /// Records a member whose wallet the ledger has opened, and returns the member credential.
    pub fn add_member(&self, member: Member) -> Result<String, RegistryError> {
        let credential = self.member_credential(member.account);
        self.append(vec![Event::MemberRegistered {
            hash: credential_hash(&credential),
            member,
        }])?;
        Ok(credential)
    }
}

/// Whether a partner account id names a ledger account of the partner.
pub fn partner_accounts(partner: &Partner) -> impl Iterator<Item = AccountId> + '_ {
    [partner.budget_account, partner.venue_account]
        .into_iter()
        .flatten()
        .map(AccountId)
}

fn load_or_create_secret(path: &Path) -> Result<[u8; 32], RegistryError> {
    if path.exists() {
        let bytes = std::fs::read(path)?;
        return bytes.try_into().map_err(|_| RegistryError::Corrupt {
            index: 0,
            reason: format!("{} must hold exactly 32 bytes", path.display()),
        });
    }
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    write_private_file(path, &secret)?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str) -> RequestRef {
        RequestRef {
            actor: Uuid::nil(),
            key: key.into(),
            fingerprint: "f".into(),
        }
    }

    #[test]
    fn first_open_creates_an_administrator_key_that_authenticates() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let token = std::fs::read_to_string(dir.path().join(layout::ADMIN_API_KEY)).unwrap();
        let key = registry.api_key_by_token(token.trim()).unwrap();
        assert_eq!(key.principal, Principal::Administrator);
        assert!(registry.api_key_by_token("tck_wrong").is_none());
        use std::os::unix::fs::PermissionsExt;
        for file in [layout::ADMIN_API_KEY, layout::SERVER_SECRET] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        // The file holds only hashes: the secret does not appear in it.
        let log = std::fs::read(dir.path().join(layout::REGISTRY)).unwrap();
        let secret = token.trim().as_bytes();
        assert!(!log.windows(secret.len()).any(|w| w == secret));
    }

    #[test]
    fn keys_members_and_revocations_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (key_id, token, credential, member) = {
            let registry = Registry::open(dir.path()).unwrap();
            let key = ApiKey {
                id: Uuid::now_v7(),
                label: "till".into(),
                principal: Principal::Partner { id: Uuid::now_v7() },
                scopes: vec![Scope::Spend],
                created: Utc::now(),
                revoked: None,
            };
            let token = registry.add_api_key(key.clone(), request("k1")).unwrap();
            let member = Member {
                account: Uuid::now_v7(),
                registered_by: Uuid::nil(),
                registered: Utc::now(),
            };
            let credential = registry.add_member(member.clone()).unwrap();
            assert!(
                matches!(registry.previous(Uuid::nil(), "k1", "f"), Previous::Same(id) if id == key.id)
            );
            assert!(matches!(
                registry.previous(Uuid::nil(), "k1", "g"),
                Previous::Different
            ));
            registry.revoke_api_key(key.id, request("k2")).unwrap();
            (key.id, token, credential, member)
        };
        let registry = Registry::open(dir.path()).unwrap();
        let key = registry.api_key_by_token(&token).unwrap();
        assert_eq!(key.id, key_id);
        assert!(key.revoked.is_some());
        assert_eq!(
            registry.member_by_credential(&credential),
            Some(member.clone())
        );
        // Secrets are derived, so they are the same after a restart.
        assert_eq!(registry.member_credential(member.account), credential);
        assert_eq!(registry.api_keys(None).len(), 2);
    }
}
