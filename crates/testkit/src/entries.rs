//! Committed entries built by hand, for tests of what reads them (encodings, views, verifiers).

use chrono::{DateTime, NaiveDate};
use timecredits_domain::{
    AccountId, AccountKind, Details, Entry, EntryBody, EntryKind, KeyRotation, Minutes, Movement,
    MovementKind,
};
use uuid::Uuid;

use crate::intents::{key, text};

/// An entry of `kind` with every field its kind may carry set (a spend carries every detail), so
/// that a test of a reader sees all of them. Every field is spelled out, without defaults: a new
/// kind or field does not compile here until it is given a value, and so reaches such tests.
pub fn example(kind: EntryKind) -> Entry {
    let body = match kind {
        EntryKind::Open => EntryBody::Open {
            account: account(0xb),
            account_kind: AccountKind::Budget,
            owner: Some(Uuid::from_u128(0xb0)),
        },
        EntryKind::Close => EntryBody::Close {
            account: account(0xc),
        },
        EntryKind::Allocate => movement(MovementKind::Allocate, 0x1, 0xb, None, Details::default()),
        EntryKind::Earn => movement(MovementKind::Earn, 0xb, 0xa, None, earned()),
        EntryKind::Spend => movement(MovementKind::Spend, 0xa, 0xe, None, spent()),
        EntryKind::Gift => movement(MovementKind::Gift, 0xa, 0xc, None, Details::default()),
        EntryKind::Reverse => movement(MovementKind::Reverse, 0xa, 0xb, Some(3), reversed()),
        EntryKind::Retire => movement(MovementKind::Retire, 0xe, 0x1, None, Details::default()),
        EntryKind::Expire => movement(MovementKind::Expire, 0xa, 0x1, None, expired()),
        EntryKind::Key => EntryBody::Key(
            KeyRotation::new(
                "ledger.example/timecredits+5c2f1a0b+AdMHH1GS1ZvSVS6X5B6rAMvQ6bKdNsuJvT3J0mYEc2Qw",
                [7; 64],
            )
            .expect("a well-formed rotation"),
        ),
    };
    Entry {
        seq: 5,
        id: Uuid::from_u128(0x0192_f0c1_8a40_7d21_b7c3_5a1f_0e9d_3c77),
        recorded: DateTime::from_timestamp_micros(1_790_000_000_123_456).expect("a valid time"),
        actor: Uuid::from_u128(0xad),
        key: key("example-1"),
        part: 1,
        body,
    }
}

fn account(n: u128) -> AccountId {
    AccountId(Uuid::from_u128(n))
}

fn movement(
    kind: MovementKind,
    debit: u128,
    credit: u128,
    reverses: Option<u64>,
    details: Details,
) -> EntryBody {
    EntryBody::Move(Movement {
        kind,
        debit: account(debit),
        credit: account(credit),
        minutes: Minutes::new(90).expect("valid minutes"),
        effective: NaiveDate::from_ymd_opt(2026, 9, 20).expect("a valid date"),
        reverses,
        details,
    })
}

fn earned() -> Details {
    Details {
        activity: Some(text("lunch club")),
        reference: Some(text("TS-000042")),
        adults: None,
        children: None,
        expiry_months: None,
    }
}

fn spent() -> Details {
    Details {
        activity: Some(text("family swim")),
        reference: Some(text("B-7")),
        adults: Some(2),
        children: Some(1),
        expiry_months: None,
    }
}

fn reversed() -> Details {
    Details {
        activity: None,
        reference: Some(text("entered twice")),
        adults: None,
        children: None,
        expiry_months: None,
    }
}

fn expired() -> Details {
    Details {
        activity: None,
        reference: None,
        adults: None,
        children: None,
        expiry_months: Some(12),
    }
}
