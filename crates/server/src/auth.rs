//! Who is calling: the `Authorization: Bearer` credential resolved to a [`Caller`], and the
//! permission checks every handler uses.
//!
//! # Permission matrix
//!
//! | operation                                   | admin | auditor | earn partner | venue | member |
//! |---------------------------------------------|-------|---------|--------------|-------|--------|
//! | create partners, API keys; revoke keys      | yes   |         |              |       |        |
//! | allocate credits, close accounts, rotate the signing key | yes |  |           |       |        |
//! | register members                            | yes   |         | yes          |       |        |
//! | earn (from its own budget)                  |       |         | yes          |       |        |
//! | redeem a spend code (into its own account)  |       |         |              | yes   |        |
//! | create spend codes, gift                    |       |         |              |       | own    |
//! | reverse an entry                            | any   |         | own, window  | own, window |  |
//! | read an account and its history             | any   | any     | own accounts | own accounts | own |
//! | read an entry                               | any   | any     | took part    | took part | took part |
//! | list partners                               | yes   | yes     | itself       | itself |       |
//! | export, receipts of any entry               | yes   | yes     | receipts of its entries | same | own |
//! | checkpoint, verifier key, health            | anyone (no credential) |||||
//!
//! A partner holding both roles has both columns. Checks refuse with `forbidden` (403) when the
//! caller is known but may not act, and with `unauthorized` (401) when it is not known.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use timecredits_domain::{AccountId, AccountKind, AccountState, Entry, EntryBody};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::registry::{ApiKey, Member, Partner, Principal, Scope};
use crate::AppState;

/// An authenticated caller.
#[derive(Clone, Debug)]
pub enum Caller {
    /// The holder of an API key (administrator, auditor or partner).
    Key {
        key: ApiKey,
        /// The partner, for partner keys.
        partner: Option<Partner>,
        /// The administrator's actor id (for administrator keys).
        administrator: Uuid,
    },
    /// A member, with their member credential.
    Member(Member),
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state is missing".into()))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("this operation needs an Authorization: Bearer header".into())
        })?;
    let token = header
        .to_str()
        .ok()
        // The scheme name is case-insensitive (RFC 9110, section 11.1).
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <credential>`".into())
        })?;
    let unknown = || ApiError::Unauthorized("the credential is not valid".into());
    let registry = &state.registry;
    if token.starts_with("tcm_") {
        return registry
            .member_by_credential(token)
            .map(Caller::Member)
            .ok_or_else(unknown);
    }
    let key = registry.api_key_by_token(token).ok_or_else(unknown)?;
    if key.revoked.is_some() {
        return Err(ApiError::Unauthorized("this API key was revoked".into()));
    }
    let partner = match key.principal {
        Principal::Partner { id } => Some(registry.partner(id).ok_or_else(unknown)?),
        _ => None,
    };
    Ok(Caller::Key {
        key,
        partner,
        administrator: registry.administrator(),
    })
}

fn forbidden(what: &str) -> ApiError {
    ApiError::Forbidden(format!("this credential may not {what}"))
}

impl Caller {
    /// The id entries made by this caller carry as their actor, and that scopes its
    /// idempotency keys.
    pub fn actor(&self) -> Uuid {
        match self {
            Caller::Member(m) => m.account,
            Caller::Key {
                key, administrator, ..
            } => match key.principal {
                Principal::Administrator => *administrator,
                Principal::Auditor { id } | Principal::Partner { id } => id,
            },
        }
    }

    fn has(&self, scope: Scope) -> bool {
        matches!(self, Caller::Key { key, .. } if key.scopes.contains(&scope))
    }

    /// The API key's id, for per-key throttling.
    pub fn key_id(&self) -> Option<Uuid> {
        match self {
            Caller::Key { key, .. } => Some(key.id),
            Caller::Member(_) => None,
        }
    }

    /// Refuses unless the caller is an administrator.
    pub fn require_admin(&self, what: &str) -> Result<Uuid, ApiError> {
        if self.has(Scope::Admin) {
            Ok(self.actor())
        } else {
            Err(forbidden(what))
        }
    }

    /// Whether the caller may read everything (administrators and auditors).
    pub fn reads_all(&self) -> bool {
        self.has(Scope::Admin) || self.has(Scope::Audit)
    }

    /// Refuses unless the caller may read everything.
    pub fn require_reader(&self, what: &str) -> Result<(), ApiError> {
        if self.reads_all() {
            Ok(())
        } else {
            Err(forbidden(what))
        }
    }

    /// The partner behind a key with `scope`, and the account that scope works on (its budget
    /// for `earn`, its venue account for `spend`).
    pub fn partner_account(&self, scope: Scope, what: &str) -> Result<(Uuid, AccountId), ApiError> {
        let Caller::Key {
            partner: Some(p), ..
        } = self
        else {
            return Err(forbidden(what));
        };
        let account = match scope {
            Scope::Earn => p.budget_account,
            Scope::Spend => p.venue_account,
            Scope::Admin | Scope::Audit => None,
        };
        match account {
            Some(a) if self.has(scope) => Ok((p.id, AccountId(a))),
            _ => Err(forbidden(what)),
        }
    }

    /// The member behind a member credential.
    pub fn require_member(&self, what: &str) -> Result<AccountId, ApiError> {
        match self {
            Caller::Member(m) => Ok(AccountId(m.account)),
            Caller::Key { .. } => Err(ApiError::Forbidden(format!(
                "only a member, with their member credential, may {what}"
            ))),
        }
    }

    /// May register members: administrators and earn partners.
    pub fn require_registrar(&self) -> Result<Uuid, ApiError> {
        if self.has(Scope::Admin) || self.partner_account(Scope::Earn, "").is_ok() {
            Ok(self.actor())
        } else {
            Err(forbidden("register members"))
        }
    }

    /// Whether the caller may see this account: readers all, partners their own, members theirs.
    pub fn may_see_account(&self, account: &AccountState) -> bool {
        match self {
            _ if self.reads_all() => true,
            Caller::Member(m) => account.id.0 == m.account,
            Caller::Key {
                partner: Some(p), ..
            } => account.kind != AccountKind::Member && account.owner == Some(p.id),
            Caller::Key { .. } => false,
        }
    }

    /// Whether the caller may see this entry: readers all, others the entries they took part in
    /// (as actor or as the owner of an account it touches).
    pub fn may_see_entry(
        &self,
        entry: &Entry,
        owner_of: impl Fn(AccountId) -> Option<Uuid>,
    ) -> bool {
        if self.reads_all() {
            return true;
        }
        let accounts = entry.body.accounts();
        match self {
            Caller::Member(m) => accounts.contains(&AccountId(m.account)),
            Caller::Key {
                partner: Some(p), ..
            } => {
                entry.actor == p.id
                    || accounts.iter().any(|a| owner_of(*a) == Some(p.id))
                    || matches!(entry.body, EntryBody::Open { owner: Some(o), .. } if o == p.id)
            }
            Caller::Key { .. } => false,
        }
    }

    /// Whether this is an administrator (who may reverse any entry at any time).
    pub fn is_admin(&self) -> bool {
        self.has(Scope::Admin)
    }
}
