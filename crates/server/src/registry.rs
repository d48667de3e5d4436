//! Who may call the API: partners, API keys and member credentials.
//!
//! This is the service's own small database, kept apart from the ledger because it holds what
//! the ledger must not: partner names, credential hashes, revocations. It is an append-only file
//! of JSON events in the ledger's checksummed journal format (`registry` in the data directory),
//! `fdatasync`ed before a change is acknowledged and read whole into memory at start. How much of
//! it was acknowledged is kept beside it, so that damage to an acknowledged record is refused
//! rather than cut off as a torn tail, and a failed append is undone at once (the `file` module).
//!
//! # Secrets
//! No secret is stored. API keys and member credentials are derived as
//! `HMAC-SHA256(server secret, purpose || id)` and only their SHA-256 is recorded, so a repeated
//! request (same `Idempotency-Key`) can answer with the very secret it answered with the first
//! time, while the registry file alone reveals nothing. The server secret is a random 32-byte
//! file (`server-secret`, mode 0600) next to the ledger's signing key; its fingerprint is
//! recorded, and a start with another secret is refused.
//!
//! A member's credential can be revoked and reissued (each reissue derives from the member's id
//! and a generation number); a repeat shows a member credential only while it is current, recent
//! (the replay window) and derived with the current secret.

mod cards;
mod file;
pub mod staff;

#[cfg(test)]
pub(crate) use self::file::Fault;

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use timecredits_domain::AccountId;
use timecredits_ledger::keys::write_private_file;
use utoipa::ToSchema;
use uuid::Uuid;

pub use self::cards::{CardStatus, CardVerdict};
pub use self::file::is_storage_full;
use self::file::RegistryFile;
pub(crate) use self::file::{io_error, journal_error};

/// Files of the registry in the data directory.
pub mod layout {
    /// The append-only event file.
    pub const REGISTRY: &str = "registry";
    /// How much of the registry was acknowledged (see the `file` module).
    pub const REGISTRY_ACKED: &str = "registry.acked";
    /// The random key credentials are derived with.
    pub const SERVER_SECRET: &str = "server-secret";
    /// A new server secret during its rotation, renamed over [`SERVER_SECRET`] once recorded.
    pub const SERVER_SECRET_NEXT: &str = "server-secret.next";
    /// The first administrator API key, written once at creation.
    pub const ADMIN_API_KEY: &str = "admin-api-key";
    /// The password of the first administrator's staff login (`admin`) for the pages, written
    /// once at creation.
    pub const ADMIN_PASSWORD: &str = "admin-password";
}

/// A registry failure: always the server's, never the client's. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An I/O failure on a registry file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The disk (or quota) is full; nothing was written.
    #[error("{}: the disk is full; nothing was written", path.display())]
    StorageFull {
        /// The file.
        path: PathBuf,
    },
    /// A registry file does not hold what the registry wrote.
    #[error("{} is damaged: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file of the data directory's identity is missing or belongs to another directory; the
    /// message says which and what to restore.
    #[error("{0}")]
    Identity(String),
    /// Writes stopped after a failure that could not be undone, until a restart.
    #[error("the registry is not taking writes until a restart: {0}")]
    Stopped(String),
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
    Auditor {
        /// The auditor's id.
        id: Uuid,
    },
    /// A partner organisation.
    Partner {
        /// The partner's id.
        id: Uuid,
    },
}

/// A partner organisation: an earn partner, a venue, or both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Partner {
    /// The partner's id: the owner of its accounts and the actor of its entries.
    pub id: Uuid,
    /// Display name (organisation name, not personal data).
    pub name: String,
    /// What it does in the scheme: earn, spend or both.
    pub roles: Vec<Role>,
    /// The budget account it issues from (earn partners).
    pub budget_account: Option<Uuid>,
    /// The account its redemptions go to (spend partners).
    pub venue_account: Option<Uuid>,
    /// When it was recorded.
    pub created: DateTime<Utc>,
    /// When it was suspended, if it is now: its keys may read but not write until an
    /// administrator reinstates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<DateTime<Utc>>,
}

/// An API key's public record (the secret is never stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    /// The key's id (not secret: it names the key in lists and revocations).
    pub id: Uuid,
    /// A label to tell keys apart (e.g. "till 2", "2026 rotation").
    pub label: String,
    /// Who the key acts for.
    pub principal: Principal,
    /// What the key may do; never beyond the principal's roles.
    pub scopes: Vec<Scope>,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it was revoked; a revoked key is refused.
    pub revoked: Option<DateTime<Utc>>,
}

