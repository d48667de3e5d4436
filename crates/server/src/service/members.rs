//! Registering a member: a wallet opened in the ledger, then the member recorded in the
//! registry with a credential derived from the server secret. Their credential's reissue and
//! revocation, and their leaving: the wallet emptied and closed, then the credential revoked.

use serde::{Deserialize, Serialize};
use timecredits_domain::{
    AccountId, AccountKind, AccountState, Details, Entry, EntryBody, IdempotencyKey, Intent,
    Minutes, MovementKind, ShortText, Transfer,
};
use timecredits_ledger::Committed;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{balance, begin, begin_registry_write, commit, moved_before, Remembered};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::registry::{CredentialStatus, Member, Previous, RequestRef};
use crate::AppState;

/// A member registered, or found again for a repeat.
#[derive(Debug)]
pub struct Registered {
    /// The member's id, which is also their wallet account's id.
    pub member_id: Uuid,
    /// Their credential; on a repeat, only while the replay window and the credential last.
    pub credential: Option<String>,
    /// The registering partner's reference for them.
    pub reference: Option<String>,
}

/// Registers a member on behalf of `caller` (an administrator or an earn partner), with the
/// caller's own `reference` for them: [`register_many`] of one.
pub async fn register(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    reference: Option<ShortText>,
) -> Result<(Registered, Committed), ApiError> {
    let (mut members, committed) =
        register_many(state, caller, idempotency_key, vec![reference]).await?;
    let member = members
        .pop()
        .ok_or_else(|| ApiError::Internal("a registration opened no wallet".into()))?;
    Ok((member, committed))
}

/// Registers a member for each of `references` (the caller's own reference for each, if any),
/// all in one ledger request: every wallet is opened, or none. A repeat must give the same
/// references: the ledger's `open` entries do not carry them, so the registry's records are what
/// tell the two apart.
pub async fn register_many(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    references: Vec<Option<ShortText>>,
) -> Result<(Vec<Registered>, Committed), ApiError> {
    let actor = caller.actor();
    let intent = Intent::Open {
        account_kind: AccountKind::Member,
        owner: None,
    };
    let reused = || ApiError::IdempotencyKeyReused(idempotency_key.as_str().into());
    // The guard is held until the members are recorded, so a concurrent repeat cannot race it.
    let _guard = begin(state, actor, idempotency_key, Remembered::Ledger)?;
    let intents = vec![intent; references.len()];
    let committed = commit(state, caller, idempotency_key, intents).await?;
    let references: Vec<Option<String>> = references
        .into_iter()
        .map(|r| r.map(|r| r.as_str().to_owned()))
        .collect();
    if committed.entries.len() != references.len() {
        return Err(reused());
    }
    // Checked for all before any is recorded: a repeat with other references changes nothing.
    let mut opened = Vec::with_capacity(references.len());
    for (entry, reference) in committed.entries.iter().zip(&references) {
        let EntryBody::Open { account, .. } = entry.body else {
            return Err(reused());
        };
        let known = state.registry.member(account.0);
        if known.as_ref().is_some_and(|m| &m.reference != reference) {
            return Err(reused());
        }
        opened.push((account.0, entry.recorded, known.is_some()));
    }
    let mut registered = Vec::with_capacity(opened.len());
    for ((account, recorded, known), reference) in opened.into_iter().zip(references) {
        let credential = if known {
            let window = state.credential_replay_window;
            state.registry.replay_credential(account, None, window)
        } else {
            Some(state.registry.add_member(Member {
                account,
                registered_by: actor,
                registered: recorded,
                reference: reference.clone(),
            })?)
        };
        registered.push(Registered {
            member_id: account,
            credential,
            reference,
        });
    }
    Ok((registered, committed))
}

/// A member of a partner's list: the registry's record, their wallet, and the latest entry
/// in its history.
#[derive(Debug)]
pub struct Listed {
    /// The registry's record (with the registering partner's reference).
    pub member: Member,
    /// The wallet's state: balance and status.
    pub wallet: AccountState,
    /// The newest entry touching the wallet (its opening, at least).
    pub last_entry: Entry,
}

