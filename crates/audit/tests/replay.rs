//! The replay over histories built by hand and signed with a valid key: a ledger that signed a bad
//! history is still caught.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use timecredits_audit::Failure;
use timecredits_domain::{
    AccountId, AccountKind, Entry, EntryBody, IdempotencyKey, Minutes, Movement, MovementKind,
    RuleViolation,
};
use timecredits_testkit::intents::details;
use timecredits_testkit::synthetic::History;
use uuid::Uuid;

const MEMBER_A: u128 = 0xa;
const MEMBER_B: u128 = 0xb;
const BUDGET: u128 = 0xbb;
const VENUE: u128 = 0xee;

fn account(n: u128) -> AccountId {
    AccountId(Uuid::from_u128(n))
}

fn at(second: u32) -> DateTime<Utc> {
    format!("2026-11-23T10:00:{second:02}.000000Z")
        .parse()
        .unwrap()
}

/// A little history builder: sequence numbers, times and keys in order.
struct Book {
    entries: Vec<Entry>,
    admin: Uuid,
}

impl Book {
    /// Genesis, a budget with 600 minutes, a venue and two members.
    fn new() -> Book {
        let mut book = Book {
            entries: Vec::new(),
            admin: Uuid::from_u128(0xad),
        };
        book.open(1, AccountKind::Programme, None);
        book.open(BUDGET, AccountKind::Budget, Some(Uuid::from_u128(0xb0)));
        book.open(VENUE, AccountKind::Venue, Some(Uuid::from_u128(0xe0)));
        book.open(MEMBER_A, AccountKind::Member, None);
        book.open(MEMBER_B, AccountKind::Member, None);
        book.transfer(MovementKind::Allocate, 1, BUDGET, 600);
        book
    }

    fn push(&mut self, body: EntryBody) -> u64 {
        let seq = self.entries.len() as u64;
        self.push_part(body, &format!("key-{seq}"), 0, self.admin)
    }

    fn push_part(&mut self, body: EntryBody, key: &str, part: u32, actor: Uuid) -> u64 {
        let seq = self.entries.len() as u64;
        self.entries.push(Entry {
            seq,
            id: Uuid::from_u128(0x1000 + u128::from(seq)),
            recorded: at(seq as u32),
            actor,
            key: IdempotencyKey::new(key).unwrap(),
            part,
            body,
        });
        seq
    }

    fn open(&mut self, id: u128, kind: AccountKind, owner: Option<Uuid>) -> u64 {
        self.push(EntryBody::Open {
            account: account(id),
            account_kind: kind,
            owner,
        })
    }

    fn movement(kind: MovementKind, from: u128, to: u128, minutes: u64) -> Movement {
        Movement::new(
            kind,
            account(from),
            account(to),
            Minutes::new(minutes).unwrap(),
            "2026-11-23".parse().unwrap(),
            None,
            details(kind),
        )
        .unwrap()
    }

    fn transfer(&mut self, kind: MovementKind, from: u128, to: u128, minutes: u64) -> u64 {
        self.push(EntryBody::Move(Self::movement(kind, from, to, minutes)))
    }

    fn reverse(&mut self, seq: u64) -> u64 {
        let EntryBody::Move(original) = &self.entries[seq as usize].body else {
            panic!("entry {seq} is not a movement")
        };
        let reversal = Movement::reversal_of(original, seq, "2026-11-23".parse().unwrap(), None);
        self.push(EntryBody::Move(reversal))
    }

    fn verify(&self) -> timecredits_audit::Report {
        let signer = signer();
        let file = ExportFile::of_entries(&signer, &self.entries);
        verify_with(&file.path, &trust_of(&signer), None)
    }
}

#[test]
fn a_valid_hand_built_history_verifies_and_adds_up() {
    let mut book = Book::new();
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 120);
    book.transfer(MovementKind::Gift, MEMBER_A, MEMBER_B, 30);
    book.transfer(MovementKind::Spend, MEMBER_B, VENUE, 30);
    let earn = book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 45);
    book.reverse(earn);
    book.transfer(MovementKind::Retire, VENUE, 1, 30);
    let report = book.verify();
    assert!(report.is_valid(), "{:?}", report.failure);
    let summary = report.summary.expect("a full export is replayed");
    assert_eq!(summary.accounts.total, 5);
    assert_eq!(
        (
            summary.moved.allocated,
            summary.moved.earned,
            summary.moved.gifted
        ),
        (600, 165, 30)
    );
    assert_eq!(
        (
            summary.moved.spent,
            summary.moved.reversed,
            summary.moved.retired
        ),
        (30, 45, 30)
    );
    // 600 allocated, 30 retired: 570 in circulation, 480 of it still in the budget.
    assert_eq!(summary.in_circulation, 570);
    assert_eq!(summary.holdings.budgets, 480);
    assert_eq!(summary.holdings.wallets, 90);
}

