//! The rules every entry obeys, as pure functions of the state it touches.
//!
//! The ledger calls [`apply`] before committing an entry; the auditor's verifier calls it again
//! for every entry of an export. The caller looks up the accounts the entry touches (and, for a
//! reversal, the original movement; for an expiry, when the wallet was last used), and gets back
//! their new states or the rule the entry breaks. Nothing here reads storage, so the rules can be
//! tested exhaustively and replayed anywhere.
//!
//! # Expiry
//! An `expire` empties a member wallet nobody used for the scheme's expiry period, back to the
//! programme: credits leave circulation by an explicit entry, never by a silent drop. The entry
//! names the period it applied (`expiry_months`, N), so an auditor checks it with nothing but the
//! log. [`apply`] refuses an `expire`:
//! - from anything but a member wallet (its route);
//! - when any entry touched the wallet after the moment N calendar months (UTC) before the
//!   expire's own recording time ([`ExpiryTooEarly`](RuleViolation::ExpiryTooEarly)). "Use" is
//!   any entry that names the wallet: its opening, an earn, a spend, a gift in or out, a
//!   reversal, a retirement, an earlier expiry. Counting everything can only delay an expiry,
//!   never hasten one, and the member is never told "your gift from a friend did not count";
//! - unless it moves the whole balance
//!   ([`ExpiryNotWholeBalance`](RuleViolation::ExpiryNotWholeBalance)). Under "any entry is a
//!   use", every credit in a wallet unused for N months is at least N months old, so expiring
//!   only the old credits would expire the same amount; the whole balance needs no lot
//!   accounting (no first-in-first-out of who earned what when) and leaves nothing to argue
//!   about.
//!
//! So an expiry never takes a wallet below zero (it leaves exactly zero) and cannot repeat: it
//! is itself a use of the wallet, and the wallet it leaves holds nothing to expire.

use chrono::{DateTime, Days, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::amount::{Balance, Minutes};
use crate::entry::{AccountId, AccountKind, Entry, EntryBody, Movement, MovementKind};

/// Whether an account takes movements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Takes movements.
    Open,
    /// Closed for good: keeps its history, takes no movement and cannot reopen.
    Closed,
}

/// The current state of one account, derived from the entries that touched it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountState {
    /// The id its `open` entry assigned.
    pub id: AccountId,
    /// What the account is for, which fixes the movements it may take.
    pub kind: AccountKind,
    /// The partner a budget or venue account belongs to.
    pub owner: Option<uuid::Uuid>,
    /// Open or closed.
    pub status: AccountStatus,
    /// Balance in minutes. Negative only for the programme account.
    pub balance: Balance,
    /// Sequence number of the entry that opened the account.
    pub opened: u64,
}

impl AccountState {
    /// The lowest balance the rules allow: none for the programme, zero for everyone else.
    pub fn floor(&self) -> Option<Balance> {
        match self.kind {
            AccountKind::Programme => None,
            _ => Some(0),
        }
    }
}

/// What a reversal needs to know about the movement it reverses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Original {
    /// The sequence number of the entry to reverse.
    pub seq: u64,
    /// `None` if the entry at `seq` is not a movement (an open or close).
    pub movement: Option<Movement>,
    /// The sequence number of its reversal, if it was already reversed.
    pub reversed_by: Option<u64>,
}

