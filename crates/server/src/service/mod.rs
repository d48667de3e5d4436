//! The orchestration of the API's writes, without HTTP: what a request does once its handler
//! has authenticated the caller and parsed the body, and before the handler turns the outcome
//! into a response. Nothing here knows actix; each operation is tested on a bare [`AppState`].
//!
//! Every write starts here, under its idempotency key, and nowhere else: `begin` (private to
//! this module, so the operations below are its only callers; handlers of plain ledger writes
//! call [`submit`]) marks it in flight (a concurrent repeat gets 409) and refuses a key the
//! caller already used for another kind of write. Where each kind of write is remembered, and
//! answers its own repeats, is `Remembered`.

pub mod accounts;
pub mod allocations;
pub mod api_keys;
pub mod cards;
pub mod expiries;
pub mod members;
pub mod partners;
pub mod privacy;
pub mod redemptions;
pub mod reports;
pub mod reversals;
pub mod settlements;
pub mod sheets;
pub mod signing_keys;
pub mod spend_codes;
pub mod staff_logins;
pub mod statements;

use timecredits_domain::{
    AccountId, Balance, EntryBody, IdempotencyKey, Intent, Minutes, RuleViolation,
};
use timecredits_ledger::{Committed, Request};
use uuid::Uuid;

use crate::auth::Caller;
use crate::idempotency::InFlightGuard;
use crate::problem::ApiError;
use crate::registry::{Previous, RequestRef};
use crate::AppState;

/// Where a kind of write is remembered under its idempotency key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Remembered {
    /// Entries: in the ledger's (actor, idempotency key) index.
    Ledger,
    /// API keys and revocations: in the registry.
    Registry,
    /// Spend codes: in the spend-code table.
    SpendCodes,
    /// Members' profiles: in the profile store.
    Profiles,
    /// A member's leaving: its entries in the ledger, which answers repeats, then the
    /// revocation of their credential in the registry under the same key.
    LedgerThenRegistry,
}

impl Remembered {
    fn uses(self, store: Remembered) -> bool {
        self == store
            || (self == Remembered::LedgerThenRegistry
                && matches!(store, Remembered::Ledger | Remembered::Registry))
    }
}

/// Starts a write under (actor, idempotency key): marks it in flight (409 for a concurrent
/// repeat) and refuses a key that another kind of write by the same caller already used, since
/// keys are scoped to the caller, not to the endpoint. Each store then answers repeats of its
/// own writes.
fn begin<'a>(
    state: &'a AppState,
    actor: Uuid,
    idempotency_key: &IdempotencyKey,
    here: Remembered,
) -> Result<InFlightGuard<'a>, ApiError> {
    let guard = state.in_flight.begin(actor, idempotency_key)?;
    let k = idempotency_key.as_str();
    let used_elsewhere = (!here.uses(Remembered::Ledger)
        && state
            .ledger
            .previous_request(actor, idempotency_key)?
            .is_some())
        || (!here.uses(Remembered::Registry) && state.registry.knows(actor, k))
        || (!here.uses(Remembered::SpendCodes) && state.spend_codes.knows(actor, k))
        || (!here.uses(Remembered::Profiles) && state.profiles.knows(actor, k));
    if used_elsewhere {
        return Err(ApiError::IdempotencyKeyReused(k.to_owned()));
    }
    Ok(guard)
}

/// A registry write under way: in flight until dropped, and told what an earlier request under
/// its idempotency key did.
struct RegistryWrite<'a> {
    _in_flight: InFlightGuard<'a>,
    /// What an earlier request with the same idempotency key did (never
    /// [`Previous::Different`]: that is refused).
    previous: Previous,
    /// The record the registry keeps of this request, to answer its repeats.
    request: RequestRef,
}

/// Starts a registry write by `actor` whose request is identified by `fingerprint`: as
/// [`begin`], and refuses a different request under an idempotency key already used.
fn begin_registry_write<'a>(
    state: &'a AppState,
    actor: Uuid,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
) -> Result<RegistryWrite<'a>, ApiError> {
    let in_flight = begin(state, actor, idempotency_key, Remembered::Registry)?;
    let previous = state
        .registry
        .previous(actor, idempotency_key.as_str(), &fingerprint);
    if let Previous::Different = previous {
        return Err(ApiError::IdempotencyKeyReused(
            idempotency_key.as_str().into(),
        ));
    }
    Ok(RegistryWrite {
        _in_flight: in_flight,
        previous,
        request: RequestRef {
            actor,
            key: idempotency_key.as_str().to_owned(),
            fingerprint,
        },
    })
}