/// A retirement may empty a venue, a budget (a partner hands back what it will not give out) or a
/// wallet (a member leaves, then the wallet closes); the replay accepts all three.
#[test]
fn retirements_from_a_venue_a_budget_and_a_leaving_wallet_verify() {
    let mut book = Book::new();
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 90);
    book.transfer(MovementKind::Spend, MEMBER_A, VENUE, 30);
    book.transfer(MovementKind::Retire, VENUE, 1, 30);
    book.transfer(MovementKind::Retire, BUDGET, 1, 510);
    book.transfer(MovementKind::Retire, MEMBER_A, 1, 60);
    book.push(EntryBody::Close {
        account: account(MEMBER_A),
    });
    let report = book.verify();
    assert!(report.is_valid(), "{:?}", report.failure);
    let summary = report.summary.expect("a full export is replayed");
    assert_eq!(summary.moved.retired, 600);
    assert_eq!(summary.in_circulation, 0);
    assert_eq!(summary.accounts.closed, 1);
}

/// A retirement goes to the programme and nowhere else, whatever it empties.
#[test]
fn a_retirement_into_another_account_is_caught() {
    let mut book = Book::new();
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 90);
    let bad = book.transfer(MovementKind::Retire, MEMBER_A, MEMBER_B, 60);
    assert_failure!(
        book.verify(),
        Failure::Rule {
            violation: RuleViolation::WrongAccountKind {
                movement: MovementKind::Retire,
                expected: AccountKind::Programme,
                found: AccountKind::Member,
                ..
            },
            ..
        },
        &format!(
            "entry {bad}: account {} is a member account; a retire needs a programme account here",
            account(MEMBER_B)
        )
    );
}

impl Book {
    /// An `expire` of `minutes` from `from` under a policy of `months`, recorded `after` the
    /// entry before it (the hand-built entries are a second apart).
    fn expire(&mut self, from: u128, minutes: u64, months: u32, after: TimeDelta) -> u64 {
        let mut m = Self::movement(MovementKind::Expire, from, 1, minutes);
        m.details.expiry_months = Some(months);
        let previous = self.entries.last().unwrap().recorded;
        let seq = self.push(EntryBody::Move(m.clone()));
        let recorded = previous + after;
        m.effective = recorded.date_naive();
        let entry = &mut self.entries[seq as usize];
        entry.recorded = recorded;
        entry.body = EntryBody::Move(m);
        seq
    }
}

/// A year and a second: a wallet last used by the entry before is then due under 12 months.
fn a_year_later() -> TimeDelta {
    TimeDelta::days(365) + TimeDelta::seconds(1)
}

/// A wallet unused for the policy's period expires, its whole balance, and the replay counts it.
#[test]
fn an_expiry_of_an_unused_wallet_verifies_and_is_counted() {
    let mut book = Book::new();
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 90);
    book.expire(MEMBER_A, 90, 12, a_year_later());
    let report = book.verify();
    assert!(report.is_valid(), "{:?}", report.failure);
    let summary = report.summary.expect("a full export is replayed");
    assert_eq!(summary.moved.expired, 90);
    assert_eq!(summary.holdings.wallets, 0);
}

