//! The replay of the ledger rules over a full export, entry by entry, with
//! [`timecredits_domain::rules::apply`]: the very function the ledger runs before it commits.
//!
//! # Memory
//! The state is per account: about 100 bytes each (its [`AccountState`] and an index entry). Two
//! checks cannot be done without remembering something of every entry, so that part is kept
//! compact:
//! - **reversals** may target any earlier entry, and the rules compare the reversal with its
//!   original: 16 bytes per entry (`Trace`: the two account numbers, amount, kind and effective
//!   day) plus one map entry per reversal;
//! - **idempotency keys** must never be reused by their actor: one 64-bit fingerprint per request
//!   (11 to 23 bytes in the hash set). Fingerprints ([`Fingerprints`]) are keyed with a random
//!   key per run, and a repeated fingerprint is confirmed by finding the earlier request before it
//!   is reported, so a collision can never cause a false alarm.
//!
//! So 10 million entries need about 300 to 400 MB, accounts aside: a few per cent of the export's
//! size.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, Datelike, NaiveDate};
use serde::Serialize;
use timecredits_domain::rules::{self, AccountState, Original};
use timecredits_domain::{
    AccountId, AccountKind, AccountStatus, Details, Entry, EntryBody, EntryKind, Minutes, Movement,
};
use uuid::Uuid;

use crate::error::{Failure, Stop, UsageError};

/// Finds the first entry before `before` that starts a request with this actor and key, to
/// confirm a repeated fingerprint (see the module documentation).
pub type Confirm<'a> = dyn FnMut(Uuid, &str, u64) -> Result<Option<u64>, UsageError> + 'a;

/// What the replay remembers of every entry, for the reversals that may come later.
#[derive(Clone, Copy)]
struct Trace {
    debit: u32,
    credit: u32,
    /// Minutes in the low 26 bits, the [`EntryKind`] code above them.
    minutes_kind: u32,
    /// The effective day, as days since 1 January of year 1.
    effective: i32,
}

const MINUTES_BITS: u32 = 26;
const _: () = assert!(Minutes::MAX < 1 << MINUTES_BITS);

/// Keyed 64-bit fingerprints of an entry's actor and idempotency key. They are computed where
/// entries are decoded, in parallel; one [`Replay`] must be fed the fingerprints of one
/// `Fingerprints`.
#[derive(Default)]
pub struct Fingerprints(RandomState);

impl Fingerprints {
    /// The fingerprint of `entry`'s (actor, key).
    pub fn of(&self, entry: &Entry) -> u64 {
        self.0.hash_one((entry.actor, entry.key.as_str()))
    }
}

/// The replayed ledger.
#[derive(Default)]
pub struct Replay {
    /// Every account's number and state, in one table entry so that a lookup costs one memory
    /// access, not two.
    accounts: HashMap<AccountId, (u32, AccountState), Keyed>,
    /// The account of each number, for the reversal rule.
    ids: Vec<AccountId>,
    /// When an entry last touched the account of each number, in microseconds since 1970, for
    /// the expiry rule: 8 bytes per account.
    last_use: Vec<i64>,
    traces: Vec<Trace>,
    reversed_by: HashMap<u64, u64>,
    requests: Requests,
    moved: MovementTotals,
}

/// Minutes moved by each kind of movement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MovementTotals {
    /// Programme to budgets.
    pub allocated: u64,
    /// Budgets to members, for time given.
    pub earned: u64,
    /// Members to venues.
    pub spent: u64,
    /// Member to member.
    pub gifted: u64,
    /// By reversals, in either direction.
    pub reversed: u64,
    /// Venues, budgets and wallets back to the programme (out of circulation).
    pub retired: u64,
    /// Unused wallets back to the programme under the expiry policy.
    pub expired: u64,
}

/// How many accounts there are of each kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccountCounts {
    /// All accounts ever opened.
    pub total: u64,
    /// The programme's issuance account (one).
    pub programme: u64,
    /// Earn partners' budgets.
    pub budget: u64,
    /// Venues.
    pub venue: u64,
    /// Member wallets.
    pub member: u64,
    /// Accounts of any kind that were closed.
    pub closed: u64,
}

/// The balances at the end, added up by account kind, in minutes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Holdings {
    /// What earn partners may still give out.
    pub budgets: i128,
    /// What members hold.
    pub wallets: i128,
    /// What venues redeemed and have not retired.
    pub venues: i128,
}

/// What a valid full export adds up to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Accounts by kind.
    pub accounts: AccountCounts,
    /// Minutes moved, by kind of movement.
    pub moved: MovementTotals,
    /// Balances by kind of account.
    pub holdings: Holdings,
    /// Minutes in circulation: minus the programme's balance, which equals everything the other
    /// accounts hold.
    pub in_circulation: i128,
}

