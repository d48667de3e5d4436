//! Who is calling: the `Authorization: Bearer` credential resolved to a [`Caller`], and the
//! permission checks every handler uses.
//!
//! # Permission matrix
//!
//! | operation                                   | admin | auditor | earn partner | venue | member |
//! |---------------------------------------------|-------|---------|--------------|-------|--------|
//! | create partners, API keys, staff logins; revoke keys | yes |     |              |       |        |
//! | suspend and reinstate partners              | yes   |         |              |       |        |
//! | allocate credits, close accounts, rotate the signing key | yes |  |           |       |        |
//! | register members                            | yes   |         | yes          |       |        |
//! | a member leaves (credits out, wallet closed, credential revoked) | yes | | those it registered | | |
//! | write a member's profile; erase a member's personal data | yes | | those it registered | | |
//! | read a member's profile and data export      | any   |         | those it registered | | own |
//! | earn (from its own budget)                  |       |         | yes          |       |        |
//! | redeem a spend code (into its own account)  |       |         |              | yes   |        |
//! | settle: retire a venue's credits, return a budget | any partner's | | own budget | own venue account | |
//! | create spend codes, gift                    |       |         |              |       | own    |
//! | reverse an entry (see below)                | any   |         | own earns, window | own spends, window | |
//! | read an account and its history             | any   | any     | own accounts, members it registered | own accounts | own |
//! | read an entry                               | any   | any     | took part, or in a wallet it registered | took part | took part |
//! | list partners                               | yes   | yes     |              |       |        |
//! | read a partner                              | any   | any     | itself       | itself | any   |
//! | list the members a partner registered       | any partner's |  | its own     | its own (none) |  |
//! | a partner's year-end statement (CSV)        | yes   | yes     | itself       | itself |       |
//! | export, receipts of any entry               | yes   | yes     | receipts of its entries | same | own |
//! | impact reports                              | all   | all     | its own rows | its own rows |   |
//! | checkpoint, verifier key, health            | anyone (no credential) |||||
//!
//! A partner holding both roles has both columns. Checks refuse with `forbidden` (403) when the
//! caller is known but may not act, and with `unauthorized` (401) when it is not known. A read
//! of something the caller may not see is answered as not found (404), with a detail that says
//! no such thing *this credential may read* ([`not_visible`]) rather than that it does not
//! exist: the answer is the same whether it exists or not.
//!
//! # Members and the partners they meet
//! A member belongs, for reading, to the partner that registered them (its *keeper*): that
//! partner lists its members with its own reference for each, and reads their wallets'
//! balances and whole histories. Any earn partner may credit any member whose id it is given
//! (a member registered at a lunch club may give an hour at a food bank): the food bank sees
//! the earn entries it made, and nothing else of the member: not their balance, not their
//! history, not their other entries. Members may read every partner (its name, roles and
//! account ids), so that they can name the charities and venues in their history.
//!
//! # Scopes, narrowed keys and closed partners
//! A partner key acts only with the scopes it holds (a key narrowed to `spend` cannot earn or
//! register members), and only with those whose account is open: a partner whose budget account
//! was closed has no `earn` scope left, one whose venue account was closed no `spend` scope, so a
//! partner whose accounts are all closed can only read. A suspended partner has no scope left
//! either: it reads, and every write it would otherwise be allowed is refused with
//! `partner_suspended` (403) rather than `forbidden`, so that it knows why. A reversal needs the scope that made the
//! entry it reverses (`earn` for an earn or a member registration, `spend` for a spend), besides
//! being the entry's own partner within the reversal window; administrators reverse any movement
//! at any time. All of this is decided here: [`PERMISSIONS`] (checked by [`Caller::permit`])
//! for every operation whose permission does not depend on what it touches, [`Caller::active`]
//! for scopes, [`Caller::may_reverse`] and the `may_see_*` methods for the rest; handlers only
//! call these checks.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use timecredits_domain::{AccountId, AccountState, AccountStatus, Entry, EntryBody, MovementKind};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::registry::{ApiKey, Member, Partner, Principal, Scope};
use crate::AppState;