/// Forged expiries under a valid signature: too early (by a second, and after a gift received,
/// which is a use), not the whole balance, not from a member wallet. Each is caught by the replay.
#[test]
fn a_forged_expiry_is_caught_by_the_replay() {
    let too_early = |book: &mut Book, months| {
        let due = book.entries.last().unwrap().recorded;
        let bad = book.expire(MEMBER_A, 90, months, TimeDelta::days(364));
        let report = book.verify();
        let failure = report.failure.expect("the export must not verify");
        assert!(
            matches!(
                failure,
                Failure::Rule {
                    seq,
                    violation: RuleViolation::ExpiryTooEarly { last_use: Some(used), .. },
                } if seq == bad && used == due
            ),
            "{failure:?}"
        );
    };
    let mut book = Book::new();
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 90);
    too_early(&mut book, 12);

    // A gift received a moment later is a use: a year after the earn is not enough.
    let mut book = Book::new();
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 60);
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_B, 30);
    book.transfer(MovementKind::Gift, MEMBER_B, MEMBER_A, 30);
    too_early(&mut book, 12);

    for minutes in [60, 120] {
        let mut book = Book::new();
        book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 90);
        let bad = book.expire(MEMBER_A, minutes, 12, a_year_later());
        assert_failure!(
            book.verify(),
            Failure::Rule {
                violation: RuleViolation::ExpiryNotWholeBalance { balance: 90, .. },
                ..
            },
            &format!("entry {bad}: wallet {} holds 90 minutes", account(MEMBER_A))
        );
    }

    let mut book = Book::new();
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 90);
    book.transfer(MovementKind::Spend, MEMBER_A, VENUE, 90);
    let bad = book.expire(VENUE, 90, 12, a_year_later());
    assert_failure!(
        book.verify(),
        Failure::Rule {
            violation: RuleViolation::WrongAccountKind {
                movement: MovementKind::Expire,
                found: AccountKind::Venue,
                ..
            },
            ..
        },
        &format!("entry {bad}: account {} is a venue account", account(VENUE))
    );
}

#[test]
fn an_overdraft_under_a_valid_signature_is_caught_by_the_replay() {
    let mut book = Book::new();
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 60);
    let bad = book.transfer(MovementKind::Spend, MEMBER_A, VENUE, 90);
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_B, 60);
    let report = book.verify();
    assert_failure!(
        &report,
        Failure::Rule {
            violation: RuleViolation::InsufficientCredits {
                balance: 60,
                needed: 90,
                ..
            },
            ..
        },
        &format!(
            "entry {bad}: account {} holds 60 minutes; 90 are needed",
            account(MEMBER_A)
        )
    );
    assert_eq!(report.checked, bad, "the replay stops at the overdraft");
}

#[test]
fn a_repeated_reversal_is_caught() {
    let mut book = Book::new();
    let earn = book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 60);
    let first = book.reverse(earn);
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 60);
    let second = book.reverse(earn);
    assert_failure!(
        book.verify(),
        Failure::Rule {
            violation: RuleViolation::AlreadyReversed { .. },
            ..
        },
        &format!("entry {second}: entry {earn} was already reversed by entry {first}")
    );
}

#[test]
fn a_reversal_of_a_later_entry_or_of_a_reversal_is_caught() {
    let mut book = Book::new();
    let earn = book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 60);
    let reversal = book.reverse(earn);
    book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 60);
    let bad = book.reverse(reversal);
    assert_failure!(
        book.verify(),
        Failure::Rule { .. },
        &format!("entry {bad}: entry {reversal} is not a movement that can be reversed")
    );

    let mut book = Book::new();
    let earn = book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 60);
    let seq = book.entries.len() as u64;
    let mut forward = Movement::reversal_of(
        &Book::movement(MovementKind::Earn, BUDGET, MEMBER_A, 60),
        seq + 1,
        "2026-11-23".parse().unwrap(),
        None,
    );
    forward.reverses = Some(seq + 1);
    book.push(EntryBody::Move(forward));
    book.reverse(earn);
    assert_failure!(
        book.verify(),
        Failure::Rule {
            violation: RuleViolation::UnknownEntry(_),
            ..
        },
        &format!("entry {seq}: entry {} does not exist", seq + 1)
    );
}

#[test]
fn a_reused_idempotency_key_is_caught() {
    let mut book = Book::new();
    let actor = Uuid::from_u128(0xb0);
    let body = EntryBody::Move(Book::movement(MovementKind::Earn, BUDGET, MEMBER_A, 60));
    let first = book.push_part(body.clone(), "timesheet-17", 0, actor);
    // Another actor may use the same key.
    book.push_part(body.clone(), "timesheet-17", 0, Uuid::from_u128(0xb1));
    let again = book.push_part(body, "timesheet-17", 0, actor);
    assert_failure!(
        book.verify(),
        Failure::KeyReused { .. },
        &format!(
            "entry {again}: idempotency key \"timesheet-17\" of actor {actor} was already used by the request at entry {first}"
        )
    );
}

