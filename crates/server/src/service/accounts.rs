//! Reading accounts, histories, entries and receipts as a caller may see them: the API's reads
//! and the pages' show the same things to the same people because both come here.

use std::collections::BTreeMap;

use timecredits_domain::{AccountId, AccountState, Entry};
use timecredits_ledger::HistoryQuery;
use uuid::Uuid;

use crate::auth::{not_visible, Caller};
use crate::problem::ApiError;
use crate::registry::Partner;
use crate::AppState;

/// Account `id` if `caller` may see it; else not found, in words that do not say whether it
/// exists.
pub fn visible_account(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<AccountState, ApiError> {
    state
        .ledger
        .account(AccountId(id))?
        .filter(|a| caller.may_see_account(a, state.registry.keeper_of(id)))
        .ok_or_else(|| ApiError::AccountNotFound(not_visible("account", id)))
}

/// A page of an account's history, with the partners whose accounts its entries touch.
#[derive(Debug)]
pub struct History {
    /// The entries, newest first.
    pub entries: Vec<Entry>,
    /// The partners owning the accounts the entries touch, by account.
    pub partners: BTreeMap<Uuid, Partner>,
    /// Where the next page starts, if there is one.
    pub next: Option<u64>,
}

/// A page of account `id`'s history, if `caller` may see the account.
pub fn history(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    query: &HistoryQuery,
) -> Result<History, ApiError> {
    let account = visible_account(state, caller, id)?;
    let page = state.ledger.history(account.id, query)?;
    let mut partners = BTreeMap::new();
    for account in page.entries.iter().flat_map(|e| e.body.accounts()) {
        if partners.contains_key(&account.0) {
            continue;
        }
        if let Some(partner) = state.registry.partner_owning(account.0) {
            partners.insert(account.0, partner);
        }
    }
    Ok(History {
        entries: page.entries,
        partners,
        next: page.next,
    })
}

/// Entry `id` if `caller` may see it.
pub fn visible_entry(state: &AppState, caller: &Caller, id: Uuid) -> Result<Entry, ApiError> {
    state
        .ledger
        .entry_by_id(id)?
        .filter(|e| caller.may_see_entry(e, |a| state.registry.keeper_of(a.0)))
        .ok_or_else(|| ApiError::EntryNotFound(not_visible("entry", id)))
}

/// The receipt of entry `id` (its inclusion proof and a signed checkpoint, as text), if
/// `caller` may see the entry.
pub fn receipt(state: &AppState, caller: &Caller, id: Uuid) -> Result<String, ApiError> {
    let entry = visible_entry(state, caller, id)?;
    Ok(state.ledger.receipt(entry.seq)?.to_text())
}
