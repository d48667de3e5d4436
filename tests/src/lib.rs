//! Helpers shared by the black-box tests and their child processes: the server harness
//! ([`server`]) and an HTTP client with the usual setup ([`client`]).

pub mod client;
pub mod server;

use timecredits_domain::{AccountId, AccountKind, EntryBody};
use timecredits_ledger::{Ledger, LedgerError};

/// The accounts of `kind` opened in the ledger, in the order they were opened, found by reading
/// its entries from the start.
pub fn accounts_of(ledger: &Ledger, kind: AccountKind) -> Result<Vec<AccountId>, LedgerError> {
    let mut accounts = Vec::new();
    for entry in ledger.entries(0..ledger.size()?)? {
        if let EntryBody::Open {
            account,
            account_kind,
            ..
        } = entry?.body
        {
            if account_kind == kind {
                accounts.push(account);
            }
        }
    }
    Ok(accounts)
}