#[test]
fn the_parts_of_a_request_must_follow_each_other() {
    let mut book = Book::new();
    let actor = Uuid::from_u128(0xb0);
    let earn = |to| EntryBody::Move(Book::movement(MovementKind::Earn, BUDGET, to, 30));
    for part in 0..3 {
        book.push_part(earn(MEMBER_A), "group", part, actor);
    }
    assert!(book.verify().is_valid(), "a three-part request is valid");
    book.transfer(MovementKind::Gift, MEMBER_A, MEMBER_B, 15);
    let stray = book.push_part(earn(MEMBER_B), "group", 3, actor);
    assert_failure!(
        book.verify(),
        Failure::PartOutOfPlace { part: 3, .. },
        &format!("entry {stray}: it is part 3 of the request with key \"group\" of actor {actor}, but does not follow part 2")
    );
}

#[test]
fn recorded_times_must_not_go_back() {
    let mut book = Book::new();
    let seq = book.transfer(MovementKind::Earn, BUDGET, MEMBER_A, 60);
    book.entries[seq as usize].recorded = at(1);
    assert_failure!(
        book.verify(),
        Failure::TimeGoesBack { .. },
        &format!(
            "entry {seq}: recorded at 2026-11-23T10:00:01.000000Z, before entry {} (recorded at 2026-11-23T10:00:05.000000Z)",
            seq - 1
        )
    );
}

#[test]
fn the_first_entry_must_open_the_programme() {
    let mut book = Book::new();
    book.entries.remove(0);
    for (seq, entry) in book.entries.iter_mut().enumerate() {
        entry.seq = seq as u64;
    }
    assert_failure!(
        book.verify(),
        Failure::Rule {
            violation: RuleViolation::Genesis,
            ..
        },
        "entry 0: the first entry must open the programme account"
    );
}

#[test]
fn a_long_synthetic_history_verifies_in_full() {
    let signer = signer();
    let entries: Vec<Entry> = History::new(42).take(30_000).collect();
    let file = ExportFile::of_entries(&signer, &entries);
    let report = verify_with(&file.path, &trust_of(&signer), None);
    assert!(report.is_valid(), "{:?}", report.failure);
    assert_eq!(report.checked, 30_000);
    let summary = report.summary.unwrap();
    let kinds = [
        summary.moved.allocated,
        summary.moved.earned,
        summary.moved.spent,
        summary.moved.gifted,
        summary.moved.reversed,
        summary.moved.retired,
    ];
    assert!(
        kinds.iter().all(|&m| m > 0),
        "every kind of movement occurs: {kinds:?}"
    );
    assert!(summary.accounts.closed > 0 && summary.accounts.member > 1000);
    assert!(
        entries.iter().any(|e| e.part > 0),
        "the history has multi-part requests"
    );
}

#[test]
fn lines_longer_than_any_entry_and_headers_without_end_are_refused() {
    let signer = signer();
    let trust = trust_of(&signer);
    let book = Book::new();
    let file = ExportFile::of_entries(&signer, &book.entries);
    let mut bytes = std::fs::read(&file.path).unwrap();
    bytes.extend(std::iter::repeat_n(b'a', 3 << 20));
    let long = file.sibling("long.jsonl");
    std::fs::write(&long, &bytes).unwrap();
    assert_failure!(
        verify_with(&long, &trust, None),
        Failure::TrailingData { .. },
        "entry 6: the export goes on past the 6 entries its checkpoint covers"
    );
    // The same garbage where an entry should be.
    let lines = file.lines();
    let mut bytes = [lines[..3].join(&b'\n'), b"\n".to_vec()].concat();
    bytes.extend(std::iter::repeat_n(b'a', 3 << 20));
    std::fs::write(&long, &bytes).unwrap();
    assert_failure!(
        verify_with(&long, &trust, None),
        Failure::LineTooLong { .. },
        "entry 2: the line is longer than 1048576 bytes, more than any entry"
    );
    // A header that never ends is not an export.
    std::fs::write(&long, vec![b'{'; 100_000]).unwrap();
    let options = timecredits_audit::VerifyOptions::default();
    let err = timecredits_audit::verify_file(&long, &trust, &options).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "the first line is not an export header (no newline in its first 65536 bytes)"
        ),
        "{err}"
    );
}
