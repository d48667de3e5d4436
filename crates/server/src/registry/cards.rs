//! Member cards in the registry: each member's current card, as keyed hashes only.
//!
//! A card's number is derived from the server secret, the member and the card's generation (0
//! for the first card, one more at each reissue), so the registering partner can print it again
//! at any time while the registry keeps only `HMAC(k_number, number)`. Its PIN is kept as
//! `HMAC(k_pin, member, PIN)`: a PIN has at most 20 bits, which a plain hash would give away to
//! anyone with a copy of the registry in a second, while the keyed hash needs the server secret
//! too (SECURITY.md). Both keys are subkeys of the server secret.
//!
//! Checking a card and PIN is one critical section (`card_checks`): the count of wrong PINs in
//! a row is read, judged and recorded durably before the next check of any card starts, so
//! concurrent guesses cannot share one count. Every refusal is a registry event, fsynced before
//! it is answered, so a lockout survives a restart and a crash alike; a number that is no card
//! is recorded too, so that the two refusals cost the same and cannot be told apart by timing.

use chrono::{DateTime, Utc};
use hmac::Mac;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Event, HmacSha256, Registry, RegistryError, RequestRef, State};
use crate::cards::{CardNumber, Pin};

/// A member's current card, as the registry knows it.
#[derive(Clone, Debug)]
pub(super) struct Card {
    /// 0 for the member's first card, one more at each reissue.
    pub(super) generation: u32,
    /// The keyed hash of its number.
    pub(super) number: String,
    /// The keyed hash of its PIN.
    pub(super) pin: String,
    pub(super) issued: DateTime<Utc>,
    /// When its PIN was set (at issue or at the last reset).
    pub(super) pin_set: DateTime<Utc>,
    pub(super) blocked: Option<DateTime<Utc>>,
    /// Wrong PINs in a row since the last right one, reset or reissue.
    pub(super) wrong_pins: u32,
    pub(super) locked: Option<DateTime<Utc>>,
}

/// The public record of a member's card: never its number's hash nor its PIN's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CardStatus {
    /// The member's id.
    pub member_id: Uuid,
    /// 0 for the member's first card, one more at each reissue.
    pub generation: u32,
    /// When this card was issued.
    pub issued: DateTime<Utc>,
    /// When its PIN was set (at issue, or by the last reset).
    pub pin_set: DateTime<Utc>,
    /// When it was blocked, if it was: a blocked card is refused until a reissue replaces it.
    pub blocked: Option<DateTime<Utc>>,
    /// When it was locked after too many wrong PINs, if it is: refused until its PIN is reset
    /// or it is reissued.
    pub locked: Option<DateTime<Utc>>,
    /// Wrong PINs in a row since the last right one.
    pub wrong_pins: u32,
}

/// What a check of a card number and PIN found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardVerdict {
    /// The card is current and the PIN right: the member.
    Accepted(Uuid),
    /// No current card has this number, or the PIN is wrong (the answer does not say which).
    Refused,
    /// The card is locked: no PIN is looked at until it is reset.
    Locked,
    /// The PIN is right, but the card is blocked.
    Blocked,
}

impl State {
    /// Makes `member`'s card the one issued at `generation`; the previous number is forgotten.
    pub(super) fn card_issued(
        &mut self,
        member: Uuid,
        generation: u32,
        number: String,
        pin: String,
        at: DateTime<Utc>,
    ) {
        if let Some(old) = self.cards.remove(&member) {
            self.card_by_number.remove(&old.number);
        }
        self.card_by_number.insert(number.clone(), member);
        self.cards.insert(
            member,
            Card {
                generation,
                number,
                pin,
                issued: at,
                pin_set: at,
                blocked: None,
                wrong_pins: 0,
                locked: None,
            },
        );
    }
}

impl Registry {
    fn keyed(&self, purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
        let key = self.subkey(purpose);
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key size");
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    fn card_number_hash(&self, number: &CardNumber) -> String {
        hex::encode(self.keyed("card-number", &[number.as_str().as_bytes()]))
    }

    fn card_pin_hash(&self, member: Uuid, pin: &Pin) -> String {
        hex::encode(self.keyed("card-pin", &[member.as_bytes(), pin.as_str().as_bytes()]))
    }

    /// A keyed digest of a PIN, to put in a request's fingerprint instead of the PIN: the
    /// fingerprints kept to answer repeats must not let a copy of the data directory recover
    /// PINs by trying all 1,110,000 of them.
    pub fn pin_print(&self, pin: &Pin) -> String {
        hex::encode(self.keyed("card-pin-print", &[pin.as_str().as_bytes()]))
    }

    /// The number of `member`'s card at `generation`.
    fn derive_card_number(&self, member: Uuid, generation: u32) -> CardNumber {
        let bytes = self.keyed(
            "card-number-derive",
            &[member.as_bytes(), &generation.to_le_bytes()],
        );
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes[..8]);
        CardNumber::from_bits(u64::from_le_bytes(first))
    }