impl Replay {
    /// A replay sized for an export of about `entries` entries, so that its per-entry tables are
    /// allocated once.
    pub fn with_capacity(entries: u64) -> Replay {
        let entries = usize::try_from(entries).unwrap_or(usize::MAX);
        Replay {
            traces: Vec::with_capacity(entries),
            requests: Requests {
                seen: FingerprintSet::with_capacity(entries),
                last: None,
            },
            ..Replay::default()
        }
    }

    /// Applies the next entry, whose sequence number the caller has checked to be its position.
    /// `fingerprint` is [`Fingerprints::of`] the entry.
    pub fn apply(
        &mut self,
        entry: &Entry,
        fingerprint: u64,
        confirm: &mut Confirm<'_>,
    ) -> Result<(), Stop> {
        let seq = entry.seq;
        self.requests.check(entry, fingerprint, confirm)?;
        let ids = touched(&entry.body);
        let original = match &entry.body {
            EntryBody::Move(Movement {
                reverses: Some(target),
                ..
            }) if *target < seq => self.original(*target),
            _ => None,
        };
        let states = ids.map(|id| {
            id.and_then(|id| self.accounts.get(&id))
                .map(|(_, state)| state)
        });
        let count = ids.iter().flatten().count();
        let last_use = rules::last_use_needed(entry)
            .and_then(|wallet| self.accounts.get(&wallet))
            .and_then(|(n, _)| self.last_use.get(*n as usize))
            .and_then(|micros| DateTime::from_timestamp_micros(*micros));
        let changes = rules::apply(entry, &states[..count], original.as_ref(), last_use)
            .map_err(|violation| Failure::Rule { seq, violation })?;
        let recorded = entry.recorded.timestamp_micros();
        let mut numbers = [0u32; 2];
        for (state, number) in changes.into_iter().zip(&mut numbers) {
            *number = match self.accounts.get_mut(&state.id) {
                Some((n, current)) => {
                    *current = state;
                    self.last_use[*n as usize] = recorded;
                    *n
                }
                None => {
                    let n =
                        u32::try_from(self.ids.len()).map_err(|_| UsageError::TooManyAccounts)?;
                    self.ids.push(state.id);
                    self.last_use.push(recorded);
                    self.accounts.insert(state.id, (n, state));
                    n
                }
            };
        }
        let kind = entry.body.kind();
        let code = EntryKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u32;
        let (minutes, effective) = match &entry.body {
            EntryBody::Move(m) => {
                self.moved.add(m);
                if let Some(target) = m.reverses {
                    self.reversed_by.insert(target, seq);
                }
                (m.minutes.get() as u32, m.effective.num_days_from_ce())
            }
            _ => (0, 0),
        };
        self.traces.push(Trace {
            debit: numbers[0],
            credit: numbers[1],
            minutes_kind: minutes | code << MINUTES_BITS,
            effective,
        });
        Ok(())
    }

    /// Looks up, without changing anything, the accounts and fingerprint slots the next entries
    /// will touch. On a large ledger each of those is a cache miss; looked up together, in a
    /// loop with no dependency from one to the next, the misses overlap, and [`Replay::apply`]
    /// then finds everything in the cache instead of waiting for each miss in turn.
    pub fn warm<'a>(&self, next: impl Iterator<Item = (&'a Entry, u64)>) {
        let mut found = 0u64;
        for (entry, fingerprint) in next {
            found ^= self.requests.seen.peek(fingerprint);
            for id in touched(&entry.body).into_iter().flatten() {
                found ^= self.accounts.get(&id).map_or(0, |(n, _)| u64::from(*n));
            }
        }
        std::hint::black_box(found);
    }

    /// The entry `seq` as the reversal rule sees it. Its descriptive details (activity,
    /// reference, party) are not kept: no rule reads them.
    fn original(&self, seq: u64) -> Option<Original> {
        let trace = self.traces.get(usize::try_from(seq).ok()?)?;
        let kind = EntryKind::ALL[(trace.minutes_kind >> MINUTES_BITS) as usize];
        let movement = match kind.movement() {
            None => None,
            Some(kind) => Some(Movement {
                kind,
                debit: *self.ids.get(trace.debit as usize)?,
                credit: *self.ids.get(trace.credit as usize)?,
                minutes: Minutes::new(u64::from(trace.minutes_kind & ((1 << MINUTES_BITS) - 1)))
                    .ok()?,
                effective: NaiveDate::from_num_days_from_ce_opt(trace.effective)?,
                reverses: None,
                details: Details::default(),
            }),
        };
        Some(Original {
            seq,
            movement,
            reversed_by: self.reversed_by.get(&seq).copied(),
        })
    }

    /// Checks that the balances sum to zero and adds everything up.
    pub fn finish(self) -> Result<Summary, Failure> {
        let mut accounts = AccountCounts::default();
        let mut holdings = Holdings::default();
        let mut programme: i128 = 0;
        for (_, state) in self.accounts.values() {
            let balance = i128::from(state.balance);
            accounts.total += 1;
            accounts.closed += u64::from(state.status == AccountStatus::Closed);
            match state.kind {
                AccountKind::Programme => {
                    accounts.programme += 1;
                    programme += balance;
                }
                AccountKind::Budget => {
                    accounts.budget += 1;
                    holdings.budgets += balance;
                }
                AccountKind::Venue => {
                    accounts.venue += 1;
                    holdings.venues += balance;
                }
                AccountKind::Member => {
                    accounts.member += 1;
                    holdings.wallets += balance;
                }
            }
        }
        let sum = programme + holdings.budgets + holdings.wallets + holdings.venues;
        if sum != 0 {
            return Err(Failure::Unbalanced(sum));
        }
        Ok(Summary {
            accounts,
            moved: self.moved,
            holdings,
            in_circulation: -programme,
        })
    }
}

