//! Member cards: how a member without a phone consents to a spend, with a printed card and a
//! PIN typed on the venue's device.
//!
//! This module holds what a card *is*, with no storage: the number's format and its check
//! character, the PIN's rules, and the printable card. The registry records cards (only keyed
//! hashes of their numbers and PINs, see `registry::cards`); `service::cards` issues, blocks and
//! checks them.
//!
//! # The number
//! 12 characters of Crockford base32, printed in three groups of four (`7KQ2 M9XD 4RTB`): 11
//! random characters (55 bits, derived from the server secret, so a number says nothing of the
//! member, of when the card was made or of any other card, and a guesser under the redemption
//! throttle would need millions of years to find one) and a check character. The check is the
//! sum of the characters weighted by distinct powers of a generator of GF(32), so every change
//! of one character, and every swap of two different characters, is caught as a typo before the
//! number is looked up: a slip at the till is never counted as a guess.
//!
//! # The PIN
//! 4 to 6 digits, chosen by the partner at issue or generated (and then shown once). The PIN is
//! low-entropy by nature; what keeps it is the lockout after [`Config::pin_attempts`] wrong PINs
//! in a row and the redemption throttle (SECURITY.md works out the worst case).

use crate::spend_codes::{normalise, ALPHABET};

/// The characters of a card number, its check character included.
pub const NUMBER_LEN: usize = 12;

/// The random characters of a card number (before its check character).
const DATA_LEN: usize = NUMBER_LEN - 1;

/// The bits of randomness in a card number.
pub const NUMBER_BITS: u32 = 5 * DATA_LEN as u32;

/// The shortest PIN.
pub const PIN_MIN: usize = 4;

/// The longest PIN.
pub const PIN_MAX: usize = 6;

/// The length of a generated PIN.
const GENERATED_PIN_LEN: usize = 4;

/// How cards behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The programme's name, printed on every card.
    pub programme_name: String,
    /// Wrong PINs in a row after which a card is locked until its PIN is reset or it is
    /// reissued.
    pub pin_attempts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            programme_name: "Time credits".into(),
            pin_attempts: 5,
        }
    }
}

/// Multiplication in GF(32), modulo the primitive polynomial x^5 + x^2 + 1.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        b >>= 1;
        a <<= 1;
        if a & 0b10_0000 != 0 {
            a ^= 0b10_0101;
        }
    }
    product
}

/// The weighted sum of `values` in GF(32): value `i` is weighted by α^(i+1), α = 2 a generator
/// of the field's 31 non-zero elements, so the weights of a card number's 11 characters are
/// distinct and differ from the check character's weight (1).
fn weighted_sum(values: impl Iterator<Item = u8>) -> u8 {
    let mut weight = 1u8;
    values.fold(0, |sum, v| {
        weight = gf_mul(weight, 2);
        sum ^ gf_mul(weight, v)
    })
}

/// The value of a Crockford character (after [`normalise`]).
fn value(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u8)
}

/// Why a typed card number is not one: each can only be a typing slip (nothing was looked up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Not 12 characters (spaces and hyphens aside).
    #[error("a card number has {NUMBER_LEN} characters (spaces and hyphens do not count)")]
    Length,
    /// A character that is not in a card number's alphabet.
    #[error("a card number has only the digits and the letters A to Z without I, L, O and U")]
    Character,
    /// The check character does not match: a character was mistyped or two were swapped.
    #[error("the card number does not check: a character was mistyped or two were swapped")]
    Check,
}