/// A rule an entry breaks. Each is a refusal the client can understand and act on.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RuleViolation {
    /// The entry names an account no `open` entry created.
    #[error("account {0} does not exist")]
    UnknownAccount(AccountId),
    /// The account was closed; it takes no more movements.
    #[error("account {0} is closed")]
    AccountClosed(AccountId),
    /// An `open` for an id that is already taken.
    #[error("account {0} already exists")]
    AccountExists(AccountId),
    /// An account of the wrong kind for this side of the movement (e.g. an earn credited to a venue).
    #[error(
        "account {account} is a {found} account; a {movement} needs a {expected} account here"
    )]
    WrongAccountKind {
        /// The account named.
        account: AccountId,
        /// The movement asked for.
        movement: MovementKind,
        /// The kind this side of the movement needs.
        expected: AccountKind,
        /// The kind the account is.
        found: AccountKind,
    },
    /// The debit would take the account below its floor.
    #[error("account {account} holds {balance} minutes; {needed} are needed")]
    InsufficientCredits {
        /// The account debited.
        account: AccountId,
        /// What it holds now.
        balance: Balance,
        /// What the movement needs.
        needed: u64,
    },
    /// A `close` of an account that still holds credits (I1: an account closes only at 0).
    #[error(
        "account {account} still holds {balance} minutes; only an empty account can be closed: \
         retire (settle) or reverse its credits first"
    )]
    AccountNotEmpty {
        /// The account to close.
        account: AccountId,
        /// What it still holds.
        balance: Balance,
    },
    /// The programme account's `close`: it holds the negative of all credit in circulation.
    #[error("the programme account cannot be closed")]
    ProgrammeClosed,
    /// Entry 0 is not the programme's `open`, or a later entry tries to be.
    #[error("the first entry must open the programme account, and only it may")]
    Genesis,
    /// A reversal names an entry the log does not hold.
    #[error("entry {0} does not exist")]
    UnknownEntry(u64),
    /// A reversal names an entry that is not a movement it may undo: an open, a close, a key entry or a reversal.
    #[error("entry {0} is not a movement that can be reversed")]
    NotReversible(u64),
    /// The entry was reversed already; an entry is reversed at most once.
    #[error("entry {seq} was already reversed by entry {by}")]
    AlreadyReversed {
        /// The entry asked to be reversed.
        seq: u64,
        /// The reversal that already undid it.
        by: u64,
    },
    /// The reversal is not the mirror image (accounts swapped, same amount and kind) of its original.
    #[error("the reversal does not mirror entry {0} (accounts swapped, same amount)")]
    ReversalMismatch(u64),
    /// The effective day is later than the recording day allows ([`latest_effective_day`]).
    #[error("effective date {effective} is after the recording day {recorded}")]
    EffectiveInFuture {
        /// The day asked for.
        effective: NaiveDate,
        /// The day the entry is recorded.
        recorded: NaiveDate,
    },
    /// The movement would overflow the account's balance (I2: additions are checked).
    #[error("the balance of account {0} would overflow")]
    Overflow(AccountId),
    /// An `expire` of a wallet an entry touched within the expiry period before it.
    #[error(
        "wallet {account} was last used at {}: it expires only if unused since {unused_since}",
        last_use.map_or_else(|| "an unknown time".to_owned(), |t| t.to_string())
    )]
    ExpiryTooEarly {
        /// The wallet.
        account: AccountId,
        /// When an entry last touched it (`None`: its history was not given).
        last_use: Option<DateTime<Utc>>,
        /// The latest last use that allows the expiry: N months before the expire.
        unused_since: DateTime<Utc>,
    },
    /// An `expire` that does not move the wallet's whole balance.
    #[error(
        "wallet {account} holds {balance} minutes; an expiry moves all of them, not {minutes}"
    )]
    ExpiryNotWholeBalance {
        /// The wallet.
        account: AccountId,
        /// What it holds.
        balance: Balance,
        /// What the expire moves.
        minutes: u64,
    },
}

/// The day an effective date may be at most: the recording day plus one, so that a partner a few
/// time zones east of UTC can record time given "today".
pub fn latest_effective_day(recorded: &DateTime<Utc>) -> NaiveDate {
    let day = recorded.date_naive();
    day.checked_add_days(Days::new(1)).unwrap_or(day)
}

/// The new state of the accounts an entry touches, in the order of [`EntryBody::accounts`].
pub type Changes = Vec<AccountState>;

