//! Redeeming a member's consent, a spend code or a member card and PIN: the venue takes credits
//! from the member who gave it. Both go through one function, under one throttle: every
//! refusal counts against the guess limits of whoever presented it.

use timecredits_domain::{
    AccountId, Details, EntryBody, IdempotencyKey, Intent, Minutes, MovementKind, Transfer,
};
use timecredits_ledger::Committed;

use super::{begin, cards, commit, Remembered};
use crate::auth::Caller;
use crate::cards::{CardNumber, Pin};
use crate::problem::ApiError;
use crate::spend_codes::{Attempt, By, Prior};
use crate::AppState;

/// How the member consents to a spend.
#[derive(Debug)]
pub enum Consent<'a> {
    /// A one-time spend code, as the venue typed it.
    SpendCode(&'a str),
    /// The member's card (its number passed its check character) and PIN.
    Card {
        /// The card's number.
        number: &'a CardNumber,
        /// The PIN the member typed.
        pin: &'a Pin,
    },
}

/// A venue's redemption, parsed.
#[derive(Debug)]
pub struct Redemption<'a> {
    /// The member's consent.
    pub consent: Consent<'a>,
    /// The amount.
    pub minutes: Minutes,
    /// What was spent on, and by whom.
    pub details: Details,
    /// The request's fingerprint, computed over the code or card number as the member means it
    /// (so that a retry typed differently is still the same request) and a keyed digest of the
    /// PIN (never the PIN: fingerprints are kept on disk).
    pub fingerprint: String,
}

/// Redeems `redemption` into the `venue` account of `caller`, presented by `who`.
pub async fn redeem(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    venue: AccountId,
    who: &Attempt,
    redemption: Redemption<'_>,
) -> Result<Committed, ApiError> {
    let actor = caller.actor();
    let by = (actor, idempotency_key.as_str().to_owned());
    let _guard = begin(state, actor, idempotency_key, Remembered::Ledger)?;
    // Before anything looks at the code: a throttled caller learns nothing.
    state.spend_codes.admit(who)?;
    let spend = |member| {
        Intent::Transfer(Transfer {
            kind: MovementKind::Spend,
            debit: member,
            credit: venue,
            minutes: redemption.minutes,
            effective: None,
            details: redemption.details.clone(),
        })
    };
    let result = redeem_code(
        state,
        caller,
        idempotency_key,
        (&by, &redemption.fingerprint),
        &redemption.consent,
        redemption.minutes.get(),
        spend,
    )
    .await;
    if let Err(e) = &result {
        if e.status().is_client_error() {
            state.spend_codes.refused(who, e);
        }
    }
    result
}