/// A card number that passed its check, normalised (upper case, no separators).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// Reads a number as a person typed it: case, spaces and hyphens do not matter, and I, L and
    /// O are read as 1, 1 and 0. Refuses anything whose check character does not match.
    pub fn parse(typed: &str) -> Result<CardNumber, NumberError> {
        let normalised = normalise(typed);
        if normalised.len() != NUMBER_LEN {
            return Err(NumberError::Length);
        }
        let values = normalised
            .bytes()
            .map(value)
            .collect::<Option<Vec<u8>>>()
            .ok_or(NumberError::Character)?;
        if weighted_sum(values[..DATA_LEN].iter().copied()) != values[DATA_LEN] {
            return Err(NumberError::Check);
        }
        Ok(CardNumber(normalised))
    }

    /// The number whose random characters are the low [`NUMBER_BITS`] bits of `bits`.
    pub fn from_bits(bits: u64) -> CardNumber {
        let values: Vec<u8> = (0..DATA_LEN)
            .rev()
            .map(|i| (bits >> (5 * i) & 31) as u8)
            .collect();
        let check = weighted_sum(values.iter().copied());
        let text = values
            .iter()
            .chain([&check])
            .map(|&v| ALPHABET[usize::from(v)] as char)
            .collect();
        CardNumber(text)
    }

    /// The number, normalised: what its hash is computed over.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as printed: three groups of four.
    pub fn grouped(&self) -> String {
        let b = self.0.as_bytes();
        let group = |r: std::ops::Range<usize>| String::from_utf8_lossy(&b[r]).into_owned();
        format!("{} {} {}", group(0..4), group(4..8), group(8..12))
    }
}

/// A PIN of 4 to 6 digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(…)")
    }
}

impl Pin {
    /// A PIN as given: 4 to 6 ASCII digits, nothing else.
    pub fn parse(text: &str) -> Result<Pin, String> {
        let digits = text.bytes().all(|b| b.is_ascii_digit());
        if !digits || !(PIN_MIN..=PIN_MAX).contains(&text.len()) {
            return Err(format!("a PIN is {PIN_MIN} to {PIN_MAX} digits"));
        }
        Ok(Pin(text.to_owned()))
    }