/// A registered member. The ledger knows only the account; the registry keeps the registering
/// partner's reference, and a member's personal profile is kept apart (`profiles`), where an
/// erasure can forget it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's wallet account, which is also the member's id.
    pub account: Uuid,
    /// The administrator or partner that registered the member.
    pub registered_by: Uuid,
    /// When the member was registered.
    pub registered: DateTime<Utc>,
    /// The registering partner's own reference for the member (a membership number), if it
    /// gave one. Records written before references existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The idempotency record of a registry-only write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRef {
    /// The administrator or partner that made the request.
    pub actor: Uuid,
    /// The request's Idempotency-Key.
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
    /// A member's credential replaced by a new one (a lost card): the previous one stops working.
    MemberCredentialIssued {
        account: Uuid,
        generation: u32,
        hash: String,
        at: DateTime<Utc>,
        request: RequestRef,
    },
    /// A member's credential revoked: it stops working, and none replaces it until a reissue.
    MemberCredentialRevoked {
        account: Uuid,
        at: DateTime<Utc>,
        request: RequestRef,
    },
    /// A partner suspended: its keys may read, not write.
    PartnerSuspended {
        id: Uuid,
        at: DateTime<Utc>,
        request: RequestRef,
    },
    /// A suspended partner reinstated: its keys write again.
    PartnerReinstated {
        id: Uuid,
        request: RequestRef,
    },
    /// A staff login for the pages: a person's username and password hash, acting with `key`
    /// (an API key recorded by this event, which has no bearer token: it is used only through
    /// the login). Revoking the key revokes the login.
    StaffLoginCreated {
        key: ApiKey,
        username: String,
        password_hash: String,
        request: RequestRef,
    },
    /// A member's personal data erased on request: their credential revoked, the registering
    /// partner's reference cleared (the file is rewritten without it), no personal data kept.
    MemberErased {
        erasure: Erasure,
        request: RequestRef,
    },
    /// The fingerprint of the server secret credentials are derived with from here on: the
    /// first record of a new registry, so a start with another secret is refused.
    ServerSecret {
        fingerprint: String,
    },
    /// A member card issued, or reissued (a new number): any earlier card of the member stops
    /// working. `number` and `pin` are keyed hashes (see `registry::cards`).
    CardIssued {
        member: Uuid,
        generation: u32,
        number: String,
        pin: String,
        at: DateTime<Utc>,
        request: RequestRef,
    },
    /// A member's card blocked: refused from now on, until a reissue replaces it.
    CardBlocked {
        member: Uuid,
        at: DateTime<Utc>,
        request: RequestRef,
    },
    /// A card's PIN replaced; its count of wrong PINs and its lockout are cleared.
    CardPinReset {
        member: Uuid,
        pin: String,
        at: DateTime<Utc>,
        request: RequestRef,
    },
    /// A card and PIN refused: a wrong PIN for `member`'s card (one more in a row), or a number
    /// that is no card (`member` is `None`; recorded so that both refusals cost the same write).
    CardRefused {
        member: Option<Uuid>,
        at: DateTime<Utc>,
    },
    /// A card locked after too many wrong PINs in a row: refused until its PIN is reset or it
    /// is reissued.
    CardLocked {
        member: Uuid,
        at: DateTime<Utc>,
    },
    /// A card's right PIN after wrong ones: its count of wrong PINs starts again from zero.
    CardAccepted {
        member: Uuid,
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
    /// The members each administrator or partner registered, by id (UUIDv7: oldest first), so
    /// that a page of them is found without a scan.
    members_by_registrar: HashMap<Uuid, BTreeSet<Uuid>>,
    member_by_hash: HashMap<String, Uuid>,
    requests: HashMap<(Uuid, String), (String, Uuid)>,
    /// The fingerprint of the current server secret, once recorded.
    secret_fingerprint: Option<String>,
    /// Each member's current credential.
    credentials: HashMap<Uuid, Credential>,
    /// Staff logins by username.
    staff_logins: HashMap<String, staff::StaffLogin>,
    /// Each member's current card.
    cards: HashMap<Uuid, cards::Card>,
    /// Members by the keyed hash of their current card's number.
    card_by_number: HashMap<String, Uuid>,
    /// Members whose data was erased.
    erasures: HashMap<Uuid, Erasure>,
    /// Erased members whose registration record in the file still holds a reference: the
    /// rewrite that clears it is still to be done (a crash after the erasure's record).
    unforgotten: BTreeSet<Uuid>,
}

/// The record of a member's erasure: who, when, which account. It holds no personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Erasure {
    /// The member's id (their wallet account).
    pub member_id: Uuid,
    /// The administrator or partner that asked for it.
    pub erased_by: Uuid,
    /// When it was recorded.
    pub erased: DateTime<Utc>,
}

/// A member's current credential, as the registry knows it (never the credential itself).
#[derive(Clone, Debug)]
struct Credential {
    /// 0 for the credential given at registration, then one more at each reissue.
    generation: u32,
    /// Its SHA-256; `None` once revoked.
    hash: Option<String>,
    issued: DateTime<Utc>,
    revoked: Option<DateTime<Utc>>,
    /// The (actor, key) of the reissue that made it (`None`: the registration), the only
    /// request whose repeat may show it again.
    request: Option<(Uuid, String)>,
}

/// The public record of a member's credential (never the credential itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CredentialStatus {
    /// The member's id.
    pub member_id: Uuid,
    /// 0 for the credential given at registration, one more at each reissue.
    pub generation: u32,
    /// When the current credential was issued.
    pub issued: DateTime<Utc>,
    /// When it was revoked, if it was; a revoked credential is refused.
    pub revoked: Option<DateTime<Utc>>,
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
                self.member_by_hash.insert(hash.clone(), member.account);
                self.credentials.insert(
                    member.account,
                    Credential {
                        generation: 0,
                        hash: Some(hash),
                        issued: member.registered,
                        revoked: None,
                        request: None,
                    },
                );
                self.members_by_registrar
                    .entry(member.registered_by)
                    .or_default()
                    .insert(member.account);
                self.members.insert(member.account, member);
            }
            Event::MemberCredentialIssued {
                account,
                generation,
                hash,
                at,
                request,
            } => {
                self.forget_credential(account);
                self.member_by_hash.insert(hash.clone(), account);
                self.credentials.insert(
                    account,
                    Credential {
                        generation,
                        hash: Some(hash),
                        issued: at,
                        revoked: None,
                        request: Some((request.actor, request.key.clone())),
                    },
                );
                self.requests
                    .insert((request.actor, request.key), (request.fingerprint, account));
            }
            Event::MemberCredentialRevoked {
                account,
                at,
                request,
            } => {
                self.forget_credential(account);
                if let Some(credential) = self.credentials.get_mut(&account) {
                    credential.revoked.get_or_insert(at);
                }
                self.requests
                    .insert((request.actor, request.key), (request.fingerprint, account));
            }
            Event::PartnerSuspended { id, at, request } => {
                if let Some(partner) = self.partners.get_mut(&id) {
                    partner.suspended.get_or_insert(at);
                }
                self.requests
                    .insert((request.actor, request.key), (request.fingerprint, id));
            }
            Event::PartnerReinstated { id, request } => {
                if let Some(partner) = self.partners.get_mut(&id) {
                    partner.suspended = None;
                }
                self.requests
                    .insert((request.actor, request.key), (request.fingerprint, id));
            }
            Event::StaffLoginCreated {
                key,
                username,
                password_hash,
                request,
            } => {
                self.requests
                    .insert((request.actor, request.key), (request.fingerprint, key.id));
                self.staff_logins.insert(
                    username.clone(),
                    staff::StaffLogin {
                        username,
                        key: key.id,
                        password_hash,
                    },
                );
                self.keys.insert(key.id, key);
            }
            Event::MemberErased { erasure, request } => self.erase(erasure, request),
            Event::ServerSecret { fingerprint } => self.secret_fingerprint = Some(fingerprint),
            Event::CardIssued {
                member,
                generation,
                number,
                pin,
                at,
                request,
            } => {
                self.card_issued(member, generation, number, pin, at);
                self.requests
                    .insert((request.actor, request.key), (request.fingerprint, member));
            }
            Event::CardBlocked {
                member,
                at,
                request,
            } => {
                if let Some(card) = self.cards.get_mut(&member) {
                    card.blocked.get_or_insert(at);
                }
                self.requests
                    .insert((request.actor, request.key), (request.fingerprint, member));
            }
            Event::CardPinReset {
                member,
                pin,
                at,
                request,
            } => {
                if let Some(card) = self.cards.get_mut(&member) {
                    card.pin = pin;
                    card.pin_set = at;
                    card.wrong_pins = 0;
                    card.locked = None;
                }
                self.requests
                    .insert((request.actor, request.key), (request.fingerprint, member));
            }
            Event::CardRefused { member, .. } => {
                if let Some(card) = member.and_then(|m| self.cards.get_mut(&m)) {
                    card.wrong_pins = card.wrong_pins.saturating_add(1);
                }
            }
            Event::CardLocked { member, at } => {
                if let Some(card) = self.cards.get_mut(&member) {
                    card.locked.get_or_insert(at);
                }
            }
            Event::CardAccepted { member } => {
                if let Some(card) = self.cards.get_mut(&member) {
                    card.wrong_pins = 0;
                }
            }
        }
    }
}