/// Checks `entry` against the current state of the accounts it touches and returns their new
/// states.
///
/// `accounts` must hold the current state of each account in [`EntryBody::accounts`], in order
/// (`None` for an account that does not exist). `original` must be given for a reversal, and
/// `last_use` for an expiry: the recording time of the newest entry that touched the debited
/// wallet (see [`last_use_needed`]; the module documentation says what counts as a use).
pub fn apply(
    entry: &Entry,
    accounts: &[Option<&AccountState>],
    original: Option<&Original>,
    last_use: Option<DateTime<Utc>>,
) -> Result<Changes, RuleViolation> {
    let genesis = entry.seq == 0;
    match &entry.body {
        EntryBody::Open {
            account,
            account_kind,
            owner,
        } => {
            if genesis != (*account_kind == AccountKind::Programme) {
                return Err(RuleViolation::Genesis);
            }
            if accounts.first().copied().flatten().is_some() {
                return Err(RuleViolation::AccountExists(*account));
            }
            Ok(vec![AccountState {
                id: *account,
                kind: *account_kind,
                owner: *owner,
                status: AccountStatus::Open,
                balance: 0,
                opened: entry.seq,
            }])
        }
        _ if genesis => Err(RuleViolation::Genesis),
        // Which keys may sign is the log format's business, not a balance rule.
        EntryBody::Key(_) => Ok(Vec::new()),
        EntryBody::Close { account } => {
            let state = open_account(*account, accounts.first().copied().flatten())?;
            if state.kind == AccountKind::Programme {
                return Err(RuleViolation::ProgrammeClosed);
            }
            if state.balance != 0 {
                return Err(RuleViolation::AccountNotEmpty {
                    account: *account,
                    balance: state.balance,
                });
            }
            Ok(vec![AccountState {
                status: AccountStatus::Closed,
                ..state.clone()
            }])
        }
        EntryBody::Move(m) => {
            let latest = latest_effective_day(&entry.recorded);
            if m.effective > latest {
                return Err(RuleViolation::EffectiveInFuture {
                    effective: m.effective,
                    recorded: entry.recorded.date_naive(),
                });
            }
            let debit = open_account(m.debit, accounts.first().copied().flatten())?;
            let credit = open_account(m.credit, accounts.get(1).copied().flatten())?;
            match m.kind.route() {
                Some((from, to)) => {
                    expect_kind(debit, m.kind, from)?;
                    expect_kind(credit, m.kind, &[to])?;
                }
                None => check_reversal(m, original)?,
            }
            if m.kind == MovementKind::Expire {
                check_expiry(entry, m, debit, last_use)?;
            }
            let debit = move_balance(debit, -m.minutes.as_balance(), m.minutes)?;
            let credit = move_balance(credit, m.minutes.as_balance(), m.minutes)?;
            Ok(vec![debit, credit])
        }
    }
}

fn open_account(
    id: AccountId,
    state: Option<&AccountState>,
) -> Result<&AccountState, RuleViolation> {
    let state = state.ok_or(RuleViolation::UnknownAccount(id))?;
    debug_assert_eq!(state.id, id, "caller passed the wrong account");
    if state.status == AccountStatus::Closed {
        return Err(RuleViolation::AccountClosed(id));
    }
    Ok(state)
}

/// Refuses an account whose kind is not one of `expected`; the refusal names the first, the
/// movement's usual source (a retirement's only refused source is the programme itself).
fn expect_kind(
    state: &AccountState,
    movement: MovementKind,
    expected: &[AccountKind],
) -> Result<(), RuleViolation> {
    if !expected.contains(&state.kind) {
        return Err(RuleViolation::WrongAccountKind {
            account: state.id,
            movement,
            expected: expected[0],
            found: state.kind,
        });
    }
    Ok(())
}

/// The account whose last use [`apply`] needs for `entry`: the wallet an `expire` empties.
pub fn last_use_needed(entry: &Entry) -> Option<AccountId> {
    match &entry.body {
        EntryBody::Move(m) if m.kind == MovementKind::Expire => Some(m.debit),
        _ => None,
    }
}

/// The moment a wallet must have been unused since for an expiry of `months` recorded at
/// `recorded`: `months` calendar months before it (UTC; the 31st falls back to the month's last
/// day). `None` only before the calendar's start, which no recording time is.
pub fn unused_since(recorded: DateTime<Utc>, months: u32) -> Option<DateTime<Utc>> {
    recorded.checked_sub_months(Months::new(months))
}

fn check_expiry(
    entry: &Entry,
    m: &Movement,
    wallet: &AccountState,
    last_use: Option<DateTime<Utc>>,
) -> Result<(), RuleViolation> {
    let months = m
        .details
        .expiry_months
        .expect("an expire names its period (Movement::new)");
    let unused_since = unused_since(entry.recorded, months).unwrap_or(DateTime::<Utc>::MIN_UTC);
    if last_use.is_none_or(|used| used > unused_since) {
        return Err(RuleViolation::ExpiryTooEarly {
            account: wallet.id,
            last_use,
            unused_since,
        });
    }
    if m.minutes.as_balance() != wallet.balance {
        return Err(RuleViolation::ExpiryNotWholeBalance {
            account: wallet.id,
            balance: wallet.balance,
            minutes: m.minutes.get(),
        });
    }
    Ok(())
}