/// The accounts an entry touches, in the order of [`EntryBody::accounts`], without allocating.
fn touched(body: &EntryBody) -> [Option<AccountId>; 2] {
    match body {
        EntryBody::Open { account, .. } | EntryBody::Close { account } => [Some(*account), None],
        EntryBody::Move(m) => [Some(m.debit), Some(m.credit)],
        EntryBody::Key(_) => [None, None],
    }
}

impl MovementTotals {
    fn add(&mut self, m: &Movement) {
        use timecredits_domain::MovementKind::*;
        let total = match m.kind {
            Allocate => &mut self.allocated,
            Earn => &mut self.earned,
            Spend => &mut self.spent,
            Gift => &mut self.gifted,
            Reverse => &mut self.reversed,
            Retire => &mut self.retired,
            Expire => &mut self.expired,
        };
        *total = total.saturating_add(m.minutes.get());
    }
}

/// The idempotency check: every request's (actor, key) is new, and the parts of a multi-part
/// request (which share one key, numbered from 0) follow each other directly.
#[derive(Default)]
struct Requests {
    seen: FingerprintSet,
    /// The previous entry's actor, key and part.
    last: Option<(Uuid, String, u32)>,
}

impl Requests {
    fn check(
        &mut self,
        entry: &Entry,
        fingerprint: u64,
        confirm: &mut Confirm<'_>,
    ) -> Result<(), Stop> {
        let key = entry.key.as_str();
        if entry.part == 0 {
            if !self.seen.insert(fingerprint) {
                if let Some(first) = confirm(entry.actor, key, entry.seq)? {
                    return Err(Failure::KeyReused {
                        seq: entry.seq,
                        key: key.to_owned(),
                        actor: entry.actor,
                        first,
                    }
                    .into());
                }
            }
        } else {
            let follows = matches!(&self.last, Some((actor, last_key, part))
                if *actor == entry.actor && last_key == key && part + 1 == entry.part);
            if !follows {
                return Err(Failure::PartOutOfPlace {
                    seq: entry.seq,
                    part: entry.part,
                    key: key.to_owned(),
                    actor: entry.actor,
                }
                .into());
            }
        }
        // Reuse the previous key's buffer: no allocation per entry.
        match &mut self.last {
            Some((actor, last_key, part)) => {
                *actor = entry.actor;
                last_key.clear();
                last_key.push_str(key);
                *part = entry.part;
            }
            None => self.last = Some((entry.actor, key.to_owned(), entry.part)),
        }
        Ok(())
    }
}

/// The set of request fingerprints: open addressing with linear probing in one array of `u64`
/// (0 marks a free slot), so that an insertion, which on a large ledger always misses the cache,
/// misses it once rather than twice as with a separate control array. Fingerprints are already
/// uniformly random, so they index the array as they are.
struct FingerprintSet {
    slots: Vec<u64>,
    len: usize,
}

impl Default for FingerprintSet {
    fn default() -> Self {
        FingerprintSet::with_capacity(0)
    }
}

impl FingerprintSet {
    /// A set that holds `n` fingerprints without growing (growing re-inserts them all, each a
    /// cache miss).
    fn with_capacity(n: usize) -> Self {
        let slots = (n.saturating_mul(10) / 7 + 1)
            .next_power_of_two()
            .max(1 << 16);
        FingerprintSet {
            slots: vec![0; slots],
            len: 0,
        }
    }