impl State {
    /// Applies an erasure: the credential revoked, the reference forgotten in memory (and
    /// noted for the file's rewrite while the file still holds it).
    fn erase(&mut self, erasure: Erasure, request: RequestRef) {
        let account = erasure.member_id;
        self.forget_credential(account);
        if let Some(credential) = self.credentials.get_mut(&account) {
            credential.revoked.get_or_insert(erasure.erased);
        }
        // Leaving blocked the card already; an erasure blocks it whatever came before.
        if let Some(card) = self.cards.get_mut(&account) {
            card.blocked.get_or_insert(erasure.erased);
        }
        if let Some(member) = self.members.get_mut(&account) {
            if member.reference.take().is_some() {
                self.unforgotten.insert(account);
            }
        }
        self.requests
            .insert((request.actor, request.key), (request.fingerprint, account));
        self.erasures.entry(account).or_insert(erasure);
    }

    /// Makes a member's current credential unknown to authentication.
    fn forget_credential(&mut self, account: Uuid) {
        if let Some(hash) = self
            .credentials
            .get_mut(&account)
            .and_then(|c| c.hash.take())
        {
            self.member_by_hash.remove(&hash);
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
    file: Mutex<RegistryFile>,
    state: RwLock<State>,
    secret: [u8; 32],
    /// Held while a card and PIN are checked: one check at a time, so that each reads the
    /// count of wrong PINs its predecessor recorded.
    card_checks: Mutex<()>,
}

type HmacSha256 = Hmac<Sha256>;

/// The SHA-256 of a credential, hex: what the registry keeps.
pub fn credential_hash(credential: &str) -> String {
    hex::encode(Sha256::digest(credential.as_bytes()))
}

impl Registry {
    /// Opens the registry in `dir`, creating the server secret, the administrator and its first
    /// API key (written to [`layout::ADMIN_API_KEY`]) on first use.
    ///
    /// `ledger_has_entries` says whether the ledger beside it holds more than its genesis entry:
    /// then a missing or empty registry is refused rather than created anew. A server secret
    /// other than the one the registry's credentials were derived with is refused too.
    pub fn open(dir: &Path, ledger_has_entries: bool) -> Result<Registry, RegistryError> {
        let (file, payloads) = RegistryFile::open(dir, ledger_has_entries)?;
        let mut state = State::default();
        for (index, payload) in payloads.into_iter().enumerate() {
            let event: Event =
                serde_json::from_slice(&payload).map_err(|e| RegistryError::Damaged {
                    path: dir.join(layout::REGISTRY),
                    reason: format!("record {index} is not a registry event: {e}"),
                })?;
            state.apply(event);
        }
        let secret_path = dir.join(layout::SERVER_SECRET);
        if finish_rotation(dir, state.secret_fingerprint.as_deref())? {
            tracing::info!(
                path = %secret_path.display(),
                "completed a rotation of the server secret that a stop interrupted"
            );
        }
        let secret = load_or_create_secret(&secret_path, state.administrator.is_none())?;
        let fingerprint = secret_fingerprint(&secret);
        let recorded = state.secret_fingerprint.clone();
        let registry = Registry {
            file: Mutex::new(file),
            state: RwLock::new(state),
            secret,
            card_checks: Mutex::new(()),
        };
        match recorded {
            Some(recorded) if recorded != fingerprint => {
                return Err(RegistryError::Identity(format!(
                    "{} is not the secret this registry's credentials were derived with (its \
                     fingerprint differs from the one recorded in `{}`): restore the `{}` that \
                     was backed up with this `{}`; with another secret, replayed registrations \
                     would hand out credentials that do not work",
                    secret_path.display(),
                    layout::REGISTRY,
                    layout::SERVER_SECRET,
                    layout::REGISTRY
                )))
            }
            Some(_) => {}
            // A new registry, or one older than the fingerprint: the secret it has is recorded.
            None => registry.append(vec![Event::ServerSecret { fingerprint }])?,
        }
        if registry.read().administrator.is_none() {
            registry.bootstrap(dir)?;
        }
        registry.forget_erased_references()?;
        Ok(registry)
    }

    /// Replaces the server secret of the registry in `dir` (the service must be stopped) and
    /// returns a summary for the operator. Credentials already handed out keep working (only
    /// their hashes are checked); repeats of earlier requests no longer show them, and new and
    /// reissued credentials are derived with the new secret.
    ///
    /// The new secret is written beside the old one, its fingerprint recorded in the registry,
    /// and then it is renamed into place; a start after a crash in between completes the rename.
    pub fn rotate_secret(dir: &Path) -> Result<String, RegistryError> {
        // A registry must exist (a rotation never creates one) and match its current secret.
        let registry = Registry::open(dir, true)?;
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|()| write_private_file(&dir.join(layout::SERVER_SECRET_NEXT), &secret))
            .map_err(|source| RegistryError::Io {
                path: dir.join(layout::SERVER_SECRET_NEXT),
                source,
            })?;
        registry.append(vec![Event::ServerSecret {
            fingerprint: secret_fingerprint(&secret),
        }])?;
        // Card numbers and PINs are kept as hashes keyed with the secret: those keys change.
        let cards = registry.read().cards.len();
        drop(registry);
        finish_rotation(dir, Some(&secret_fingerprint(&secret)))?;
        Ok(format!(
            "replaced {}; credentials already handed out keep working, repeats of earlier \
             registrations no longer show them, and new or reissued credentials use the new \
             secret. Member cards were keyed with the old secret and are refused from now on: \
             {cards} must be issued again (POST /v1/members/{{id}}/card). Back up the new secret \
             with `{}`.",
            dir.join(layout::SERVER_SECRET).display(),
            layout::REGISTRY
        ))
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
        write_private_file(&path, format!("{token}\n").as_bytes()).map_err(|source| {
            RegistryError::Io {
                path: path.clone(),
                source,
            }
        })?;
        // The first administrator's staff login, so that the pages are usable from the first
        // start without a programmer: username `admin`, its password in a file beside the key.
        let login_key = ApiKey {
            id: Uuid::now_v7(),
            label: "first administrator".into(),
            ..key.clone()
        };
        let password = self.staff_password(login_key.id);
        let password_path = dir.join(layout::ADMIN_PASSWORD);
        write_private_file(&password_path, format!("{password}\n").as_bytes()).map_err(
            |source| RegistryError::Io {
                path: password_path.clone(),
                source,
            },
        )?;
        self.append(vec![
            Event::Administrator { id: admin },
            Event::ApiKeyCreated {
                hash: credential_hash(&token),
                key,
                request: None,
            },
            Event::StaffLoginCreated {
                key: login_key,
                username: "admin".into(),
                password_hash: staff::hash_password(&password),
                request: RequestRef {
                    actor: admin,
                    key: "first-administrator-login".into(),
                    fingerprint: String::new(),
                },
            },
        ])?;
        tracing::info!(
            path = %path.display(),
            password = %password_path.display(),
            "created the administrator; its API key is in the first file, the password of its \
             staff login `admin` for the pages in the second (both mode 0600)"
        );
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self) -> std::sync::MutexGuard<'_, RegistryFile> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends events durably, then applies them.
    fn append(&self, events: Vec<Event>) -> Result<(), RegistryError> {
        self.append_checked(events, |_| true).map(|_| ())
    }

    /// Appends `events` if `check` allows it on the state they would apply to: decided under
    /// the file's lock, so no other append comes between the check and the write. Returns
    /// whether they were appended.
    fn append_checked(
        &self,
        events: Vec<Event>,
        check: impl FnOnce(&State) -> bool,
    ) -> Result<bool, RegistryError> {
        let mut file = self.file();
        if !check(&self.read()) {
            return Ok(false);
        }
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("registry events always serialize"))
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        file.append(&refs)?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for event in events {
            state.apply(event);
        }
        Ok(true)
    }