/// An authenticated caller.
// One per request, on the stack of its handler: boxing the key's records would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Caller {
    /// The holder of an API key (administrator, auditor or partner).
    ApiKey {
        /// The key's public record.
        api_key: ApiKey,
        /// The partner, for partner keys.
        partner: Option<Partner>,
        /// The administrator's actor id (for administrator keys).
        administrator: Uuid,
        /// The key's scopes that may be used now: a partner's scope whose account is closed is
        /// left out (see [`Caller::active`]).
        active: Vec<Scope>,
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
    caller_with_key(state, key)
}

/// The caller acting with API key `key` (found by its bearer token, or by a staff login's
/// session in the pages): refused if the key is revoked.
pub fn caller_with_key(state: &AppState, key: ApiKey) -> Result<Caller, ApiError> {
    let unknown = || ApiError::Unauthorized("the credential is not valid".into());
    let registry = &state.registry;
    if key.revoked.is_some() {
        return Err(ApiError::Unauthorized("this API key was revoked".into()));
    }
    let partner = match key.principal {
        Principal::Partner { id } => Some(registry.partner(id).ok_or_else(unknown)?),
        _ => None,
    };
    let active = Caller::active(&key, partner.as_ref(), |account| {
        let status = state.ledger.account_status(AccountId(account))?;
        Ok(status == Some(AccountStatus::Open))
    })?;
    Ok(Caller::ApiKey {
        api_key: key,
        partner,
        administrator: registry.administrator(),
        active,
    })
}

fn forbidden(what: &str) -> ApiError {
    ApiError::Forbidden(format!("this credential may not {what}"))
}

/// The detail of a 404 for something the caller may not see or that does not exist: the same
/// words either way, so that the answer does not tell one from the other.
pub fn not_visible(what: &str, id: Uuid) -> String {
    format!("no {what} {id} that this credential may read")
}

/// An operation whose permission does not depend on what it touches (reads of one account,
/// entry or partner, and reversals, have their own rules: the `may_*` methods).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Record a partner and open its accounts.
    CreatePartner,
    /// List the partners.
    ListPartners,
    /// Make an API key.
    CreateApiKey,
    /// List the API keys.
    ListApiKeys,
    /// Revoke an API key.
    RevokeApiKey,
    /// Suspend or reinstate a partner.
    SuspendPartner,
    /// Allocate credits from the programme to a budget.
    Allocate,
    /// Close an empty account.
    CloseAccount,
    /// Rotate the checkpoint signing key.
    RotateKey,
    /// Register a member (open a wallet, issue a credential).
    RegisterMember,
    /// Revoke or reissue a member's credential (which member: `may_manage_member`).
    ManageCredential,
    /// Record that a member leaves (which member: `may_manage_member`).
    LeaveMember,
    /// Issue, reissue, print or block a member's card, or reset its PIN (which member:
    /// `may_manage_member`).
    ManageCard,
    /// Write a member's profile (which member: `may_see_member_data`).
    WriteProfile,
    /// Erase a member's personal data (which member: `may_see_member_data`).
    EraseMember,
    /// Earn: credit a member for time given, one at a time or in a batch.
    Earn,
    /// Redeem a member's spend code at a venue.
    Redeem,
    /// Make a spend code (a member, for their own wallet).
    CreateSpendCode,
    /// Gift credits to another member.
    Gift,
    /// Settle a partner's account: retire a venue's redeemed credits, or return unused budget
    /// (whose account: `may_act_for`).
    Settle,
    /// Export the ledger for an auditor.
    Export,
    /// Read the expiry policy's notice list (whose members: the caller's scope).
    ListUpcomingExpiries,
    /// Run the expiry sweep now.
    SweepExpiries,
}