/// The part of [`redeem`] whose every refusal counts against the guess limits.
async fn redeem_code(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    (by, print): (&By, &str),
    consent: &Consent<'_>,
    minutes: u64,
    spend: impl Fn(AccountId) -> Intent,
) -> Result<Committed, ApiError> {
    // A repeat is decided by the fingerprint alone, before the code or card is looked up, so
    // its answer cannot depend on whether some other code, card or PIN is right.
    if state.spend_codes.prior(by, print) == Prior::Different {
        return Err(ApiError::IdempotencyKeyReused(by.1.clone()));
    }
    // A repeat of a committed redemption (its record may be past the outcome window): the member
    // is the one the first redemption debited, and the ledger compares the rest of the request.
    if let Some(entries) = state.ledger.previous_request(by.0, idempotency_key)? {
        let member = match entries.first().map(|e| &e.body) {
            Some(EntryBody::Move(m)) => m.debit,
            _ => return Err(ApiError::IdempotencyKeyReused(by.1.clone())),
        };
        let replayed = commit(state, caller, idempotency_key, vec![spend(member)]).await;
        if replayed.is_ok() {
            // Settles a reservation whose outcome an earlier storage failure left open.
            state.spend_codes.finish(by, true);
        }
        return replayed.map_err(|e| e.for_venue(member));
    }
    let now = chrono::Utc::now();
    let member = AccountId(match consent {
        Consent::SpendCode(code) => {
            let changed = |member| super::members::credential_changed(state, member);
            state
                .spend_codes
                .reserve(by, print, code, minutes, now, changed)?
        }
        Consent::Card { number, pin } => {
            let member = cards::check(state, number, pin)?;
            state.spend_codes.hold(by, print, now)?;
            member
        }
    });
    let result = commit(state, caller, idempotency_key, vec![spend(member)]).await;
    match &result {
        Ok(_) => state.spend_codes.finish(by, true),
        // Refused for certain: the code is free again.
        Err(
            ApiError::Rule(_)
            | ApiError::Validation(_)
            | ApiError::IdempotencyKeyReused(_)
            | ApiError::LedgerBusy,
        ) => state.spend_codes.finish(by, false),
        // The outcome is unknown (storage failure): the reservation stays, and a retry of the
        // same request, or the next start, settles it from the ledger.
        Err(_) => {}
    }
    result.map_err(|e| e.for_venue(member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Code;
    use crate::registry::{Role, Scope};
    use crate::service::{members, partners, submit, testing};
    use timecredits_domain::ShortText;

    #[actix_web::test]
    async fn a_code_pays_once_a_repeat_is_answered_and_a_venue_learns_no_balance() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let name = ShortText::new("name", "Club").unwrap();
        let roles = vec![Role::Earn, Role::Spend];
        let (partner, _) = partners::create(&state, &admin, &key("p"), name, roles)
            .await
            .unwrap();
        let budget = AccountId(partner.budget_account.unwrap());
        let venue = AccountId(partner.venue_account.unwrap());
        let member = members::register(&state, &admin, &key("m"), None)
            .await
            .unwrap()
            .0;
        let member = AccountId(member.member_id);
        let transfer = |kind, debit, credit, details| {
            Intent::Transfer(Transfer {
                kind,
                debit,
                credit,
                minutes: Minutes::new(60).unwrap(),
                effective: None,
                details,
            })
        };
        let programme = state.ledger.programme_account();
        let allocate = transfer(
            MovementKind::Allocate,
            programme,
            budget,
            Details::default(),
        );
        submit(&state, &admin, &key("a"), vec![allocate])
            .await
            .unwrap();
        let caller = testing::partner(&partner, vec![Scope::Earn, Scope::Spend]);
        let lunch = Details {
            activity: Some(ShortText::new("activity", "lunch").unwrap()),
            ..Details::default()
        };
        let earn = transfer(MovementKind::Earn, budget, member, lunch);
        submit(&state, &caller, &key("e"), vec![earn])
            .await
            .unwrap();
        let now = chrono::Utc::now();
        let (issued, _) = state
            .spend_codes
            .issue(member.0, "c", "print", None, now, None)
            .unwrap();
        let who = Attempt {
            api_key: caller.api_key_id().unwrap(),
            partner: partner.id,
            address: None,
        };
        let redemption = |code, minutes| Redemption {
            consent: Consent::SpendCode(code),
            minutes: Minutes::new(minutes).unwrap(),
            details: Details {
                activity: Some(ShortText::new("activity", "swim").unwrap()),
                adults: Some(1),
                children: Some(0),
                ..Details::default()
            },
            fingerprint: format!("{code} {minutes}"),
        };
        let (r1, r2, r3) = (key("r1"), key("r2"), key("r3"));
        let code = issued.code.as_str();
        let refused = redeem(&state, &caller, &r1, venue, &who, redemption(code, 61))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InsufficientCredits);
        assert!(!refused.to_string().contains("60"), "{refused}");
        let spent = redeem(&state, &caller, &r2, venue, &who, redemption(code, 60))
            .await
            .unwrap();
        assert!(!spent.replayed);
        let again = redeem(&state, &caller, &r2, venue, &who, redemption(code, 60))
            .await
            .unwrap();
        assert!(again.replayed);
        let used = redeem(&state, &caller, &r3, venue, &who, redemption(code, 1)).await;
        assert!(matches!(used, Err(ApiError::SpendCodeUsed)));
    }
}
