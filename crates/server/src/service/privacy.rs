//! Members' privacy: their profile (the `profiles` store, never the ledger), the erasure of
//! their personal data on request, and the export of everything the service holds about them.
//!
//! Who sees a member's data is [`Caller::may_see_member_data`]: administrators, the partner that
//! registered the member, and the member; anyone else is told there is no member *they* may
//! read, whether it exists or not. After an erasure every one of these answers 410
//! `member_erased`, and a repeat of the erasure answers as the first did.
//!
//! An erasure needs the member to have left first (`POST /v1/members/{id}/leave`, which says
//! where their credits go and closes the wallet): it never moves credits itself, so the ledger
//! is not written and the pseudonymous entries stay as they are, signed.

use timecredits_domain::profile::Profile;
use timecredits_domain::{AccountId, AccountState, AccountStatus, Entry, IdempotencyKey};
use timecredits_ledger::HistoryQuery;
use uuid::Uuid;

use super::{begin, begin_registry_write, Remembered};
use crate::auth::{not_visible, Caller};
use crate::problem::ApiError;
use crate::registry::{CredentialStatus, Erasure, Member, Partner, Previous, RequestRef};
use crate::AppState;

/// The most wallet entries a data export holds; a member with more is told to page their
/// history (`GET /v1/accounts/{id}/entries`) instead. At one entry a minute for a year, 500,000.
pub const MAX_EXPORT_ENTRIES: usize = 100_000;

/// Member `id`, if `caller` may see their data (else 404 that claims nothing) and it was not
/// erased (else 410).
fn visible_member(state: &AppState, caller: &Caller, id: Uuid) -> Result<Member, ApiError> {
    let hidden = || ApiError::MemberNotFound(not_visible("member", id));
    let member = state.registry.member(id).ok_or_else(hidden)?;
    if !caller.may_see_member_data(member.registered_by, id) {
        return Err(hidden());
    }
    if let Some(erasure) = state.registry.erasure(id) {
        return Err(erased(&erasure));
    }
    Ok(member)
}

fn erased(erasure: &Erasure) -> ApiError {
    ApiError::MemberErased(format!(
        "the personal data of member {} was erased on {}; their pseudonymous entries stay in \
         the ledger",
        erasure.member_id,
        erasure.erased.format("%Y-%m-%d")
    ))
}

/// Member `id`'s profile (`None`: none was written).
pub fn profile(state: &AppState, caller: &Caller, id: Uuid) -> Result<Option<Profile>, ApiError> {
    visible_member(state, caller, id)?;
    Ok(state.profiles.get(id))
}

/// Writes member `id`'s whole profile; `fingerprint` identifies the request. Returns the stored
/// profile and whether this answers a repeat (which writes nothing).
pub fn put_profile(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
    profile: Profile,
) -> Result<(Profile, bool), ApiError> {
    visible_member(state, caller, id)?;
    let actor = caller.actor();
    let _guard = begin(state, actor, idempotency_key, Remembered::Profiles)?;
    let key = idempotency_key.as_str();
    match state.profiles.previous(actor, key, &fingerprint) {
        Previous::Different => Err(ApiError::IdempotencyKeyReused(key.to_owned())),
        Previous::Same(_) => {
            let stored = state.profiles.get(id).ok_or_else(|| {
                ApiError::Internal(format!("member {id}'s profile write is remembered, not it"))
            })?;
            Ok((stored, true))
        }
        Previous::None => {
            let request = RequestRef {
                actor,
                key: key.to_owned(),
                fingerprint,
            };
            state.profiles.put(id, profile.clone(), request)?;
            Ok((profile, false))
        }
    }
}

/// Erases member `id`'s personal data (see the module documentation); `fingerprint`
/// identifies the request. Returns the erasure's record and whether it was recorded before
/// (by this request or another): a repeat answers with the same record.
pub fn erase(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
) -> Result<(Erasure, bool), ApiError> {
    let hidden = || ApiError::MemberNotFound(not_visible("member", id));
    let member = state.registry.member(id).ok_or_else(hidden)?;
    if !caller.may_see_member_data(member.registered_by, id) {
        return Err(hidden());
    }
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    let earlier = state.registry.erasure(id);
    if earlier.is_none() {
        let wallet = state.ledger.account_status(AccountId(id))?;
        if wallet != Some(AccountStatus::Closed) {
            return Err(ApiError::MemberNotLeft(format!(
                "member {id}'s wallet is open: record their leaving first (POST \
                 /v1/members/{id}/leave says where their credits go), then erase their data"
            )));
        }
    }
    let replayed = earlier.is_some();
    let erasure = match earlier {
        Some(erasure) => erasure,
        None => state.registry.erase_member(id, write.request)?,
    };
    // Made again by a repeat, in case a crash came between the record and the rewrite (the
    // start does it too).
    state.profiles.forget(id)?;
    Ok((erasure, replayed))
}

/// Everything the service holds about a member.
#[derive(Debug)]
pub struct MemberData {
    /// The registry's record, with the registering partner's reference.
    pub member: Member,
    /// The registering partner (`None`: an administrator registered the member).
    pub registered_by: Option<Partner>,
    /// Their credential's public record.
    pub credential: CredentialStatus,
    /// Their profile, if one was written.
    pub profile: Option<Profile>,
    /// Their wallet.
    pub wallet: AccountState,
    /// Every entry of their wallet's history, newest first.
    pub entries: Vec<Entry>,
}

/// Everything held about member `id`, for the member, the registering partner or an
/// administrator.
pub fn data(state: &AppState, caller: &Caller, id: Uuid) -> Result<MemberData, ApiError> {
    let member = visible_member(state, caller, id)?;
    let account = AccountId(id);
    let wallet = state
        .ledger
        .account(account)?
        .ok_or_else(|| ApiError::Internal(format!("member {id} has no wallet")))?;
    let mut entries = Vec::new();
    let mut before = None;
    loop {
        let query = HistoryQuery {
            before,
            limit: HistoryQuery::MAX_LIMIT,
            kinds: vec![],
            from: None,
            to: None,
        };
        let page = state.ledger.history(account, &query)?;
        entries.extend(page.entries);
        if entries.len() > MAX_EXPORT_ENTRIES {
            return Err(ApiError::InvalidRequest(format!(
                "member {id}'s wallet has more than {MAX_EXPORT_ENTRIES} entries: page them \
                 with GET /v1/accounts/{id}/entries"
            )));
        }
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    let credential = state
        .registry
        .credential_status(id)
        .ok_or_else(|| ApiError::Internal(format!("member {id} has no credential record")))?;
    Ok(MemberData {
        registered_by: state.registry.partner(member.registered_by),
        credential,
        profile: state.profiles.get(id),
        wallet,
        entries,
        member,
    })
}