/// Who may perform an operation.
#[derive(Debug)]
pub enum Allowed {
    /// A key holding any of these scopes, active (for a partner: on an open account).
    Scopes(&'static [Scope]),
    /// A member, with their member credential.
    Member,
}

/// The permission table: every [`Operation`], who may perform it, and how a refusal names it.
pub const PERMISSIONS: &[(Operation, Allowed, &str)] = {
    use Allowed::{Member, Scopes};
    use Operation::*;
    use Scope::{Admin, Audit, Earn as EarnScope, Spend};
    &[
        (CreatePartner, Scopes(&[Admin]), "create partners"),
        (ListPartners, Scopes(&[Admin, Audit]), "list partners"),
        (CreateApiKey, Scopes(&[Admin]), "create API keys"),
        (ListApiKeys, Scopes(&[Admin]), "list API keys"),
        (RevokeApiKey, Scopes(&[Admin]), "revoke API keys"),
        (
            SuspendPartner,
            Scopes(&[Admin]),
            "suspend or reinstate partners",
        ),
        (Allocate, Scopes(&[Admin]), "allocate credits"),
        (CloseAccount, Scopes(&[Admin]), "close accounts"),
        (RotateKey, Scopes(&[Admin]), "rotate the signing key"),
        (
            RegisterMember,
            Scopes(&[Admin, EarnScope]),
            "register members",
        ),
        (
            ManageCredential,
            Scopes(&[Admin, EarnScope]),
            "revoke or reissue member credentials",
        ),
        (
            LeaveMember,
            Scopes(&[Admin, EarnScope]),
            "record that a member leaves",
        ),
        (
            ManageCard,
            Scopes(&[Admin, EarnScope]),
            "issue, print or block member cards",
        ),
        (
            WriteProfile,
            Scopes(&[Admin, EarnScope]),
            "write member profiles",
        ),
        (
            EraseMember,
            Scopes(&[Admin, EarnScope]),
            "erase members' personal data",
        ),
        (Earn, Scopes(&[EarnScope]), "issue credits"),
        (Redeem, Scopes(&[Spend]), "redeem spend codes"),
        (CreateSpendCode, Member, "create spend codes"),
        (Gift, Member, "gift credits"),
        (
            Settle,
            Scopes(&[Admin, EarnScope, Spend]),
            "settle accounts",
        ),
        (Export, Scopes(&[Admin, Audit]), "export the ledger"),
        (
            ListUpcomingExpiries,
            Scopes(&[Admin, Audit, EarnScope]),
            "read the expiry notice list",
        ),
        (SweepExpiries, Scopes(&[Admin]), "run the expiry sweep"),
    ]
};

impl Caller {
    /// The id entries made by this caller carry as their actor, and that scopes its
    /// idempotency keys.
    pub fn actor(&self) -> Uuid {
        match self {
            Caller::Member(m) => m.account,
            Caller::ApiKey {
                api_key,
                administrator,
                ..
            } => match api_key.principal {
                Principal::Administrator => *administrator,
                Principal::Auditor { id } | Principal::Partner { id } => id,
            },
        }
    }

    /// The scopes of `key` that may be used now: all of them for administrators and auditors;
    /// for a partner, those whose account (budget for `earn`, venue for `spend`) is open, and
    /// none while it is suspended.
    pub fn active(
        key: &ApiKey,
        partner: Option<&Partner>,
        is_open: impl Fn(Uuid) -> Result<bool, timecredits_ledger::LedgerError>,
    ) -> Result<Vec<Scope>, ApiError> {
        let mut active = Vec::with_capacity(key.scopes.len());
        for scope in &key.scopes {
            let account = match (scope, partner) {
                (Scope::Admin | Scope::Audit, _) => None,
                (Scope::Earn, Some(p)) => Some(p.budget_account),
                (Scope::Spend, Some(p)) => Some(p.venue_account),
                (Scope::Earn | Scope::Spend, None) => Some(None),
            };
            let usable = match account {
                None => true,
                Some(_) if partner.is_some_and(|p| p.suspended.is_some()) => false,
                Some(Some(account)) => is_open(account)?,
                Some(None) => false,
            };
            if usable {
                active.push(*scope);
            }
        }
        Ok(active)
    }

    fn has(&self, scope: Scope) -> bool {
        matches!(self, Caller::ApiKey { active, .. } if active.contains(&scope))
    }