    /// Reads the slot where `fingerprint` would go (see [`Replay::warm`]).
    fn peek(&self, fingerprint: u64) -> u64 {
        self.slots[fingerprint.max(1) as usize & (self.slots.len() - 1)]
    }

    /// Inserts `fingerprint`; false if it was there. Fingerprint 0 counts as 1: a collision,
    /// which the caller confirms like any other.
    fn insert(&mut self, fingerprint: u64) -> bool {
        let fingerprint = fingerprint.max(1);
        // Keep the table at most 70% full, so probes stay short.
        if (self.len + 1) * 10 > self.slots.len() * 7 {
            let grown = vec![0; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            self.len = 0;
            for f in old.into_iter().filter(|&f| f != 0) {
                self.insert(f);
            }
        }
        let mask = self.slots.len() - 1;
        let mut i = fingerprint as usize & mask;
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = fingerprint;
                    self.len += 1;
                    return true;
                }
                f if f == fingerprint => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }
}

/// A fast hasher for account ids, keyed per run: a multiply-xorshift over the id's words with a
/// random odd multiplier, so that a ledger cannot choose ids that pile up in one bucket of the
/// table (SipHash would be as safe, and the replay's slowest part).
#[derive(Clone)]
struct Keyed(u64);

impl Default for Keyed {
    fn default() -> Self {
        Keyed(RandomState::new().hash_one(0u8) | 1)
    }
}

impl BuildHasher for Keyed {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            state: 0,
            key: self.0,
        }
    }
}

struct KeyedHasher {
    state: u64,
    key: u64,
}

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        self.state ^ self.state >> 29
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.state = (self.state ^ u64::from_le_bytes(word))
                .wrapping_mul(self.key)
                .rotate_left(31);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_set_grows_and_finds_repeats() {
        let fingerprints = RandomState::new();
        let mut set = FingerprintSet::default();
        let values: Vec<u64> = (0..200_000u64).map(|i| fingerprints.hash_one(i)).collect();
        assert!(values.iter().all(|&v| set.insert(v)), "all new");
        assert_eq!(set.len, values.len());
        assert!(set.slots.len() * 7 >= set.len * 10, "kept at most 70% full");
        assert!(
            values.iter().step_by(997).all(|&v| !set.insert(v)),
            "all repeats"
        );
        // 0 marks free slots: it stands for 1, a collision the replay confirms.
        assert!(set.insert(0));
        assert!(!set.insert(1));
    }

    fn open(seq: u64, kind: AccountKind, key: &str) -> Entry {
        Entry {
            seq,
            id: Uuid::from_u128(u128::from(seq) + 100),
            recorded: "2026-11-23T10:00:00Z".parse().unwrap(),
            actor: Uuid::nil(),
            key: timecredits_domain::IdempotencyKey::new(key).unwrap(),
            part: 0,
            body: EntryBody::Open {
                account: AccountId(Uuid::from_u128(u128::from(seq) + 1)),
                account_kind: kind,
                owner: None,
            },
        }
    }

    #[test]
    fn a_repeated_fingerprint_is_a_reuse_only_once_confirmed() {
        let mut replay = Replay::with_capacity(10);
        let mut asked = Vec::new();
        let mut collision = |_: Uuid, key: &str, before: u64| {
            asked.push((key.to_owned(), before));
            Ok(None)
        };
        replay
            .apply(&open(0, AccountKind::Programme, "a"), 7, &mut collision)
            .unwrap();
        // Same fingerprint, different key: the earlier request is looked for, not found.
        replay
            .apply(&open(1, AccountKind::Member, "b"), 7, &mut collision)
            .unwrap();
        assert_eq!(asked, vec![("b".to_owned(), 1)]);
        let mut reuse = |_: Uuid, _: &str, _: u64| Ok(Some(0));
        let stop = replay
            .apply(&open(2, AccountKind::Member, "a"), 7, &mut reuse)
            .unwrap_err();
        assert!(matches!(
            stop,
            Stop::Invalid(Failure::KeyReused {
                seq: 2,
                first: 0,
                ..
            })
        ));
    }

    #[test]
    fn account_ids_spread_over_the_keyed_hash() {
        let keyed = Keyed::default();
        // Ids that differ only in their high bits (as crafted ids might) still spread.
        let buckets: std::collections::HashSet<u64> = (0..1000u128)
            .map(|i| keyed.hash_one(AccountId(Uuid::from_u128(i << 100))) & 1023)
            .collect();
        assert!(buckets.len() > 500, "{} buckets", buckets.len());
    }
}