    /// The number of `member`'s current card, to print it: `None` without a card, or when it
    /// was derived with an earlier server secret (it must then be reissued to be printed).
    pub fn card_number(&self, member: Uuid) -> Option<CardNumber> {
        let card = self.read().cards.get(&member).cloned()?;
        let number = self.derive_card_number(member, card.generation);
        (self.card_number_hash(&number) == card.number).then_some(number)
    }

    /// The public record of `member`'s current card, if they have one.
    pub fn card_status(&self, member: Uuid) -> Option<CardStatus> {
        let state = self.read();
        let c = state.cards.get(&member)?;
        Some(CardStatus {
            member_id: member,
            generation: c.generation,
            issued: c.issued,
            pin_set: c.pin_set,
            blocked: c.blocked,
            locked: c.locked,
            wrong_pins: c.wrong_pins,
        })
    }

    /// Issues `member` a new card with `pin` and returns its number; the previous card (blocked
    /// or not) is refused from now on.
    pub fn issue_card(
        &self,
        member: Uuid,
        pin: &Pin,
        request: RequestRef,
    ) -> Result<CardNumber, RegistryError> {
        let (mut generation, taken) = {
            let state = self.read();
            let next = state.cards.get(&member).map_or(0, |c| c.generation + 1);
            (next, state.card_by_number.clone())
        };
        // Two members' numbers collide with odds of one in 2^55 per pair: the next generation
        // is taken then, so that a number always names one card.
        let number = loop {
            let number = self.derive_card_number(member, generation);
            if !taken.contains_key(&self.card_number_hash(&number)) {
                break number;
            }
            generation += 1;
        };
        self.append(vec![Event::CardIssued {
            member,
            generation,
            number: self.card_number_hash(&number),
            pin: self.card_pin_hash(member, pin),
            at: Utc::now(),
            request,
        }])?;
        Ok(number)
    }

    /// Blocks `member`'s card (a blocked card stays blocked).
    pub fn block_card(&self, member: Uuid, request: RequestRef) -> Result<(), RegistryError> {
        self.append(vec![Event::CardBlocked {
            member,
            at: Utc::now(),
            request,
        }])
    }

    /// Replaces the PIN of `member`'s card, and clears its count of wrong PINs and its lockout.
    pub fn reset_card_pin(
        &self,
        member: Uuid,
        pin: &Pin,
        request: RequestRef,
    ) -> Result<(), RegistryError> {
        self.append(vec![Event::CardPinReset {
            member,
            pin: self.card_pin_hash(member, pin),
            at: Utc::now(),
            request,
        }])
    }