    /// The refusal of an act that needs one of `scopes`: `partner_suspended` if the caller's
    /// key holds one of them and only its partner's suspension stands in the way, else
    /// `refused`.
    fn refusal(&self, scopes: &[Scope], refused: ApiError) -> ApiError {
        match self {
            Caller::ApiKey {
                api_key,
                partner: Some(p),
                ..
            } if p.suspended.is_some() && scopes.iter().any(|s| api_key.scopes.contains(s)) => {
                ApiError::PartnerSuspended(p.id)
            }
            _ => refused,
        }
    }

    /// Refuses unless the caller may reverse `entry` at `now`: an administrator any entry; a
    /// partner its own entry, with the scope that made it, within `window` of its recording.
    pub fn may_reverse(
        &self,
        entry: &Entry,
        window: chrono::Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        let own = matches!(self, Caller::ApiKey { partner: Some(p), .. } if p.id == entry.actor);
        let scope = match &entry.body {
            EntryBody::Move(m) if m.kind == MovementKind::Earn => Some(Scope::Earn),
            EntryBody::Move(m) if m.kind == MovementKind::Spend => Some(Scope::Spend),
            EntryBody::Open { .. } => Some(Scope::Earn),
            // Nothing else a partner makes is reversible (the ledger says so), but the partner
            // is still told why by the ledger, if it holds any scope at all.
            _ => None,
        };
        let scoped = match scope {
            Some(s) => self.has(s),
            None => self.has(Scope::Earn) || self.has(Scope::Spend),
        };
        if !own || !scoped {
            let refused = ApiError::Forbidden(
                "only the partner that made an entry, with a key holding the scope that made it \
                 (earn or spend), or an administrator, may reverse it"
                    .into(),
            );
            let needed = match &scope {
                Some(s) => std::slice::from_ref(s),
                None => &[Scope::Earn, Scope::Spend],
            };
            return Err(self.refusal(needed, refused));
        }
        let deadline = entry.recorded + window;
        if now > deadline {
            return Err(ApiError::ReversalWindowPassed(format!(
                "entry {} could be reversed by its partner until {deadline}; ask an administrator",
                entry.id
            )));
        }
        Ok(())
    }

    /// Refuses unless the caller may manage the credential of a member `registered_by` a
    /// partner (after [`Operation::ManageCredential`]): an administrator any member's, a partner
    /// only those it registered.
    pub fn may_manage_member(&self, registered_by: Uuid) -> Result<(), ApiError> {
        if self.is_admin() || self.actor() == registered_by {
            return Ok(());
        }
        Err(ApiError::Forbidden(
            "only an administrator or the partner that registered a member may manage its \
             credential"
                .into(),
        ))
    }

    /// Refuses unless the caller may act on partner `id`'s account that `scope` works on (its
    /// budget for `earn`, its venue account for `spend`): an administrator on any partner's, a
    /// partner key only on its own, with `scope` active.
    pub fn may_act_for(&self, id: Uuid, scope: Scope) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        match self.partner_account(scope) {
            Ok((own, _)) if own == id => Ok(()),
            Err(ApiError::PartnerSuspended(p)) => Err(ApiError::PartnerSuspended(p)),
            _ => {
                let (scope, account) = match scope {
                    Scope::Earn => ("earn", "budget"),
                    _ => ("spend", "venue account"),
                };
                Err(ApiError::Forbidden(format!(
                    "only an administrator, or partner {id} with a key holding the `{scope}` \
                     scope on an open account, may act on its {account}"
                )))
            }
        }
    }

    /// The API key's id, for per-key throttling.
    pub fn api_key_id(&self) -> Option<Uuid> {
        match self {
            Caller::ApiKey { api_key, .. } => Some(api_key.id),
            Caller::Member(_) => None,
        }
    }

    /// Refuses unless the caller may perform `operation` according to [`PERMISSIONS`].
    pub fn permit(&self, operation: Operation) -> Result<(), ApiError> {
        let (_, allowed, what) = PERMISSIONS
            .iter()
            .find(|(op, ..)| *op == operation)
            .ok_or_else(|| ApiError::Internal(format!("{operation:?} has no permission")))?;
        let permitted = match (allowed, self) {
            (Allowed::Scopes(scopes), Caller::ApiKey { .. }) => scopes.iter().any(|s| self.has(*s)),
            (Allowed::Member, Caller::Member(_)) => true,
            _ => false,
        };
        if permitted {
            return Ok(());
        }
        Err(match allowed {
            Allowed::Member => ApiError::Forbidden(format!(
                "only a member, with their member credential, may {what}"
            )),
            Allowed::Scopes(scopes) => self.refusal(scopes, forbidden(what)),
        })
    }