/// Up to `limit` members registered by `registrar`, oldest first, after member `after`, and
/// whether more follow. Each costs one keyed read of the ledger (the account, which names its
/// newest entry) and one entry read: a page's cost does not grow with the ledger.
pub fn registered_by(
    state: &AppState,
    registrar: Uuid,
    after: Option<Uuid>,
    limit: usize,
) -> Result<(Vec<Listed>, bool), ApiError> {
    let (members, more) = state
        .registry
        .members_registered_by(registrar, after, limit);
    let listed = members
        .into_iter()
        .map(|member| {
            let (wallet, newest) = state
                .ledger
                .account_and_newest(AccountId(member.account))?
                .ok_or_else(|| {
                    ApiError::Internal(format!("member {} has no wallet", member.account))
                })?;
            let last_entry = state.ledger.entry(newest)?.ok_or_else(|| {
                ApiError::Internal(format!(
                    "member {}'s newest entry is missing",
                    member.account
                ))
            })?;
            Ok(Listed {
                member,
                wallet,
                last_entry,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok((listed, more))
}

/// When member `id`'s credential was last revoked or reissued (the first credential, given at
/// registration, changed nothing): the spend codes made before are void.
pub fn credential_changed(state: &AppState, id: Uuid) -> Option<chrono::DateTime<chrono::Utc>> {
    let status = state.registry.credential_status(id)?;
    status
        .revoked
        .or((status.generation > 0).then_some(status.issued))
}

/// Checks that `caller` (allowed to manage credentials) may manage member `id`'s: an
/// administrator any member's, a partner those it registered.
fn managed_member(state: &AppState, caller: &Caller, id: Uuid) -> Result<Member, ApiError> {
    let member = state
        .registry
        .member(id)
        .ok_or_else(|| ApiError::MemberNotFound(format!("member {id} does not exist")))?;
    caller.may_manage_member(member.registered_by)?;
    Ok(member)
}

fn status(state: &AppState, id: Uuid) -> Result<CredentialStatus, ApiError> {
    state
        .registry
        .credential_status(id)
        .ok_or_else(|| ApiError::Internal(format!("member {id} has no credential record")))
}

/// A member's credential reissued, or found again for a repeat.
#[derive(Debug)]
pub struct Reissued {
    /// The new credential; on a repeat, only while the replay window and the credential last.
    pub credential: Option<String>,
    /// The new credential's public record.
    pub status: CredentialStatus,
    /// Whether this answers a repeat of the request that reissued it.
    pub replayed: bool,
}

/// Gives member `id` a new credential and revokes the previous one; `fingerprint` identifies
/// the request.
pub fn reissue_credential(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
) -> Result<Reissued, ApiError> {
    managed_member(state, caller, id)?;
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    let (credential, replayed) = match write.previous {
        Previous::Same(_) => {
            let repeat = Some((caller.actor(), idempotency_key.as_str()));
            let window = state.credential_replay_window;
            let credential = state.registry.replay_credential(id, repeat, window);
            (credential, true)
        }
        // `begin_registry_write` refused `Different`.
        Previous::None | Previous::Different => {
            let credential = state
                .registry
                .reissue_member_credential(id, write.request)?;
            (Some(credential), false)
        }
    };
    Ok(Reissued {
        credential,
        status: status(state, id)?,
        replayed,
    })
}

/// Revokes member `id`'s credential (a revoked one stays revoked); `fingerprint` identifies the
/// request. Returns the credential's record and whether this answers a repeat.
pub fn revoke_credential(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
) -> Result<(CredentialStatus, bool), ApiError> {
    managed_member(state, caller, id)?;
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    let replayed = matches!(write.previous, Previous::Same(_));
    if status(state, id)?.revoked.is_none() {
        state.registry.revoke_member_credential(id, write.request)?;
    }
    Ok((status(state, id)?, replayed))
}

/// Where a leaving member's remaining credits go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Remaining {
    /// Retired to the programme: out of circulation (`retire`).
    Retire,
    /// Given to another member (`gift`), whose wallet must be open.
    GiftTo(Uuid),
}

/// Member `id` leaves (see [`Caller::may_manage_member`] for who may say so): in one ledger
/// request, their remaining credits go where `remaining` says and their wallet is closed; then
/// their credential is revoked and their card, if they have one, blocked. `fingerprint`
/// identifies the request to the registry.
///
/// The ledger answers a repeat; the revocation and the block, made after the ledger's answer,
/// are made again by a repeat if they were not made the first time (a crash between the two).
pub async fn leave(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
    remaining: Remaining,
) -> Result<(Committed, CredentialStatus), ApiError> {
    managed_member(state, caller, id)?;
    let actor = caller.actor();
    let _guard = begin(
        state,
        actor,
        idempotency_key,
        Remembered::LedgerThenRegistry,
    )?;
    let wallet = AccountId(id);
    let minutes = match moved_before(state, caller, idempotency_key)? {
        Some(moved) => moved,
        None => Minutes::new(u64::try_from(balance(state, wallet)?).unwrap_or(0)).ok(),
    };
    let mut intents = Vec::with_capacity(2);
    if let Some(minutes) = minutes {
        let (kind, credit) = match remaining {
            Remaining::Retire => (MovementKind::Retire, state.ledger.programme_account()),
            Remaining::GiftTo(to) => (MovementKind::Gift, AccountId(to)),
        };
        intents.push(Intent::Transfer(Transfer {
            kind,
            debit: wallet,
            credit,
            minutes,
            effective: None,
            details: Details::default(),
        }));
    }
    intents.push(Intent::Close { account: wallet });
    let committed = commit(state, caller, idempotency_key, intents).await?;
    let request = RequestRef {
        actor,
        key: idempotency_key.as_str().to_owned(),
        fingerprint,
    };
    state.registry.record_leaving(id, request)?;
    Ok((committed, status(state, id)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing;

    #[actix_web::test]
    async fn a_repeat_finds_the_same_member_with_the_same_credential() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key("member-1");
        let (first, committed) = register(&state, &admin, &key, None).await.unwrap();
        assert!(first.credential.is_some() && !committed.replayed);
        let (again, committed) = register(&state, &admin, &key, None).await.unwrap();
        assert_eq!(
            (again.member_id, again.credential, committed.replayed),
            (first.member_id, first.credential, true)
        );
        let (other, _) = register(&state, &admin, &testing::idempotency_key("member-2"), None)
            .await
            .unwrap();
        assert_ne!(other.member_id, first.member_id);
    }

    #[actix_web::test]
    async fn a_repeat_with_another_reference_is_refused() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key("member-1");
        let reference = |r: &str| Some(ShortText::new("reference", r).unwrap());
        register(&state, &admin, &key, reference("M-1"))
            .await
            .unwrap();
        let other = register(&state, &admin, &key, reference("M-2")).await;
        assert!(matches!(other, Err(ApiError::IdempotencyKeyReused(_))));
        let (_, again) = register(&state, &admin, &key, reference("M-1"))
            .await
            .unwrap();
        assert!(again.replayed);
    }

    #[actix_web::test]
    async fn a_listed_member_carries_its_balance_and_last_entry() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let (first, committed) = register(&state, &admin, &key("a"), None).await.unwrap();
        register(&state, &admin, &key("b"), None).await.unwrap();
        let (page, more) = registered_by(&state, admin.actor(), None, 1).unwrap();
        assert!(more);
        let listed = &page[0];
        assert_eq!(listed.member.account, first.member_id);
        assert_eq!(listed.wallet.balance, 0);
        let opening = &committed.entries[0];
        assert_eq!(listed.last_entry.seq, opening.seq);
        let (rest, more) = registered_by(&state, admin.actor(), Some(first.member_id), 5).unwrap();
        assert_eq!((rest.len(), more), (1, false));
    }

    #[actix_web::test]
    async fn a_member_leaves_once_with_their_credits_and_loses_their_credential() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let (member, _) = register(&state, &admin, &key("m"), None).await.unwrap();
        let credential = member.credential.unwrap();
        let id = member.member_id;
        let (left, status) = leave(&state, &admin, &key("l"), "l".into(), id, Remaining::Retire)
            .await
            .unwrap();
        // An empty wallet: only its close.
        assert!(matches!(left.entries[..], [ref e] if matches!(e.body, EntryBody::Close { .. })));
        assert!(status.revoked.is_some());
        assert!(state.registry.member_by_credential(&credential).is_none());
        let (again, _) = leave(&state, &admin, &key("l"), "l".into(), id, Remaining::Retire)
            .await
            .unwrap();
        assert!(again.replayed);
        let twice = leave(
            &state,
            &admin,
            &key("l2"),
            "l2".into(),
            id,
            Remaining::Retire,
        )
        .await;
        assert_eq!(
            twice.unwrap_err().code(),
            crate::problem::Code::AccountClosed
        );
        let nobody = leave(
            &state,
            &admin,
            &key("n"),
            "n".into(),
            Uuid::now_v7(),
            Remaining::Retire,
        )
        .await;
        assert!(matches!(nobody, Err(ApiError::MemberNotFound(_))));
    }

    #[actix_web::test]
    async fn a_reissue_revokes_the_old_credential_and_a_revocation_is_kept() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let member = register(&state, &admin, &key("m"), None)
            .await
            .unwrap()
            .0
            .member_id;
        let nobody = reissue_credential(&state, &admin, &key("n"), "n".into(), Uuid::now_v7());
        assert!(matches!(nobody, Err(ApiError::MemberNotFound(_))));
        let reissued = reissue_credential(&state, &admin, &key("r"), "r".into(), member).unwrap();
        assert!(reissued.credential.is_some() && !reissued.replayed);
        let again = reissue_credential(&state, &admin, &key("r"), "r".into(), member).unwrap();
        assert!(again.replayed);
        assert_eq!(again.status.generation, reissued.status.generation);
        let (revoked, replayed) =
            revoke_credential(&state, &admin, &key("v"), "v".into(), member).unwrap();
        assert!(revoked.revoked.is_some() && !replayed);
        let (_, replayed) =
            revoke_credential(&state, &admin, &key("v"), "v".into(), member).unwrap();
        assert!(replayed);
    }
}