    /// Checks a card number and PIN; a card is locked at its `attempts`-th wrong PIN in a row.
    ///
    /// The order of the checks is what keeps them from being an oracle: a number that is no
    /// card and a wrong PIN are both [`CardVerdict::Refused`], recorded alike; a locked card
    /// answers before its PIN is looked at (so a lockout ends the guessing); a blocked card
    /// answers only after its PIN was found right (so its state tells nothing to one who does
    /// not know the PIN, and a wrong PIN on it counts toward the lockout like any other).
    pub fn check_card(
        &self,
        number: &CardNumber,
        pin: &Pin,
        attempts: u32,
    ) -> Result<CardVerdict, RegistryError> {
        let _one_at_a_time = self.card_checks.lock().unwrap_or_else(|p| p.into_inner());
        let number_hash = self.card_number_hash(number);
        let found = {
            let state = self.read();
            state
                .card_by_number
                .get(&number_hash)
                .and_then(|m| state.cards.get(m).map(|c| (*m, c.clone())))
        };
        let now = Utc::now();
        let Some((member, card)) = found else {
            // The same work as a wrong PIN: a hash of the PIN and a durable record.
            let _ = self.card_pin_hash(Uuid::nil(), pin);
            self.append(vec![Event::CardRefused {
                member: None,
                at: now,
            }])?;
            return Ok(CardVerdict::Refused);
        };
        if card.locked.is_some() {
            return Ok(CardVerdict::Locked);
        }
        if self.card_pin_hash(member, pin) != card.pin {
            let mut events = vec![Event::CardRefused {
                member: Some(member),
                at: now,
            }];
            if card.wrong_pins.saturating_add(1) >= attempts.max(1) {
                events.push(Event::CardLocked { member, at: now });
                tracing::warn!(%member, "a card was locked after too many wrong PINs in a row");
            }
            self.append(events)?;
            return Ok(CardVerdict::Refused);
        }
        if card.blocked.is_some() {
            return Ok(CardVerdict::Blocked);
        }
        if card.wrong_pins > 0 {
            self.append(vec![Event::CardAccepted { member }])?;
        }
        Ok(CardVerdict::Accepted(member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tests::request;

    fn pin(p: &str) -> Pin {
        Pin::parse(p).unwrap()
    }

    #[test]
    fn a_card_is_checked_locked_reset_blocked_and_replaced_and_all_of_it_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let member = Uuid::now_v7();
        let (first, second) = {
            let registry = Registry::open(dir.path(), false).unwrap();
            let first = registry
                .issue_card(member, &pin("1234"), request("i"))
                .unwrap();
            assert_eq!(registry.card_number(member), Some(first.clone()));
            let check = |n: &CardNumber, p: &str| registry.check_card(n, &pin(p), 3).unwrap();
            assert_eq!(check(&first, "1234"), CardVerdict::Accepted(member));
            let other = CardNumber::from_bits(7);
            assert_eq!(check(&other, "1234"), CardVerdict::Refused);
            assert_eq!(check(&first, "0000"), CardVerdict::Refused);
            // A right PIN starts the count again.
            assert_eq!(check(&first, "1234"), CardVerdict::Accepted(member));
            assert_eq!(registry.card_status(member).unwrap().wrong_pins, 0);
            for _ in 0..3 {
                assert_eq!(check(&first, "9999"), CardVerdict::Refused);
            }
            assert_eq!(check(&first, "1234"), CardVerdict::Locked);
            registry
                .reset_card_pin(member, &pin("5678"), request("p"))
                .unwrap();
            assert_eq!(check(&first, "1234"), CardVerdict::Refused);
            assert_eq!(check(&first, "5678"), CardVerdict::Accepted(member));
            registry.block_card(member, request("b")).unwrap();
            assert_eq!(check(&first, "0000"), CardVerdict::Refused);
            assert_eq!(check(&first, "5678"), CardVerdict::Blocked);
            let second = registry
                .issue_card(member, &pin("4321"), request("r"))
                .unwrap();
            assert_ne!(first, second);
            assert_eq!(check(&first, "5678"), CardVerdict::Refused);
            for _ in 0..2 {
                assert_eq!(check(&second, "0000"), CardVerdict::Refused);
            }
            (first, second)
        };
        let registry = Registry::open(dir.path(), true).unwrap();
        let status = registry.card_status(member).unwrap();
        assert_eq!((status.generation, status.wrong_pins), (1, 2));
        assert_eq!(registry.card_number(member), Some(second.clone()));
        // The third wrong PIN in a row, counted across the restart, locks it.
        let check = |n: &CardNumber, p: &str| registry.check_card(n, &pin(p), 3).unwrap();
        assert_eq!(check(&second, "0000"), CardVerdict::Refused);
        assert_eq!(check(&second, "4321"), CardVerdict::Locked);
        assert_eq!(check(&first, "5678"), CardVerdict::Refused);
        // Neither numbers nor PINs are stored in the clear.
        let file = std::fs::read(dir.path().join(super::super::layout::REGISTRY)).unwrap();
        let text = String::from_utf8_lossy(&file);
        for number in [first.as_str(), second.as_str()] {
            assert!(!text.contains(number), "{number} is stored in the clear");
        }
        for pin in ["1234", "5678", "4321"] {
            let quoted = format!("\"{pin}\"");
            assert!(!text.contains(&quoted), "{pin} is stored in the clear");
        }
    }

    #[test]
    fn a_rotation_of_the_server_secret_says_how_many_cards_must_be_issued_again() {
        let dir = tempfile::tempdir().unwrap();
        let member = Uuid::now_v7();
        let number = {
            let registry = Registry::open(dir.path(), false).unwrap();
            registry
                .issue_card(member, &pin("1234"), request("i"))
                .unwrap()
        };
        let summary = Registry::rotate_secret(dir.path()).unwrap();
        assert!(summary.contains("1 must be issued again"), "{summary}");
        let registry = Registry::open(dir.path(), true).unwrap();
        let check = registry.check_card(&number, &pin("1234"), 5).unwrap();
        assert_eq!(check, CardVerdict::Refused);
        assert_eq!(registry.card_number(member), None, "not printable either");
        let again = registry
            .issue_card(member, &pin("1234"), request("r"))
            .unwrap();
        let check = registry.check_card(&again, &pin("1234"), 5).unwrap();
        assert_eq!(check, CardVerdict::Accepted(member));
    }
}