    /// Whether the caller may read everything (administrators and auditors).
    pub fn reads_all(&self) -> bool {
        self.has(Scope::Admin) || self.has(Scope::Audit)
    }

    /// The partner behind a key with active `scope`, and the account that scope works on (its
    /// budget for `earn`, its venue account for `spend`); call it after [`Caller::permit`].
    pub fn partner_account(&self, scope: Scope) -> Result<(Uuid, AccountId), ApiError> {
        let Caller::ApiKey {
            partner: Some(p), ..
        } = self
        else {
            return Err(forbidden("act as a partner"));
        };
        let account = match scope {
            Scope::Earn => p.budget_account,
            Scope::Spend => p.venue_account,
            Scope::Admin | Scope::Audit => None,
        };
        match account {
            Some(a) if self.has(scope) => Ok((p.id, AccountId(a))),
            _ => Err(self.refusal(&[scope], forbidden("act with this scope"))),
        }
    }

    /// The member behind a member credential (after [`Caller::permit`] of a member operation).
    pub fn member_account(&self) -> Result<AccountId, ApiError> {
        match self {
            Caller::Member(m) => Ok(AccountId(m.account)),
            Caller::ApiKey { .. } => Err(forbidden("act as a member")),
        }
    }

    /// The partner whose rows of an impact report the caller may read, given the one it asked
    /// for: administrators and auditors any (or all, `None`), a partner key only its own (its
    /// rows whether or not it asked, even with its accounts closed: a report is a read), a
    /// member none.
    pub fn report_partner(&self, asked: Option<Uuid>) -> Result<Option<Uuid>, ApiError> {
        match self {
            _ if self.reads_all() => Ok(asked),
            Caller::ApiKey {
                partner: Some(p), ..
            } if asked.is_none_or(|id| id == p.id) => Ok(Some(p.id)),
            Caller::ApiKey {
                partner: Some(_), ..
            } => Err(forbidden("read another partner's report")),
            _ => Err(forbidden("read impact reports")),
        }
    }

    /// Whether the caller may see partner `id`: readers all, a partner itself, members every
    /// partner (the charities and venues they give time to and spend at are public).
    pub fn may_see_partner(&self, id: Uuid) -> bool {
        match self {
            _ if self.reads_all() => true,
            Caller::Member(_) => true,
            Caller::ApiKey {
                partner: Some(p), ..
            } => p.id == id,
            Caller::ApiKey { .. } => false,
        }
    }

    /// Refuses unless the caller may list the members partner `id` registered: an
    /// administrator, or the partner itself. A caller that may not even see the partner is
    /// told it is not found.
    pub fn may_list_members(&self, id: Uuid) -> Result<(), ApiError> {
        let itself = matches!(self, Caller::ApiKey { partner: Some(p), .. } if p.id == id);
        if self.is_admin() || itself {
            Ok(())
        } else if self.may_see_partner(id) {
            Err(forbidden("list another partner's members"))
        } else {
            Err(ApiError::PartnerNotFound(not_visible("partner", id)))
        }
    }

    /// Refuses unless the caller may read partner `id`'s year-end statement (its books): an
    /// administrator or auditor, or the partner itself. A member, who may see the partner but
    /// not its books, is refused; a caller that may not even see the partner is told it is not
    /// found.
    pub fn may_read_statement(&self, id: Uuid) -> Result<(), ApiError> {
        let itself = matches!(self, Caller::ApiKey { partner: Some(p), .. } if p.id == id);
        if self.reads_all() || itself {
            Ok(())
        } else if self.may_see_partner(id) {
            Err(forbidden("read another partner's statement"))
        } else {
            Err(ApiError::PartnerNotFound(not_visible("partner", id)))
        }
    }