/// Submits a request to the ledger on behalf of `caller`, refusing a concurrent repeat.
pub async fn submit(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    intents: Vec<Intent>,
) -> Result<Committed, ApiError> {
    let _guard = begin(state, caller.actor(), idempotency_key, Remembered::Ledger)?;
    commit(state, caller, idempotency_key, intents).await
}

/// Submits a request to the ledger as `actor` (a write of the service's own, with no caller: the
/// expiry sweep), refusing a concurrent repeat. Blocking: from a thread that may wait, not an
/// async worker.
fn submit_blocking_as(
    state: &AppState,
    actor: Uuid,
    idempotency_key: &IdempotencyKey,
    intents: Vec<Intent>,
) -> Result<Committed, ApiError> {
    let _guard = begin(state, actor, idempotency_key, Remembered::Ledger)?;
    let request = Request {
        actor,
        key: idempotency_key.clone(),
        intents,
    };
    Ok(state.ledger.submit_blocking(request)?)
}

/// What an earlier request by `caller` under `idempotency_key` moved: `None` if there was no
/// such request, `Some(None)` if it moved nothing, else the minutes of its first movement. A
/// write whose amount is "everything the account holds" asks this first, so that its repeat
/// asks for what the first request moved (the balance is zero by then) and is answered.
fn moved_before(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
) -> Result<Option<Option<Minutes>>, ApiError> {
    let previous = state
        .ledger
        .previous_request(caller.actor(), idempotency_key)?;
    Ok(previous.map(|entries| {
        entries.iter().find_map(|e| match &e.body {
            EntryBody::Move(m) => Some(m.minutes),
            _ => None,
        })
    }))
}

/// The balance of `account`, which must exist.
fn balance(state: &AppState, account: AccountId) -> Result<Balance, ApiError> {
    Ok(state
        .ledger
        .account(account)?
        .ok_or(ApiError::Rule(RuleViolation::UnknownAccount(account)))?
        .balance)
}

/// Submits a request to the ledger for a write that already holds its in-flight guard.
async fn commit(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    intents: Vec<Intent>,
) -> Result<Committed, ApiError> {
    let request = Request {
        actor: caller.actor(),
        key: idempotency_key.clone(),
        intents,
    };
    Ok(state.ledger.submit(request).await?)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A service on a temporary data directory, and callers to act on it.

    use chrono::Utc;
    use timecredits_domain::IdempotencyKey;
    use uuid::Uuid;

    use crate::auth::Caller;
    use crate::registry::{ApiKey, Partner, Principal, Scope};
    use crate::{AppState, Settings};

    /// A new service's state, with the directory that holds it.
    pub fn open() -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        let state = AppState::open(&settings).unwrap();
        (dir, state)
    }

    /// An idempotency key.
    pub fn idempotency_key(text: &str) -> IdempotencyKey {
        IdempotencyKey::new(text).unwrap()
    }

    fn api_key(principal: Principal, scopes: Vec<Scope>) -> ApiKey {
        ApiKey {
            id: Uuid::now_v7(),
            label: "test".into(),
            principal,
            scopes,
            created: Utc::now(),
            revoked: None,
        }
    }

    /// An administrator.
    pub fn administrator() -> Caller {
        Caller::ApiKey {
            api_key: api_key(Principal::Administrator, vec![Scope::Admin]),
            partner: None,
            administrator: Uuid::now_v7(),
            active: vec![Scope::Admin],
        }
    }

    /// An API key of `partner` with `scopes`, all of them active.
    pub fn partner(partner: &Partner, scopes: Vec<Scope>) -> Caller {
        Caller::ApiKey {
            api_key: api_key(Principal::Partner { id: partner.id }, scopes.clone()),
            partner: Some(partner.clone()),
            administrator: Uuid::nil(),
            active: scopes,
        }
    }
}