fn check_reversal(m: &Movement, original: Option<&Original>) -> Result<(), RuleViolation> {
    let seq = m.reverses.expect("a reverse movement names its original");
    let original = match original {
        Some(o) if o.seq == seq => o,
        _ => return Err(RuleViolation::UnknownEntry(seq)),
    };
    let orig = match &original.movement {
        Some(o) if o.kind != MovementKind::Reverse => o,
        _ => return Err(RuleViolation::NotReversible(seq)),
    };
    if let Some(by) = original.reversed_by {
        return Err(RuleViolation::AlreadyReversed { seq, by });
    }
    if m.debit != orig.credit || m.credit != orig.debit || m.minutes != orig.minutes {
        return Err(RuleViolation::ReversalMismatch(seq));
    }
    Ok(())
}

fn move_balance(
    state: &AccountState,
    delta: Balance,
    minutes: Minutes,
) -> Result<AccountState, RuleViolation> {
    let balance = state
        .balance
        .checked_add(delta)
        .ok_or(RuleViolation::Overflow(state.id))?;
    if let Some(floor) = state.floor() {
        if balance < floor {
            return Err(RuleViolation::InsufficientCredits {
                account: state.id,
                balance: state.balance,
                needed: minutes.get(),
            });
        }
    }
    Ok(AccountState {
        balance,
        ..state.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::{day, text};
    use crate::entry::{Details, IdempotencyKey};
    use uuid::Uuid;

    fn entry(seq: u64, body: EntryBody) -> Entry {
        Entry {
            seq,
            id: Uuid::now_v7(),
            recorded: "2026-11-23T10:00:00Z".parse().unwrap(),
            actor: Uuid::nil(),
            key: IdempotencyKey::new(format!("k{seq}")).unwrap(),
            part: 0,
            body,
        }
    }

    fn account(kind: AccountKind, balance: Balance) -> AccountState {
        AccountState {
            id: AccountId::new(),
            kind,
            owner: kind.has_owner().then(Uuid::now_v7),
            status: AccountStatus::Open,
            balance,
            opened: 0,
        }
    }

    fn movement(
        kind: MovementKind,
        from: &AccountState,
        to: &AccountState,
        minutes: u64,
    ) -> Movement {
        let details = match kind {
            MovementKind::Earn => Details {
                activity: Some(text("garden")),
                ..Details::default()
            },
            MovementKind::Spend => Details {
                activity: Some(text("swim")),
                adults: Some(1),
                children: Some(0),
                ..Details::default()
            },
            MovementKind::Expire => Details {
                expiry_months: Some(12),
                ..Details::default()
            },
            _ => Details::default(),
        };
        Movement::new(
            kind,
            from.id,
            to.id,
            Minutes::new(minutes).unwrap(),
            day("2026-11-23"),
            None,
            details,
        )
        .unwrap()
    }

    fn apply_move(
        m: Movement,
        from: &AccountState,
        to: &AccountState,
    ) -> Result<Changes, RuleViolation> {
        apply(
            &entry(5, EntryBody::Move(m)),
            &[Some(from), Some(to)],
            None,
            None,
        )
    }

    #[test]
    fn each_movement_kind_goes_between_the_right_kinds() {
        use AccountKind::*;
        use MovementKind::*;
        let kinds = [Programme, Budget, Venue, Member];
        for mk in [Allocate, Earn, Spend, Gift, Retire, Expire] {
            let (from_kinds, to_kind) = mk.route().unwrap();
            for &fk in &kinds {
                for &tk in &kinds {
                    let from = account(fk, if fk == Programme { 0 } else { 600 });
                    let to = account(tk, 0);
                    let m = movement(mk, &from, &to, if mk == Expire { 600 } else { 60 });
                    let result = apply(
                        &entry(5, EntryBody::Move(m)),
                        &[Some(&from), Some(&to)],
                        None,
                        Some(long_ago()),
                    );
                    let allowed = from_kinds.contains(&fk) && tk == to_kind;
                    assert_eq!(result.is_ok(), allowed, "{mk} {fk}->{tk}: {result:?}");
                }
            }
        }
    }

    #[test]
    fn every_account_but_the_programme_may_retire_its_credits() {
        use AccountKind::*;
        let programme = account(Programme, -600);
        for kind in [Venue, Budget, Member] {
            let from = account(kind, 90);
            let m = movement(MovementKind::Retire, &from, &programme, 90);
            let changes = apply_move(m.clone(), &from, &programme).unwrap();
            assert_eq!(
                (changes[0].balance, changes[1].balance),
                (0, -510),
                "{kind}"
            );
            let short = AccountState {
                balance: 89,
                ..from.clone()
            };
            assert!(matches!(
                apply_move(m, &short, &programme),
                Err(RuleViolation::InsufficientCredits { .. })
            ));
        }
        let other = account(Programme, 0);
        assert!(matches!(
            apply_move(
                movement(MovementKind::Retire, &other, &programme, 60),
                &other,
                &programme
            ),
            Err(RuleViolation::WrongAccountKind {
                found: Programme,
                ..
            })
        ));
    }

    #[test]
    fn a_movement_moves_exactly_its_amount() {
        let budget = account(AccountKind::Budget, 600);
        let member = account(AccountKind::Member, 0);
        let changes = apply_move(
            movement(MovementKind::Earn, &budget, &member, 90),
            &budget,
            &member,
        )
        .unwrap();
        assert_eq!((changes[0].balance, changes[1].balance), (510, 90));
        assert_eq!(
            changes[0].balance + changes[1].balance,
            budget.balance + member.balance
        );
    }

    #[test]
    fn only_the_programme_goes_below_zero() {
        let programme = account(AccountKind::Programme, -100);
        let budget = account(AccountKind::Budget, 0);
        let changes = apply_move(
            movement(MovementKind::Allocate, &programme, &budget, 60),
            &programme,
            &budget,
        )
        .unwrap();
        assert_eq!(changes[0].balance, -160);

        let member = account(AccountKind::Member, 59);
        let venue = account(AccountKind::Venue, 0);
        assert_eq!(
            apply_move(
                movement(MovementKind::Spend, &member, &venue, 60),
                &member,
                &venue
            ),
            Err(RuleViolation::InsufficientCredits {
                account: member.id,
                balance: 59,
                needed: 60
            })
        );
        let exactly = account(AccountKind::Member, 60);
        assert!(apply_move(
            movement(MovementKind::Spend, &exactly, &venue, 60),
            &exactly,
            &venue
        )
        .is_ok());
    }

    #[test]
    fn closed_and_unknown_accounts_take_no_movement() {
        let a = account(AccountKind::Member, 600);
        let mut b = account(AccountKind::Member, 0);
        b.status = AccountStatus::Closed;
        let m = movement(MovementKind::Gift, &a, &b, 60);
        assert_eq!(
            apply_move(m.clone(), &a, &b),
            Err(RuleViolation::AccountClosed(b.id))
        );
        assert_eq!(
            apply(&entry(3, EntryBody::Move(m)), &[Some(&a), None], None, None),
            Err(RuleViolation::UnknownAccount(b.id))
        );
    }

    #[test]
    fn reversals_mirror_once_and_respect_floors() {
        let budget = account(AccountKind::Budget, 540);
        let member = account(AccountKind::Member, 60);
        let earn = movement(MovementKind::Earn, &budget, &member, 60);
        let rev = Movement::reversal_of(&earn, 4, day("2026-11-23"), None);
        let original = |reversed_by| Original {
            seq: 4,
            movement: Some(earn.clone()),
            reversed_by,
        };
        let reverse = |o: Option<&Original>, from: &AccountState, to: &AccountState| {
            apply(
                &entry(9, EntryBody::Move(rev.clone())),
                &[Some(from), Some(to)],
                o,
                None,
            )
        };
        let changes = reverse(Some(&original(None)), &member, &budget).unwrap();
        assert_eq!((changes[0].balance, changes[1].balance), (0, 600));
        assert_eq!(
            reverse(Some(&original(Some(8))), &member, &budget),
            Err(RuleViolation::AlreadyReversed { seq: 4, by: 8 })
        );
        assert_eq!(
            reverse(None, &member, &budget),
            Err(RuleViolation::UnknownEntry(4))
        );
        let spent = AccountState {
            balance: 30,
            ..member.clone()
        };
        assert!(matches!(
            reverse(Some(&original(None)), &spent, &budget),
            Err(RuleViolation::InsufficientCredits { .. })
        ));
        // A reversal of a reversal is refused.
        let of_reversal = Original {
            seq: 4,
            movement: Some(rev.clone()),
            reversed_by: None,
        };
        assert_eq!(
            reverse(Some(&of_reversal), &member, &budget),
            Err(RuleViolation::NotReversible(4))
        );
        // An open entry is not reversible.
        let of_open = Original {
            seq: 4,
            movement: None,
            reversed_by: None,
        };
        assert_eq!(
            reverse(Some(&of_open), &member, &budget),
            Err(RuleViolation::NotReversible(4))
        );
        // A forged reversal that does not mirror the original is caught.
        let mut forged = rev.clone();
        forged.minutes = Minutes::new(30).unwrap();
        assert_eq!(
            apply(
                &entry(9, EntryBody::Move(forged)),
                &[Some(&member), Some(&budget)],
                Some(&original(None)),
                None,
            ),
            Err(RuleViolation::ReversalMismatch(4))
        );
    }

    #[test]
    fn genesis_opens_the_programme_and_nothing_else_does() {
        let open = |kind: AccountKind| EntryBody::Open {
            account: AccountId::new(),
            account_kind: kind,
            owner: kind.has_owner().then(Uuid::now_v7),
        };
        assert!(apply(&entry(0, open(AccountKind::Programme)), &[None], None, None).is_ok());
        assert_eq!(
            apply(&entry(0, open(AccountKind::Member)), &[None], None, None),
            Err(RuleViolation::Genesis)
        );
        assert_eq!(
            apply(&entry(1, open(AccountKind::Programme)), &[None], None, None),
            Err(RuleViolation::Genesis)
        );
        let existing = account(AccountKind::Member, 0);
        let again = EntryBody::Open {
            account: existing.id,
            account_kind: AccountKind::Member,
            owner: None,
        };
        assert_eq!(
            apply(&entry(2, again), &[Some(&existing)], None, None),
            Err(RuleViolation::AccountExists(existing.id))
        );
    }

    #[test]
    fn only_empty_non_programme_accounts_close() {
        let close = |a: &AccountState| {
            apply(
                &entry(3, EntryBody::Close { account: a.id }),
                &[Some(a)],
                None,
                None,
            )
        };
        let full = account(AccountKind::Member, 1);
        assert!(matches!(
            close(&full),
            Err(RuleViolation::AccountNotEmpty { .. })
        ));
        let empty = account(AccountKind::Member, 0);
        assert_eq!(close(&empty).unwrap()[0].status, AccountStatus::Closed);
        assert_eq!(
            close(&account(AccountKind::Programme, 0)),
            Err(RuleViolation::ProgrammeClosed)
        );
    }

    #[test]
    fn effective_dates_may_not_be_in_the_future() {
        let budget = account(AccountKind::Budget, 600);
        let member = account(AccountKind::Member, 0);
        let mut m = movement(MovementKind::Earn, &budget, &member, 60);
        m.effective = day("2026-11-24");
        assert!(
            apply_move(m.clone(), &budget, &member).is_ok(),
            "one day ahead is allowed"
        );
        m.effective = day("2026-11-25");
        assert!(matches!(
            apply_move(m, &budget, &member),
            Err(RuleViolation::EffectiveInFuture { .. })
        ));
    }

    /// Long before any test's entry: a wallet last used then is due under any period.
    fn long_ago() -> DateTime<Utc> {
        "2020-01-01T00:00:00Z".parse().unwrap()
    }

    fn expire(
        wallet: &AccountState,
        programme: &AccountState,
        minutes: u64,
        months: u32,
        last_use: Option<DateTime<Utc>>,
    ) -> Result<Changes, RuleViolation> {
        let mut m = movement(MovementKind::Expire, wallet, programme, minutes);
        m.details.expiry_months = Some(months);
        apply(
            &entry(9, EntryBody::Move(m)),
            &[Some(wallet), Some(programme)],
            None,
            last_use,
        )
    }

    #[test]
    fn an_expiry_empties_a_wallet_unused_for_its_period() {
        let wallet = account(AccountKind::Member, 90);
        let programme = account(AccountKind::Programme, -600);
        // Entries in the tests are recorded at 2026-11-23T10:00:00Z: 12 months before is
        // 2025-11-23T10:00:00Z, and a last use at that very moment is allowed.
        let boundary: DateTime<Utc> = "2025-11-23T10:00:00Z".parse().unwrap();
        let changes = expire(&wallet, &programme, 90, 12, Some(boundary)).unwrap();
        assert_eq!((changes[0].balance, changes[1].balance), (0, -510));
        assert_eq!(
            changes[0].status,
            AccountStatus::Open,
            "the wallet stays open"
        );

        let a_microsecond_later = boundary + chrono::TimeDelta::microseconds(1);
        assert!(matches!(
            expire(&wallet, &programme, 90, 12, Some(a_microsecond_later)),
            Err(RuleViolation::ExpiryTooEarly { .. })
        ));
        // The same last use is due under a shorter period.
        assert!(expire(&wallet, &programme, 90, 11, Some(a_microsecond_later)).is_ok());
        // No history given: never due.
        assert!(matches!(
            expire(&wallet, &programme, 90, 12, None),
            Err(RuleViolation::ExpiryTooEarly { last_use: None, .. })
        ));
    }

    #[test]
    fn an_expiry_moves_the_whole_balance_and_nothing_else() {
        let wallet = account(AccountKind::Member, 90);
        let programme = account(AccountKind::Programme, -600);
        for minutes in [1, 89, 91] {
            assert_eq!(
                expire(&wallet, &programme, minutes, 12, Some(long_ago())),
                Err(RuleViolation::ExpiryNotWholeBalance {
                    account: wallet.id,
                    balance: 90,
                    minutes,
                })
            );
        }
        // Only a member wallet expires, and only to the programme.
        for kind in [AccountKind::Budget, AccountKind::Venue] {
            let other = account(kind, 90);
            assert!(matches!(
                expire(&other, &programme, 90, 12, Some(long_ago())),
                Err(RuleViolation::WrongAccountKind { found, .. }) if found == kind
            ));
        }
        let member = account(AccountKind::Member, 0);
        assert!(matches!(
            expire(&wallet, &member, 90, 12, Some(long_ago())),
            Err(RuleViolation::WrongAccountKind { .. })
        ));
    }

    proptest::proptest! {
        /// Whatever the balance, period, last use and amount: an expiry is accepted exactly when
        /// the wallet was unused for the period and the amount is its balance, it then leaves
        /// the wallet at zero (never below), and expiring it again at once is refused.
        #[test]
        fn expiry_takes_exactly_an_unused_wallet_to_zero(
            balance in 1i64..100_000,
            minutes in 1u64..100_000,
            months in 1u32..=Details::MAX_EXPIRY_MONTHS,
            days_unused in 0u64..4000,
        ) {
            let wallet = account(AccountKind::Member, balance);
            let programme = account(AccountKind::Programme, -balance);
            let recorded: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
            let last_use = recorded - chrono::TimeDelta::days(days_unused as i64);
            let due = last_use <= unused_since(recorded, months).unwrap();
            let whole = minutes as i64 == balance;
            let result = expire(&wallet, &programme, minutes, months, Some(last_use));
            proptest::prop_assert_eq!(result.is_ok(), due && whole, "{:?}", result);
            if let Ok(changes) = result {
                proptest::prop_assert_eq!(changes[0].balance, 0);
                proptest::prop_assert_eq!(changes[0].balance + changes[1].balance, 0);
                // The expiry is the wallet's newest use: a repeat is never due.
                let again = expire(&changes[0], &changes[1], minutes, months, Some(recorded));
                proptest::prop_assert!(
                    matches!(again, Err(RuleViolation::ExpiryTooEarly { .. })),
                    "{:?}",
                    again
                );
            }
        }
    }
}