    /// Whether the caller may see the personal data of member `member`, registered by
    /// `registered_by`: administrators, the registering partner (any of its keys) and the
    /// member themself; not auditors, who read the pseudonymous ledger only.
    pub fn may_see_member_data(&self, registered_by: Uuid, member: Uuid) -> bool {
        match self {
            _ if self.is_admin() => true,
            Caller::Member(m) => m.account == member,
            Caller::ApiKey {
                partner: Some(p), ..
            } => p.id == registered_by,
            Caller::ApiKey { .. } => false,
        }
    }

    /// Whether the caller may see this account, whose keeper (the partner owning a budget or
    /// venue account, or that registered a member's wallet: `Registry::keeper_of`) is
    /// `keeper`: readers all, members their own wallet, partners the accounts they keep.
    pub fn may_see_account(&self, account: &AccountState, keeper: Option<Uuid>) -> bool {
        match self {
            _ if self.reads_all() => true,
            Caller::Member(m) => account.id.0 == m.account,
            Caller::ApiKey {
                partner: Some(p), ..
            } => keeper == Some(p.id),
            Caller::ApiKey { .. } => false,
        }
    }

    /// Whether the caller may see this entry: readers all, others the entries they took part in
    /// (as actor or as the keeper of an account it touches, `keeper_of`: so a partner sees
    /// every entry in the history of a member it registered).
    pub fn may_see_entry(
        &self,
        entry: &Entry,
        keeper_of: impl Fn(AccountId) -> Option<Uuid>,
    ) -> bool {
        if self.reads_all() {
            return true;
        }
        let accounts = entry.body.accounts();
        match self {
            Caller::Member(m) => accounts.contains(&AccountId(m.account)),
            Caller::ApiKey {
                partner: Some(p), ..
            } => {
                entry.actor == p.id
                    || accounts.iter().any(|a| keeper_of(*a) == Some(p.id))
                    || matches!(entry.body, EntryBody::Open { owner: Some(o), .. } if o == p.id)
            }
            Caller::ApiKey { .. } => false,
        }
    }

    /// Whether this is an administrator (who may reverse any entry at any time).
    pub fn is_admin(&self) -> bool {
        self.has(Scope::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Role;

    /// An operation missing from the table is refused with a 500 by `permit` (and the black-box
    /// permission matrix calls every one); here: none is listed twice.
    #[test]
    fn no_operation_is_in_the_permission_table_twice() {
        for (i, (op, ..)) in PERMISSIONS.iter().enumerate() {
            assert!(PERMISSIONS[i + 1..].iter().all(|(o, ..)| o != op), "{op:?}");
        }
    }

    #[test]
    fn a_partner_scope_whose_account_is_closed_is_not_active() {
        let (budget, venue) = (Uuid::now_v7(), Uuid::now_v7());
        let partner = Partner {
            id: Uuid::now_v7(),
            name: "p".into(),
            roles: vec![Role::Earn, Role::Spend],
            budget_account: Some(budget),
            venue_account: Some(venue),
            created: chrono::Utc::now(),
            suspended: None,
        };
        let key = ApiKey {
            id: Uuid::now_v7(),
            label: "k".into(),
            principal: Principal::Partner { id: partner.id },
            scopes: vec![Scope::Earn, Scope::Spend],
            created: chrono::Utc::now(),
            revoked: None,
        };
        let open_except = |closed: Uuid| move |a: Uuid| Ok(a != closed);
        let active = Caller::active(&key, Some(&partner), open_except(budget)).unwrap();
        assert_eq!(active, vec![Scope::Spend]);
        let active = Caller::active(&key, Some(&partner), open_except(venue)).unwrap();
        assert_eq!(active, vec![Scope::Earn]);
        // A narrowed key keeps only its own scopes.
        let narrowed = ApiKey {
            scopes: vec![Scope::Spend],
            ..key
        };
        let active = Caller::active(&narrowed, Some(&partner), |_| Ok(true)).unwrap();
        assert_eq!(active, vec![Scope::Spend]);
    }
}
