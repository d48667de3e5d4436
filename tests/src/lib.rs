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

/// A tiny deterministic generator (xorshift), so that a failing randomised test can be repeated
/// from the seed it prints.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
