//! Member cards: issued (or reissued), printed and blocked by the partner that registered the
//! member, or an administrator, who also reset a card's PIN; and a card and PIN checked, for a
//! venue's redemption (`service::redemptions`) and for a member's sign-in ([`sign_in`]).
//!
//! A card another partner registered is answered as not found (404 `card_not_found`, with the
//! words used whether or not it exists), as the rest of the API answers what a caller may not
//! see. Every check of a card and PIN counts its refusals against the redemption throttle
//! (`spend_codes::GuessLimits`): a guesser gains nothing by switching between spend codes,
//! cards, venues, keys or the sign-in.

use timecredits_domain::IdempotencyKey;
use uuid::Uuid;

use super::begin_registry_write;
use crate::auth::{not_visible, Caller};
use crate::cards::{CardNumber, Pin};
use crate::problem::ApiError;
use crate::registry::{CardStatus, CardVerdict, Member, Previous};
use crate::spend_codes::Attempt;
use crate::AppState;

/// A card issued, or found again for a repeat.
#[derive(Debug)]
pub struct Issued {
    /// The card's number (printed on it).
    pub number: CardNumber,
    /// The PIN, when it was generated for this request: shown once, never on a repeat (a lost
    /// answer is mended by resetting the PIN). A PIN the partner chose is never sent back.
    pub generated_pin: Option<Pin>,
    /// The card's public record.
    pub status: CardStatus,
    /// Whether this answers a repeat.
    pub replayed: bool,
}

/// The 404 for a card the caller may not see, whether or not it exists.
fn hidden(id: Uuid) -> ApiError {
    ApiError::CardNotFound(not_visible("card of member", id))
}

/// Checks that `caller` may manage member `id`'s card: an administrator any member's, a partner
/// those it registered. Anything else is not found, in the same words as a member that does
/// not exist.
fn managed(state: &AppState, caller: &Caller, id: Uuid) -> Result<Member, ApiError> {
    let member = state.registry.member(id).ok_or_else(|| hidden(id))?;
    caller
        .may_manage_member(member.registered_by)
        .map_err(|_| hidden(id))?;
    Ok(member)
}

/// The record of member `id`'s card, which must exist.
fn status(state: &AppState, id: Uuid) -> Result<CardStatus, ApiError> {
    state.registry.card_status(id).ok_or_else(|| hidden(id))
}

/// The PIN the partner chose, or a generated one; and whether it was generated (then it is
/// shown once).
fn chosen_or_generated(pin: Option<Pin>) -> Result<(Pin, bool), ApiError> {
    match pin {
        Some(pin) => Ok((pin, false)),
        None => Pin::generate()
            .map(|pin| (pin, true))
            .map_err(|e| ApiError::Internal(format!("no randomness: {e}"))),
    }
}

/// Issues member `id` a card with `pin` (or a generated one), replacing any card they had: the
/// old number is refused from the moment this returns. `fingerprint` identifies the request.
pub fn issue(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
    pin: Option<Pin>,
) -> Result<Issued, ApiError> {
    managed(state, caller, id)?;
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    let (number, generated_pin, replayed) = match write.previous {
        Previous::Same(_) => {
            // The card a repeat finds is the member's current one (a later reissue's, if any).
            let number = state.registry.card_number(id).ok_or_else(|| hidden(id))?;
            (number, None, true)
        }
        // `begin_registry_write` refused `Different`.
        Previous::None | Previous::Different => {
            let (pin, generated) = chosen_or_generated(pin)?;
            let number = state.registry.issue_card(id, &pin, write.request)?;
            (number, generated.then_some(pin), false)
        }
    };
    Ok(Issued {
        number,
        generated_pin,
        status: status(state, id)?,
        replayed,
    })
}

/// Blocks member `id`'s card (a blocked card stays blocked); `fingerprint` identifies the
/// request. Returns the card's record and whether this answers a repeat.
pub fn block(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
) -> Result<(CardStatus, bool), ApiError> {
    managed(state, caller, id)?;
    let card = status(state, id)?;
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    let replayed = matches!(write.previous, Previous::Same(_));
    if card.blocked.is_none() {
        state.registry.block_card(id, write.request)?;
    }
    Ok((status(state, id)?, replayed))
}