    /// Makes the next appends fail as `fault` says (tests only).
    #[cfg(test)]
    pub(crate) fn inject_fault(&self, fault: file::Fault) {
        self.file().fault = fault;
    }

    /// Why registry writes are refused until a restart, if they are.
    pub fn write_refusal(&self) -> Option<String> {
        self.file().stopped().map(str::to_owned)
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

    /// The credential of member `account` at `generation` (0 at registration, one more at each
    /// reissue), as shown to the member.
    fn member_credential(&self, account: Uuid, generation: u32) -> String {
        match generation {
            0 => format!("tcm_{}", self.derive("member", account)),
            g => format!("tcm_{}", self.derive(&format!("member/{g}"), account)),
        }
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

    /// The partner with this id, if recorded.
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
    pub fn partner_owning(&self, account: Uuid) -> Option<Partner> {
        let state = self.read();
        let id = state.account_owner.get(&account)?;
        state.partners.get(id).cloned()
    }

    /// The partner answerable for `account`: the owner of a budget or venue account, or the
    /// partner that registered a member's wallet (an administrator's id for a member an
    /// administrator registered). What a partner may read follows it (see `auth`).
    pub fn keeper_of(&self, account: Uuid) -> Option<Uuid> {
        let state = self.read();
        state
            .account_owner
            .get(&account)
            .or_else(|| state.members.get(&account).map(|m| &m.registered_by))
            .copied()
    }

    /// The member whose wallet is `account`, if registered.
    pub fn member(&self, account: Uuid) -> Option<Member> {
        self.read().members.get(&account).cloned()
    }

    /// Up to `limit` members registered by `registrar`, oldest first, after member `after`;
    /// and whether more follow.
    pub fn members_registered_by(
        &self,
        registrar: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> (Vec<Member>, bool) {
        let state = self.read();
        let Some(ids) = state.members_by_registrar.get(&registrar) else {
            return (Vec::new(), false);
        };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page = ids.range((start, Bound::Unbounded));
        let members = page
            .by_ref()
            .take(limit)
            .filter_map(|id| state.members.get(id).cloned())
            .collect();
        (members, page.next().is_some())
    }

    /// Up to `limit` members after member `after`, in id order (ids are UUIDv7: oldest first),
    /// and whether more follow: those `registrar` registered ([`Registry::members_registered_by`]),
    /// or every member (`None`; that costs a sort of every member's id).
    pub fn members_after(
        &self,
        registrar: Option<Uuid>,
        after: Option<Uuid>,
        limit: usize,
    ) -> (Vec<Member>, bool) {
        if let Some(registrar) = registrar {
            return self.members_registered_by(registrar, after, limit);
        }
        let state = self.read();
        let mut ids: Vec<&Uuid> = state
            .members
            .keys()
            .filter(|id| after.is_none_or(|a| **id > a))
            .collect();
        ids.sort_unstable();
        let more = ids.len() > limit;
        let members = ids
            .into_iter()
            .take(limit)
            .filter_map(|id| state.members.get(id).cloned())
            .collect();
        (members, more)
    }

    /// The API key with this id, revoked or not.
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

    /// Suspends partner `id`: its keys may read, not write, until [`Registry::reinstate_partner`].
    pub fn suspend_partner(&self, id: Uuid, request: RequestRef) -> Result<(), RegistryError> {
        self.append(vec![Event::PartnerSuspended {
            id,
            at: Utc::now(),
            request,
        }])
    }

    /// Reinstates suspended partner `id`: its keys write again.
    pub fn reinstate_partner(&self, id: Uuid, request: RequestRef) -> Result<(), RegistryError> {
        self.append(vec![Event::PartnerReinstated { id, request }])
    }

    /// Records a member whose wallet the ledger has opened, and returns the member credential.
    pub fn add_member(&self, member: Member) -> Result<String, RegistryError> {
        let credential = self.member_credential(member.account, 0);
        self.append(vec![Event::MemberRegistered {
            hash: credential_hash(&credential),
            member,
        }])?;
        Ok(credential)
    }
}

impl Registry {
    /// The public record of member `account`'s credential.
    pub fn credential_status(&self, account: Uuid) -> Option<CredentialStatus> {
        let state = self.read();
        let c = state.credentials.get(&account)?;
        Some(CredentialStatus {
            member_id: account,
            generation: c.generation,
            issued: c.issued,
            revoked: c.revoked,
        })
    }

    /// Revokes member `account`'s credential: it is refused from now on. Revoking a revoked
    /// credential changes nothing.
    pub fn revoke_member_credential(
        &self,
        account: Uuid,
        request: RequestRef,
    ) -> Result<(), RegistryError> {
        self.append(vec![Event::MemberCredentialRevoked {
            account,
            at: Utc::now(),
            request,
        }])
    }

    /// Records that member `account` left: their credential is revoked and their card blocked,
    /// in one durable append. What is already revoked or blocked stays as it was, so a repeat
    /// (or a retry after a crash between the ledger and this) writes only what is missing.
    pub fn record_leaving(&self, account: Uuid, request: RequestRef) -> Result<(), RegistryError> {
        let (revoke, block) = {
            let state = self.read();
            (
                state
                    .credentials
                    .get(&account)
                    .is_some_and(|c| c.revoked.is_none()),
                state
                    .cards
                    .get(&account)
                    .is_some_and(|c| c.blocked.is_none()),
            )
        };
        let at = Utc::now();
        let mut events = Vec::with_capacity(2);
        if revoke {
            events.push(Event::MemberCredentialRevoked {
                account,
                at,
                request: request.clone(),
            });
        }
        if block {
            events.push(Event::CardBlocked {
                member: account,
                at,
                request,
            });
        }
        if events.is_empty() {
            return Ok(());
        }
        self.append(events)
    }

    /// Replaces member `account`'s credential with a new one, which it returns; the previous
    /// one (revoked or not) is refused from now on.
    pub fn reissue_member_credential(
        &self,
        account: Uuid,
        request: RequestRef,
    ) -> Result<String, RegistryError> {
        let generation = self
            .read()
            .credentials
            .get(&account)
            .map_or(0, |c| c.generation)
            + 1;
        let credential = self.member_credential(account, generation);
        self.append(vec![Event::MemberCredentialIssued {
            account,
            generation,
            hash: credential_hash(&credential),
            at: Utc::now(),
            request,
        }])?;
        Ok(credential)
    }

    /// The credential to show again in the answer to a repeat of the request that issued it
    /// (`issued_by`: the reissue's (actor, key); `None`: the registration), if it may be shown:
    /// it is still the member's current credential, unrevoked, issued less than `window` ago,
    /// and derived with the current server secret. Otherwise a repeat answers without it.
    pub fn replay_credential(
        &self,
        account: Uuid,
        issued_by: Option<(Uuid, &str)>,
        window: chrono::Duration,
    ) -> Option<String> {
        let current = self.read().credentials.get(&account).cloned()?;
        let same_request = match (&current.request, issued_by) {
            (None, None) => true,
            (Some((actor, key)), Some((a, k))) => *actor == a && key == k,
            _ => false,
        };
        let fresh = Utc::now() - current.issued < window;
        let credential = self.member_credential(account, current.generation);
        let derived = current.hash.as_deref() == Some(credential_hash(&credential).as_str());
        (same_request && fresh && derived).then_some(credential)
    }

    /// The secret of API key `id` to show again in the answer to a repeat of its creation, if it
    /// is still derived with the current server secret (not after a rotation of the secret).
    pub fn replay_api_key_secret(&self, id: Uuid) -> Option<String> {
        let secret = self.api_key_secret(id);
        let state = self.read();
        (state.key_by_hash.get(&credential_hash(&secret)) == Some(&id)).then_some(secret)
    }
}

impl Registry {
    /// The erasure of member `account`, if their data was erased.
    pub fn erasure(&self, account: Uuid) -> Option<Erasure> {
        self.read().erasures.get(&account).cloned()
    }

    /// Whether member `account`'s data was erased.
    pub fn is_erased(&self, account: Uuid) -> bool {
        self.read().erasures.contains_key(&account)
    }

    /// Records the erasure of member `account`'s data by `request.actor` and returns it: their
    /// credential is revoked at once, and the registering partner's reference for them is
    /// cleared from the file by a rewrite (the registry is otherwise append-only). An erasure
    /// already recorded is returned as it was.
    pub fn erase_member(
        &self,
        account: Uuid,
        request: RequestRef,
    ) -> Result<Erasure, RegistryError> {
        if let Some(erasure) = self.erasure(account) {
            return Ok(erasure);
        }
        let erasure = Erasure {
            member_id: account,
            erased_by: request.actor,
            erased: Utc::now(),
        };
        self.append(vec![Event::MemberErased {
            erasure: erasure.clone(),
            request,
        }])?;
        self.forget_erased_references()?;
        Ok(erasure)
    }

    /// Rewrites the file so that no registration record of an erased member holds a
    /// reference, when one still does (after an erasure, or at the start after a crash cut
    /// an erasure short). Every other record is kept byte for byte.
    fn forget_erased_references(&self) -> Result<(), RegistryError> {
        let mut file = self.file();
        let unforgotten = self.read().unforgotten.clone();
        if unforgotten.is_empty() {
            return Ok(());
        }
        let mut payloads = file.payloads()?;
        for payload in &mut payloads {
            let Ok(Event::MemberRegistered { mut member, hash }) =
                serde_json::from_slice::<Event>(payload)
            else {
                continue;
            };
            if unforgotten.contains(&member.account) && member.reference.is_some() {
                member.reference = None;
                *payload = serde_json::to_vec(&Event::MemberRegistered { member, hash })
                    .expect("registry events always serialize");
            }
        }
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        file.rewrite(&refs)?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for account in unforgotten {
            state.unforgotten.remove(&account);
        }
        Ok(())
    }
}

/// Whether a partner account id names a ledger account of the partner.
pub fn partner_accounts(partner: &Partner) -> impl Iterator<Item = AccountId> + '_ {
    [partner.budget_account, partner.venue_account]
        .into_iter()
        .flatten()
        .map(AccountId)
}

/// Loads the server secret, or creates it when `may_create` (a registry with no administrator
/// yet). An existing registry whose secret is missing is refused: a new secret would derive other
/// credentials than the ones handed out.
fn load_or_create_secret(path: &Path, may_create: bool) -> Result<[u8; 32], RegistryError> {
    let io = |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            return bytes.try_into().map_err(|_| RegistryError::Damaged {
                path: path.to_owned(),
                reason: "it must hold exactly 32 bytes; restore it from a backup".into(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if !may_create {
        return Err(RegistryError::Identity(format!(
            "{} is missing, but `{}` holds credentials derived with it: restore the `{}` that was \
             backed up with this `{}`",
            path.display(),
            layout::REGISTRY,
            layout::SERVER_SECRET,
            layout::REGISTRY
        )));
    }
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    write_private_file(path, &secret).map_err(io)?;
    Ok(secret)
}

/// Completes a rotation of the server secret that a crash interrupted: when the secret waiting
/// beside the current one is the one the registry records last, it is renamed into place; any
/// other waiting secret is a rotation that never reached the registry, and is removed. Returns
/// whether a secret was renamed into place.
fn finish_rotation(dir: &Path, recorded: Option<&str>) -> Result<bool, RegistryError> {
    let next = dir.join(layout::SERVER_SECRET_NEXT);
    let io = |source| RegistryError::Io {
        path: next.clone(),
        source,
    };
    let bytes = match std::fs::read(&next) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e)),
    };
    let recorded_next = <[u8; 32]>::try_from(bytes)
        .is_ok_and(|secret| Some(secret_fingerprint(&secret).as_str()) == recorded);
    if recorded_next {
        std::fs::rename(&next, dir.join(layout::SERVER_SECRET)).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    } else {
        std::fs::remove_file(&next).map_err(io)?;
    }
    Ok(recorded_next)
}

/// A fingerprint of the server secret that reveals nothing of it: an HMAC of a fixed label.
fn secret_fingerprint(secret: &[u8; 32]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key size");
    mac.update(b"timecredits server-secret fingerprint");
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The keys a new registry starts with: the first administrator's API key, and the key its
    /// staff login `admin` acts with.
    const FIRST_KEYS: usize = 2;

    /// A request record under `key` (for the registry's own tests and its modules').
    pub(in crate::registry) fn request(key: &str) -> RequestRef {
        RequestRef {
            actor: Uuid::nil(),
            key: key.into(),
            fingerprint: "f".into(),
        }
    }

    /// A registration recorded before members had a reference is still read, with none.
    #[test]
    fn a_member_recorded_without_a_reference_is_read() {
        let line = r#"{"event":"member_registered","member":{"account":"0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12","registered_by":"00000000-0000-0000-0000-000000000000","registered":"2026-11-23T10:15:00Z"},"hash":"h"}"#;
        let Event::MemberRegistered { member, .. } = serde_json::from_str(line).unwrap() else {
            panic!("not a registration");
        };
        assert_eq!(member.reference, None);
    }

    #[test]
    fn a_registrar_s_members_come_in_pages_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), false).unwrap();
        let (club, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut ids = Vec::new();
        for (i, registrar) in [club, other, club, club].into_iter().enumerate() {
            let member = Member {
                account: Uuid::now_v7(),
                registered_by: registrar,
                registered: Utc::now(),
                reference: Some(format!("M-{i}")),
            };
            if registrar == club {
                ids.push(member.account);
            }
            registry.add_member(member).unwrap();
        }
        let (first, more) = registry.members_registered_by(club, None, 2);
        assert!(more);
        assert_eq!(
            first.iter().map(|m| m.account).collect::<Vec<_>>(),
            ids[..2]
        );
        let (rest, more) = registry.members_registered_by(club, Some(ids[1]), 2);
        assert!(!more);
        assert_eq!(rest.iter().map(|m| m.account).collect::<Vec<_>>(), ids[2..]);
        assert_eq!(
            registry.members_registered_by(Uuid::now_v7(), None, 2),
            (vec![], false)
        );
    }

