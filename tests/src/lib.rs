//! Helpers shared by the black-box tests and their child processes: the server harness
//! ([`server`]) and an HTTP client with the usual setup ([`client`]).

pub mod client;
pub mod server;

use timecredits_domain::{AccountId, AccountKind, EntryBody};
use timecredits_ledger::{Ledger, LedgerError};

/// The first account of `kind` opened in the ledger, found by reading entries from the start.
pub fn first_account(ledger: &Ledger, kind: AccountKind) -> Result<Option<AccountId>, LedgerError> {
    for seq in 0..ledger.size()? {
        if let Some(entry) = ledger.entry(seq)? {
            if let EntryBody::Open {
                account,
                account_kind,
                ..
            } = entry.body
            {
                if account_kind == kind {
                    return Ok(Some(account));
                }
            }
        }
    }
    Ok(None)
}