    /// A random PIN of 4 digits, each digit uniform (no modulo bias).
    pub fn generate() -> Result<Pin, getrandom::Error> {
        let mut pin = String::with_capacity(GENERATED_PIN_LEN);
        while pin.len() < GENERATED_PIN_LEN {
            let mut byte = [0u8];
            getrandom::getrandom(&mut byte)?;
            // 250 is the largest multiple of 10 below 256: larger bytes are drawn again.
            if byte[0] < 250 {
                pin.push(char::from(b'0' + byte[0] % 10));
            }
        }
        Ok(Pin(pin))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Escapes text for an SVG text node or attribute.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The printable card, as an SVG document the size of a bank card (85.6 × 54 mm): the
/// programme's name, the number in large type, and a QR code of the number (which a venue's
/// device scans instead of typing it). The PIN is never on it.
pub fn card_svg(programme: &str, number: &CardNumber) -> String {
    let qr = crate::qr::nested_at(&crate::qr::document(number.as_str(), 180), 300, 70, 180);
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="85.6mm" height="54mm" viewBox="0 0 500 315">
<rect x="1" y="1" width="498" height="313" rx="20" fill="#fff" stroke="#333" stroke-width="2"/>
<text x="24" y="48" font-family="sans-serif" font-size="26" font-weight="bold">{programme}</text>
<text x="24" y="90" font-family="sans-serif" font-size="16">Member card</text>
{qr}
<text x="24" y="290" font-family="monospace" font-size="38" font-weight="bold" letter-spacing="2">{number}</text>
</svg>
"##,
        programme = xml_escape(programme),
        number = number.grouped(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_number_reads_back_whatever_the_case_and_the_separators() {
        let number = CardNumber::from_bits(0x0123_4567_89ab_cdef);
        assert_eq!(number.as_str().len(), NUMBER_LEN);
        let typed = number.grouped().to_lowercase().replace(' ', "-");
        assert_eq!(CardNumber::parse(&typed), Ok(number.clone()));
        assert_eq!(CardNumber::parse("12345"), Err(NumberError::Length));
        let bad = format!("U{}", &number.as_str()[1..]);
        assert_eq!(CardNumber::parse(&bad), Err(NumberError::Character));
    }

    #[test]
    fn the_field_s_weights_are_distinct_and_never_one() {
        let mut weights = vec![];
        let mut w = 1u8;
        for _ in 0..DATA_LEN {
            w = gf_mul(w, 2);
            weights.push(w);
        }
        let mut unique = weights.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), DATA_LEN);
        assert!(!weights.contains(&1) && !weights.contains(&0));
        // α generates the whole multiplicative group: α^31 = 1 and no smaller power is.
        let powers: Vec<u8> = (1..=31)
            .scan(1u8, |w, _| {
                *w = gf_mul(*w, 2);
                Some(*w)
            })
            .collect();
        assert_eq!(powers.iter().position(|&p| p == 1), Some(30));
    }

    #[test]
    fn pins_are_four_to_six_digits_and_generated_ones_are_four() {
        for good in ["0000", "12345", "987654"] {
            assert!(Pin::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "123", "1234567", "12a4", "١٢٣٤", " 1234"] {
            assert!(Pin::parse(bad).is_err(), "{bad}");
        }
        let pin = Pin::generate().unwrap();
        assert!(Pin::parse(pin.as_str()).is_ok());
        assert_eq!(pin.as_str().len(), GENERATED_PIN_LEN);
        assert_eq!(format!("{pin:?}"), "Pin(…)", "a PIN is never logged");
    }

    #[test]
    fn the_card_holds_the_name_escaped_the_number_and_a_qr_code() {
        let number = CardNumber::from_bits(42);
        let svg = card_svg("Bees & <Honey>", &number);
        assert!(svg.contains("Bees &amp; &lt;Honey&gt;"));
        assert!(svg.contains(&number.grouped()));
        assert_eq!(svg.matches("<?xml").count(), 1);
        assert_eq!(svg.matches("<svg").count(), 2, "the card and its QR code");
        // Well-formed XML (a browser shows no image otherwise), the QR code placed once.
        let document = roxmltree::Document::parse(&svg).expect("the card is well-formed XML");
        let qr = document
            .descendants()
            .filter(|n| n.has_tag_name("svg"))
            .nth(1)
            .expect("the QR code");
        assert_eq!(qr.attribute("width"), Some("180"));
        assert!(qr
            .attribute("viewBox")
            .is_some_and(|v| v.starts_with("0 0 ")));
        assert!(qr.descendants().any(|n| n.has_tag_name("path")));
    }

    fn number_values() -> impl Strategy<Value = u64> {
        0..(1u64 << NUMBER_BITS)
    }

    proptest! {
        /// Every change of one character to any other is caught by the check character.
        #[test]
        fn every_single_character_typo_is_caught(
            bits in number_values(),
            at in 0..NUMBER_LEN,
            by in 1..32usize,
        ) {
            let number = CardNumber::from_bits(bits);
            let mut typed = number.as_str().as_bytes().to_vec();
            let old = usize::from(value(typed[at]).unwrap());
            typed[at] = ALPHABET[(old + by) % 32];
            let typed = String::from_utf8(typed).unwrap();
            prop_assert_eq!(CardNumber::parse(&typed), Err(NumberError::Check));
        }

        /// Every swap of two different characters is caught too.
        #[test]
        fn every_swap_of_two_characters_is_caught(
            bits in number_values(),
            a in 0..NUMBER_LEN,
            b in 0..NUMBER_LEN,
        ) {
            let number = CardNumber::from_bits(bits);
            let mut typed = number.as_str().as_bytes().to_vec();
            prop_assume!(typed[a] != typed[b]);
            typed.swap(a, b);
            let typed = String::from_utf8(typed).unwrap();
            prop_assert_eq!(CardNumber::parse(&typed), Err(NumberError::Check));
        }

        /// Every number made reads back as itself.
        #[test]
        fn every_number_checks(bits in number_values()) {
            let number = CardNumber::from_bits(bits);
            prop_assert_eq!(CardNumber::parse(&number.grouped()), Ok(number));
        }
    }
}