    fn holds(dir: &Path, text: &str) -> bool {
        let bytes = std::fs::read(dir.join(layout::REGISTRY)).unwrap();
        bytes.windows(text.len()).any(|w| w == text.as_bytes())
    }

    #[test]
    fn an_erasure_revokes_the_credential_and_leaves_no_byte_of_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), false).unwrap();
        let member = |reference: &str| Member {
            account: Uuid::now_v7(),
            registered_by: Uuid::nil(),
            registered: Utc::now(),
            reference: Some(reference.into()),
        };
        let (erased, kept) = (member("REF-ERASED-7f3a"), member("REF-KEPT-91c2"));
        let credential = registry.add_member(erased.clone()).unwrap();
        registry.add_member(kept.clone()).unwrap();
        let key = till_key();
        let token = registry.add_api_key(key.clone(), request("k")).unwrap();
        assert!(holds(dir.path(), "REF-ERASED-7f3a"));
        let first = registry.erase_member(erased.account, request("e")).unwrap();
        assert_eq!(
            (first.member_id, first.erased_by),
            (erased.account, Uuid::nil())
        );
        // A repeat, with any key, answers with the same record and writes nothing.
        let len = file_len(dir.path());
        assert_eq!(
            registry
                .erase_member(erased.account, request("e2"))
                .unwrap(),
            first
        );
        assert_eq!(file_len(dir.path()), len);
        assert!(registry.member_by_credential(&credential).is_none());
        assert_eq!(registry.member(erased.account).unwrap().reference, None);
        assert!(!holds(dir.path(), "REF-ERASED-7f3a"));
        assert!(holds(dir.path(), "REF-KEPT-91c2"));
        // Writes go on after the rewrite, and a restart reads every record as it was.
        registry.revoke_api_key(key.id, request("r")).unwrap();
        drop(registry);
        let registry = Registry::open(dir.path(), true).unwrap();
        assert_eq!(registry.erasure(erased.account), Some(first));
        assert!(registry.member_by_credential(&credential).is_none());
        assert!(registry
            .credential_status(erased.account)
            .unwrap()
            .revoked
            .is_some());
        assert_eq!(registry.member(kept.account), Some(kept));
        assert!(registry.api_key_by_token(&token).unwrap().revoked.is_some());
    }

    #[test]
    fn an_erasure_cut_before_its_rewrite_is_completed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), false).unwrap();
        let member = Member {
            account: Uuid::now_v7(),
            registered_by: Uuid::nil(),
            registered: Utc::now(),
            reference: Some("REF-CUT-5d1e".into()),
        };
        registry.add_member(member.clone()).unwrap();
        // The erasure's record reaches the disk; the crash comes before the rewrite.
        let erasure = Erasure {
            member_id: member.account,
            erased_by: Uuid::nil(),
            erased: Utc::now(),
        };
        let event = Event::MemberErased {
            erasure: erasure.clone(),
            request: request("e"),
        };
        registry
            .file()
            .append(&[&serde_json::to_vec(&event).unwrap()])
            .unwrap();
        drop(registry);
        assert!(holds(dir.path(), "REF-CUT-5d1e"));
        let registry = Registry::open(dir.path(), true).unwrap();
        assert!(!holds(dir.path(), "REF-CUT-5d1e"));
        assert_eq!(registry.erasure(member.account), Some(erasure));
        drop(registry);
        // The rewritten file is whole up to its mark: it opens again, with nothing to redo.
        let len = file_len(dir.path());
        Registry::open(dir.path(), true).unwrap();
        assert_eq!(file_len(dir.path()), len);
    }

    #[test]
    fn first_open_creates_an_administrator_key_that_authenticates() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), false).unwrap();
        let token = std::fs::read_to_string(dir.path().join(layout::ADMIN_API_KEY)).unwrap();
        let key = registry.api_key_by_token(token.trim()).unwrap();
        assert_eq!(key.principal, Principal::Administrator);
        assert!(registry.api_key_by_token("tck_wrong").is_none());
        use std::os::unix::fs::PermissionsExt;
        for file in [
            layout::ADMIN_API_KEY,
            layout::SERVER_SECRET,
            layout::REGISTRY,
            layout::REGISTRY_ACKED,
        ] {
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
            let registry = Registry::open(dir.path(), false).unwrap();
            let key = till_key();
            let token = registry.add_api_key(key.clone(), request("k1")).unwrap();
            let member = Member {
                account: Uuid::now_v7(),
                registered_by: Uuid::nil(),
                registered: Utc::now(),
                reference: None,
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
        let registry = Registry::open(dir.path(), false).unwrap();
        let key = registry.api_key_by_token(&token).unwrap();
        assert_eq!(key.id, key_id);
        assert!(key.revoked.is_some());
        assert_eq!(
            registry.member_by_credential(&credential),
            Some(member.clone())
        );
        // Secrets are derived, so they are the same after a restart.
        assert_eq!(registry.member_credential(member.account, 0), credential);
        assert_eq!(registry.api_keys(None).len(), FIRST_KEYS + 1);
    }

    fn till_key() -> ApiKey {
        ApiKey {
            id: Uuid::now_v7(),
            label: "till".into(),
            principal: Principal::Partner { id: Uuid::now_v7() },
            scopes: vec![Scope::Spend],
            created: Utc::now(),
            revoked: None,
        }
    }

    fn file_len(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(layout::REGISTRY)).unwrap().len()
    }

    fn expect_refusal(dir: &Path, ledger_has_entries: bool, names: &str) -> String {
        match Registry::open(dir, ledger_has_entries) {
            Ok(_) => panic!("opened, expected a refusal naming {names}"),
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains(names), "{message}");
                assert!(message.contains("restore"), "{message}");
                message
            }
        }
    }

    #[test]
    fn a_failed_append_leaves_the_file_as_it_was_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), false).unwrap();
        let before = file_len(dir.path());
        let probe = till_key();
        let record = serde_json::to_vec(&Event::ApiKeyCreated {
            hash: credential_hash(&registry.api_key_secret(probe.id)),
            key: probe,
            request: Some(request("probe")),
        })
        .unwrap()
        .len();
        for limit in 0..record + 8 {
            registry.file().fault.write_limit = Some(limit);
            let err = registry
                .add_api_key(till_key(), request(&format!("full-{limit}")))
                .unwrap_err();
            assert!(matches!(err, RegistryError::StorageFull { .. }), "{err}");
            assert!(err.to_string().contains(layout::REGISTRY), "{err}");
            assert_eq!(file_len(dir.path()), before, "cut at {limit}");
            assert!(registry.write_refusal().is_none());
        }
        // Space is back: writes resume, and a restart reads every acknowledged record.
        registry.file().fault = file::Fault::default();
        let key = till_key();
        let token = registry.add_api_key(key.clone(), request("after")).unwrap();
        drop(registry);
        let registry = Registry::open(dir.path(), true).unwrap();
        assert_eq!(registry.api_key_by_token(&token).unwrap().id, key.id);
        assert_eq!(registry.api_keys(None).len(), FIRST_KEYS + 1);
    }

    #[test]
    fn an_append_that_cannot_be_undone_stops_writes_until_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), false).unwrap();
        registry.file().fault = file::Fault {
            write_limit: Some(20),
            rollback_fails: true,
            mark_fails: false,
        };
        assert!(registry.add_api_key(till_key(), request("a")).is_err());
        let reason = registry.write_refusal().expect("writes stopped");
        assert!(reason.contains("could not be undone"), "{reason}");
        registry.file().fault = file::Fault::default();
        assert!(matches!(
            registry.add_api_key(till_key(), request("b")),
            Err(RegistryError::Stopped(_))
        ));
        drop(registry);
        // The partial record was never acknowledged: the restart cuts it off and writes again.
        let registry = Registry::open(dir.path(), true).unwrap();
        assert!(registry.write_refusal().is_none());
        registry.add_api_key(till_key(), request("c")).unwrap();
        assert_eq!(registry.api_keys(None).len(), FIRST_KEYS + 1);
    }

    #[test]
    fn a_record_synced_but_not_marked_stops_writes_and_is_kept_at_restart() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), false).unwrap();
        registry.file().fault.mark_fails = true;
        let key = till_key();
        assert!(registry.add_api_key(key.clone(), request("a")).is_err());
        assert!(registry.write_refusal().is_some());
        drop(registry);
        let registry = Registry::open(dir.path(), true).unwrap();
        assert!(registry.api_key(key.id).is_some());
        registry.add_api_key(till_key(), request("b")).unwrap();
        drop(registry);
        Registry::open(dir.path(), true).unwrap();
    }

    #[test]
    fn damage_to_the_acknowledged_last_record_is_refused_at_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), false).unwrap();
        let key = till_key();
        registry.add_api_key(key.clone(), request("k1")).unwrap();
        let before = file_len(dir.path());
        // The last record is a revocation: losing it would make the key work again.
        registry.revoke_api_key(key.id, request("k2")).unwrap();
        drop(registry);
        let path = dir.path().join(layout::REGISTRY);
        let whole = std::fs::read(&path).unwrap();
        for at in before..whole.len() as u64 {
            std::fs::write(&path, &whole[..at as usize]).unwrap();
            let message = expect_refusal(dir.path(), true, &path.display().to_string());
            assert!(message.contains("acknowledged"), "{message}");
            assert_eq!(file_len(dir.path()), at, "nothing truncated");
            let mut flipped = whole.clone();
            flipped[at as usize] ^= 0x40;
            std::fs::write(&path, &flipped).unwrap();
            expect_refusal(dir.path(), true, &path.display().to_string());
        }
        std::fs::write(&path, &whole).unwrap();
        let registry = Registry::open(dir.path(), true).unwrap();
        assert!(registry.api_key(key.id).unwrap().revoked.is_some());
    }

    #[test]
    fn an_unacknowledged_tail_is_truncated_at_every_cut_and_kept_when_whole() {
        let dir = tempfile::tempdir().unwrap();
        drop(Registry::open(dir.path(), false).unwrap());
        let path = dir.path().join(layout::REGISTRY);
        let acked = std::fs::read(&path).unwrap();
        // What a crash leaves between the sync of a record and its mark.
        let key = till_key();
        let event = serde_json::to_vec(&Event::ApiKeyCreated {
            hash: "h".into(),
            key: key.clone(),
            request: None,
        })
        .unwrap();
        let (tail, _) = timecredits_ledger::journal::encode(&[&event], acked.len() as u64).unwrap();
        for cut in 0..tail.len() {
            std::fs::write(&path, [&acked[..], &tail[..cut]].concat()).unwrap();
            let registry = Registry::open(dir.path(), true).unwrap();
            assert!(registry.api_key(key.id).is_none(), "cut at {cut}");
            assert_eq!(file_len(dir.path()), acked.len() as u64);
        }
        std::fs::write(&path, [&acked[..], &tail[..]].concat()).unwrap();
        assert!(Registry::open(dir.path(), true)
            .unwrap()
            .api_key(key.id)
            .is_some());
        // It is acknowledged now: cutting it is refused.
        std::fs::write(&path, &acked).unwrap();
        expect_refusal(dir.path(), true, layout::REGISTRY);
    }

    #[test]
    fn a_torn_mark_slot_falls_back_to_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), false).unwrap();
        registry.add_api_key(till_key(), request("k1")).unwrap();
        drop(registry);
        let mark = dir.path().join(layout::REGISTRY_ACKED);
        let mut bytes = std::fs::read(&mark).unwrap();
        // The newest slot is torn: the older one is a smaller, still true mark.
        let newest = if bytes[0] > bytes[32] { 0 } else { 32 };
        bytes[newest + 9] ^= 1;
        std::fs::write(&mark, &bytes).unwrap();
        let registry = Registry::open(dir.path(), true).unwrap();
        assert_eq!(registry.api_keys(None).len(), FIRST_KEYS + 1);
        drop(registry);
        // Both slots damaged: how much was acknowledged is unknown, so it is refused.
        std::fs::write(&mark, [0u8; 64]).unwrap();
        expect_refusal(dir.path(), true, layout::REGISTRY_ACKED);
    }

    #[test]
    fn a_missing_or_replaced_identity_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Registry::open(dir.path(), false).unwrap());
        let secret = dir.path().join(layout::SERVER_SECRET);
        let original = std::fs::read(&secret).unwrap();

        std::fs::write(&secret, [7u8; 32]).unwrap();
        let message = expect_refusal(dir.path(), true, &secret.display().to_string());
        assert!(message.contains("not the secret"), "{message}");

        std::fs::remove_file(&secret).unwrap();
        let message = expect_refusal(dir.path(), true, &secret.display().to_string());
        assert!(message.contains("missing"), "{message}");
        std::fs::write(&secret, &original).unwrap();
        Registry::open(dir.path(), true).unwrap();

        // A registry emptied, then deleted: the mark remembers it, and so does the ledger.
        let registry = dir.path().join(layout::REGISTRY);
        std::fs::write(&registry, b"").unwrap();
        expect_refusal(dir.path(), false, &registry.display().to_string());
        std::fs::remove_file(&registry).unwrap();
        expect_refusal(dir.path(), false, &registry.display().to_string());
        std::fs::remove_file(dir.path().join(layout::REGISTRY_ACKED)).unwrap();
        let message = expect_refusal(dir.path(), true, &registry.display().to_string());
        assert!(message.contains("ledger"), "{message}");
    }

    #[test]
    fn a_rotated_secret_keeps_credentials_working_and_stops_showing_them_again() {
        let dir = tempfile::tempdir().unwrap();
        let member = Member {
            account: Uuid::now_v7(),
            registered_by: Uuid::nil(),
            registered: Utc::now(),
            reference: Some("M-1".into()),
        };
        let (credential, key) = {
            let registry = Registry::open(dir.path(), false).unwrap();
            let credential = registry.add_member(member.clone()).unwrap();
            let key = till_key();
            registry.add_api_key(key.clone(), request("k")).unwrap();
            let day = chrono::Duration::hours(24);
            assert_eq!(
                registry.replay_credential(member.account, None, day),
                Some(credential.clone())
            );
            (credential, key)
        };
        let before = std::fs::read(dir.path().join(layout::SERVER_SECRET)).unwrap();
        Registry::rotate_secret(dir.path()).unwrap();
        assert_ne!(
            std::fs::read(dir.path().join(layout::SERVER_SECRET)).unwrap(),
            before
        );
        let registry = Registry::open(dir.path(), true).unwrap();
        assert_eq!(
            registry.member_by_credential(&credential),
            Some(member.clone())
        );
        let day = chrono::Duration::hours(24);
        assert_eq!(registry.replay_credential(member.account, None, day), None);
        assert_eq!(registry.replay_api_key_secret(key.id), None);
        // A reissue derives with the new secret, and is shown again.
        let new = registry
            .reissue_member_credential(member.account, request("r"))
            .unwrap();
        assert_eq!(
            registry.replay_credential(member.account, Some((Uuid::nil(), "r")), day),
            Some(new)
        );
        assert!(registry.member_by_credential(&credential).is_none());
    }

    #[test]
    fn a_rotation_cut_before_its_rename_is_completed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        drop(Registry::open(dir.path(), false).unwrap());
        let secret = [5u8; 32];
        write_private_file(&dir.path().join(layout::SERVER_SECRET_NEXT), &secret).unwrap();
        // A waiting secret never recorded is dropped.
        drop(Registry::open(dir.path(), true).unwrap());
        assert!(!dir.path().join(layout::SERVER_SECRET_NEXT).exists());
        // Cut after the fingerprint is recorded, before the rename.
        let registry = Registry::open(dir.path(), true).unwrap();
        write_private_file(&dir.path().join(layout::SERVER_SECRET_NEXT), &secret).unwrap();
        registry
            .append(vec![Event::ServerSecret {
                fingerprint: secret_fingerprint(&secret),
            }])
            .unwrap();
        drop(registry);
        drop(Registry::open(dir.path(), true).unwrap());
        assert_eq!(
            std::fs::read(dir.path().join(layout::SERVER_SECRET)).unwrap(),
            secret
        );
    }
}