/// Sets a new PIN (`pin`, or a generated one, then returned) on member `id`'s card, and clears
/// its wrong PINs and its lockout; `fingerprint` identifies the request. A repeat changes
/// nothing and shows no PIN. Returns the generated PIN, the card's record and whether this
/// answers a repeat.
pub fn reset_pin(
    state: &AppState,
    caller: &Caller,
    idempotency_key: &IdempotencyKey,
    fingerprint: String,
    id: Uuid,
    pin: Option<Pin>,
) -> Result<(Option<Pin>, CardStatus, bool), ApiError> {
    managed(state, caller, id)?;
    status(state, id)?;
    let write = begin_registry_write(state, caller.actor(), idempotency_key, fingerprint)?;
    if let Previous::Same(_) = write.previous {
        return Ok((None, status(state, id)?, true));
    }
    let (pin, generated) = chosen_or_generated(pin)?;
    state.registry.reset_card_pin(id, &pin, write.request)?;
    Ok((generated.then_some(pin), status(state, id)?, false))
}

/// Member `id`'s card, if they have one: its number and its record. Administrators, and the
/// earn partner that registered the member; anyone else: not found.
pub fn current(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<Option<(CardNumber, CardStatus)>, ApiError> {
    managed(state, caller, id)?;
    Ok(state
        .registry
        .card_number(id)
        .zip(state.registry.card_status(id)))
}

/// Member `id`'s card as a printable SVG document (never with its PIN).
pub fn printable(state: &AppState, caller: &Caller, id: Uuid) -> Result<String, ApiError> {
    managed(state, caller, id)?;
    let number = state.registry.card_number(id).ok_or_else(|| hidden(id))?;
    Ok(crate::cards::card_svg(&state.cards.programme_name, &number))
}

/// The member whose card is `number`, if `pin` is its PIN and it is neither locked nor
/// blocked. The caller has admitted the attempt ([`crate::spend_codes::SpendCodes::admit`]) and
/// counts a refusal against it.
pub(super) fn check(state: &AppState, number: &CardNumber, pin: &Pin) -> Result<Uuid, ApiError> {
    match state
        .registry
        .check_card(number, pin, state.cards.pin_attempts)?
    {
        CardVerdict::Accepted(member) => Ok(member),
        CardVerdict::Refused => Err(ApiError::CardInvalid),
        CardVerdict::Locked => Err(ApiError::CardLocked),
        CardVerdict::Blocked => Err(ApiError::CardBlocked),
    }
}

/// Signs a member in with their card number and PIN, presented by `who` (for a page, its
/// address; its key and partner may be nil), and returns the member. The same checks as a
/// venue's redemption, under the same throttle: a refused sign-in counts against the same guess
/// limits as a refused redemption, and toward the card's lockout.
pub fn sign_in(
    state: &AppState,
    who: &Attempt,
    number: &CardNumber,
    pin: &Pin,
) -> Result<Member, ApiError> {
    state.spend_codes.admit(who)?;
    let result = check(state, number, pin).and_then(|id| {
        state
            .registry
            .member(id)
            .ok_or_else(|| ApiError::Internal(format!("card of member {id} has no member")))
    });
    if let Err(e) = &result {
        if e.status().is_client_error() {
            state.spend_codes.refused(who, e);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Code;
    use crate::registry::{Role, Scope};
    use crate::service::{members, partners, testing};
    use timecredits_domain::ShortText;

    fn pin(p: &str) -> Pin {
        Pin::parse(p).unwrap()
    }

    #[actix_web::test]
    async fn a_card_signs_its_member_in_and_only_its_registrar_manages_it() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let roles = vec![Role::Earn];
        let club = |name: &str| ShortText::new("name", name).unwrap();
        let (a, _) = partners::create(&state, &admin, &key("a"), club("A"), roles.clone())
            .await
            .unwrap();
        let (b, _) = partners::create(&state, &admin, &key("b"), club("B"), roles)
            .await
            .unwrap();
        let (a, b) = (
            testing::partner(&a, vec![Scope::Earn]),
            testing::partner(&b, vec![Scope::Earn]),
        );
        let member = members::register(&state, &a, &key("m"), None)
            .await
            .unwrap()
            .0
            .member_id;
        let issued = issue(&state, &a, &key("c"), "c".into(), member, None).unwrap();
        let generated = issued.generated_pin.clone().unwrap();
        assert!(!issued.replayed);
        let again = issue(&state, &a, &key("c"), "c".into(), member, None).unwrap();
        assert_eq!(
            (&again.number, again.generated_pin.is_none()),
            (&issued.number, true)
        );
        let other = issue(
            &state,
            &a,
            &key("c"),
            "other".into(),
            member,
            Some(pin("1234")),
        );
        assert!(matches!(other, Err(ApiError::IdempotencyKeyReused(_))));
        // Another partner: not found, in the words used for a member that does not exist.
        let theirs = issue(&state, &b, &key("x"), "x".into(), member, None).unwrap_err();
        let nobody = Uuid::now_v7();
        let absent = issue(&state, &b, &key("y"), "y".into(), nobody, None).unwrap_err();
        assert_eq!(theirs.code(), Code::CardNotFound);
        assert_eq!(
            theirs.to_string().replace(&member.to_string(), "ID"),
            absent.to_string().replace(&nobody.to_string(), "ID")
        );
        assert!(printable(&state, &b, member).is_err());
        assert!(block(&state, &b, &key("z"), "z".into(), member).is_err());
        let svg = printable(&state, &a, member).unwrap();
        assert!(svg.contains(&issued.number.grouped()));

        let who = Attempt {
            api_key: Uuid::nil(),
            partner: Uuid::nil(),
            address: None,
        };
        let signed = sign_in(&state, &who, &issued.number, &generated).unwrap();
        assert_eq!(signed.account, member);
        let wrong = sign_in(&state, &who, &issued.number, &pin("00000")).unwrap_err();
        assert_eq!(wrong.code(), Code::CardInvalid);
        let (blocked, replayed) = block(&state, &a, &key("k"), "k".into(), member).unwrap();
        assert!(blocked.blocked.is_some() && !replayed);
        let refused = sign_in(&state, &who, &issued.number, &generated).unwrap_err();
        assert_eq!(refused.code(), Code::CardBlocked);
        // The reissued card signs in; the old number is no card any more.
        let new = issue(&state, &a, &key("n"), "n".into(), member, Some(pin("4321"))).unwrap();
        assert!(new.generated_pin.is_none());
        assert_eq!(
            sign_in(&state, &who, &new.number, &pin("4321"))
                .unwrap()
                .account,
            member
        );
        let old = sign_in(&state, &who, &issued.number, &generated).unwrap_err();
        assert_eq!(old.code(), Code::CardInvalid);
    }

    #[actix_web::test]
    async fn a_locked_card_waits_for_a_new_pin() {
        let (_dir, state) = testing::open();
        let admin = testing::administrator();
        let key = testing::idempotency_key;
        let member = members::register(&state, &admin, &key("m"), None)
            .await
            .unwrap()
            .0
            .member_id;
        let card = issue(
            &state,
            &admin,
            &key("c"),
            "c".into(),
            member,
            Some(pin("2468")),
        )
        .unwrap()
        .number;
        // Each attempt from another address, key and partner: the card's own count locks it.
        for i in 0..state.cards.pin_attempts {
            let who = Attempt {
                api_key: Uuid::now_v7(),
                partner: Uuid::now_v7(),
                address: Some(std::net::IpAddr::from([10, 0, 0, i as u8])),
            };
            let refused = sign_in(&state, &who, &card, &pin("1111")).unwrap_err();
            assert_eq!(refused.code(), Code::CardInvalid);
        }
        let who = Attempt {
            api_key: Uuid::now_v7(),
            partner: Uuid::now_v7(),
            address: None,
        };
        let locked = sign_in(&state, &who, &card, &pin("2468")).unwrap_err();
        assert_eq!(locked.code(), Code::CardLocked);
        let (shown, status, _) =
            reset_pin(&state, &admin, &key("p"), "p".into(), member, None).unwrap();
        assert!(status.locked.is_none() && status.wrong_pins == 0);
        let new_pin = shown.unwrap();
        assert_eq!(
            sign_in(&state, &who, &card, &new_pin).unwrap().account,
            member
        );
    }
}
