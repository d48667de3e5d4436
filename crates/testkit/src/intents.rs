//! Requests as clients make them: idempotency keys, texts, details and transfers.

use chrono::NaiveDate;
use timecredits_domain::{
    AccountId, Details, IdempotencyKey, Intent, Minutes, MovementKind, ShortText, Transfer,
};
use uuid::Uuid;

/// The idempotency key `k`; panics if it is not a valid key.
pub fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new(k).expect("a valid idempotency key")
}

/// A fresh idempotency key, never used before.
pub fn fresh() -> IdempotencyKey {
    key(&Uuid::now_v7().to_string())
}

/// The short text `s`; panics if it is not a valid one.
pub fn text(s: &str) -> ShortText {
    ShortText::new("text", s).expect("a valid short text")
}

/// Descriptive details that fit a movement of `kind`: an activity for earns and spends, a party
/// of one adult for spends, a period of 12 months for expiries, nothing for the others.
pub fn details(kind: MovementKind) -> Details {
    match kind {
        MovementKind::Earn => Details {
            activity: Some(text("lunch club")),
            ..Details::default()
        },
        MovementKind::Spend => Details {
            activity: Some(text("swimming")),
            adults: Some(1),
            children: Some(0),
            ..Details::default()
        },
        MovementKind::Expire => Details {
            expiry_months: Some(12),
            ..Details::default()
        },
        _ => Details::default(),
    }
}

/// A transfer of `minutes` of `kind` from `debit` to `credit`, effective on the day it is
/// recorded, with the [`details`] of its kind.
pub fn transfer(kind: MovementKind, debit: AccountId, credit: AccountId, minutes: u64) -> Intent {
    Intent::Transfer(Transfer {
        kind,
        debit,
        credit,
        minutes: Minutes::new(minutes).expect("a valid number of minutes"),
        effective: None,
        details: details(kind),
    })
}

/// A transfer like [`transfer`], dated `effective`, and for earns and spends of `activity`.
pub fn transfer_on(
    kind: MovementKind,
    debit: AccountId,
    credit: AccountId,
    minutes: u64,
    effective: NaiveDate,
    activity: &str,
) -> Intent {
    let mut details = details(kind);
    if details.activity.is_some() {
        details.activity = Some(text(activity));
    }
    Intent::Transfer(Transfer {
        kind,
        debit,
        credit,
        minutes: Minutes::new(minutes).expect("a valid number of minutes"),
        effective: Some(effective),
        details,
    })
}
