//! Exact amounts. There are no floats anywhere in the ledger.

use serde::{Deserialize, Serialize};

use crate::entry::ValidationError;

/// One time credit is one hour.
pub const MINUTES_PER_CREDIT: u64 = 60;

/// A signed balance in minutes. Only the programme account may hold a negative balance.
pub type Balance = i64;

/// A positive amount of time in whole minutes: the amount of every movement.
///
/// Zero is refused (a zero-minute movement is always a client bug) and so is anything above
/// [`Minutes::MAX`], so that sums of amounts stay far from the limits of [`Balance`] and every
/// addition can still be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Minutes(u64);

impl Minutes {
    /// The largest amount of one movement: a million hours, far beyond any real scheme.
    pub const MAX: u64 = 60_000_000;

    /// Validates an amount in minutes.
    pub fn new(minutes: u64) -> Result<Self, ValidationError> {
        match minutes {
            0 => Err(ValidationError::ZeroAmount),
            m if m > Self::MAX => Err(ValidationError::AmountTooLarge { minutes: m }),
            m => Ok(Minutes(m)),
        }
    }

    /// Validates an amount given as hours and minutes (`minutes` below 60).
    ///
    /// ```
    /// use timecredits_domain::Minutes;
    ///
    /// assert_eq!(Minutes::from_hours_and_minutes(1, 30)?.get(), 90);
    /// assert!(Minutes::from_hours_and_minutes(1, 60).is_err()); // write 2 hours
    /// assert!(Minutes::from_hours_and_minutes(0, 0).is_err()); // nothing to move
    /// # Ok::<(), timecredits_domain::ValidationError>(())
    /// ```
    pub fn from_hours_and_minutes(hours: u64, minutes: u64) -> Result<Self, ValidationError> {
        if minutes >= 60 {
            return Err(ValidationError::MinutesOutOfRange { minutes });
        }
        let total = hours
            .checked_mul(60)
            .and_then(|h| h.checked_add(minutes))
            .ok_or(ValidationError::AmountTooLarge { minutes: u64::MAX })?;
        Self::new(total)
    }

    /// Validates an amount of hours as people write it in a spreadsheet or a form, converted
    /// exactly to minutes: whole hours (`2`), decimal hours with a point (`1.5`, `0.25`,
    /// `1.05`) that come to a whole number of minutes, or hours and two-digit minutes (`1:30`,
    /// `0:45`). Spaces around it are ignored. Nothing else is taken: no sign, no exponent, no
    /// decimal comma (a CSV field separator), no units (`1h30`), and no decimal hours that fall
    /// between two minutes (`1.33` hours is 79.8 minutes: write `1:20` or `1.35`).
    ///
    /// ```
    /// use timecredits_domain::Minutes;
    ///
    /// assert_eq!(Minutes::from_hours_text("1.5")?.get(), 90);
    /// assert_eq!(Minutes::from_hours_text("1:30")?.get(), 90);
    /// assert_eq!(Minutes::from_hours_text("0.25")?.get(), 15);
    /// assert!(Minutes::from_hours_text("1.33").is_err()); // 79.8 minutes
    /// assert!(Minutes::from_hours_text("1,5").is_err()); // a decimal point, not a comma
    /// # Ok::<(), timecredits_domain::ValidationError>(())
    /// ```
    pub fn from_hours_text(text: &str) -> Result<Self, ValidationError> {
        let text = text.trim();
        let bad = || ValidationError::BadHours { text: text.into() };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        // Beyond this many digits the amount is far above `Minutes::MAX` anyway; the bound
        // keeps the arithmetic below in range.
        const MAX_DIGITS: usize = 18;
        let number = |s: &str| -> Result<u64, ValidationError> {
            if !digits(s) || s.len() > MAX_DIGITS {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        if let Some((hours, minutes)) = text.split_once(':') {
            if minutes.len() != 2 {
                return Err(bad());
            }
            return Self::from_hours_and_minutes(number(hours)?, number(minutes)?);
        }
        let Some((hours, fraction)) = text.split_once('.') else {
            return Self::from_hours_and_minutes(number(text)?, 0);
        };
        let hours = number(hours)?;
        number(fraction)?;
        // Trailing zeros say nothing (1.50 is 1.5); then `fraction` is f / 10^k hours, which
        // is 6f / 10^(k-1) minutes: whole only when 10^(k-1) divides 6f.
        let fraction = fraction.trim_end_matches('0');
        let f: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| bad())?
        };
        let scale = 10u128.pow(fraction.len().saturating_sub(1) as u32);
        let scaled = 6 * f;
        if scaled.is_multiple_of(scale) {
            let extra = u64::try_from(scaled / scale).map_err(|_| bad())?;
            let total = hours
                .checked_mul(60)
                .and_then(|m| m.checked_add(extra))
                .ok_or(ValidationError::AmountTooLarge { minutes: u64::MAX })?;
            return Self::new(total);
        }
        // The exact decimal number of minutes, for the refusal.
        let whole = u128::from(hours) * 60 + scaled / scale;
        let decimals = fraction.len() - 1;
        let rest = format!("{:0decimals$}", scaled % scale);
        Err(ValidationError::HoursNotWholeMinutes {
            text: text.into(),
            minutes: format!("{whole}.{}", rest.trim_end_matches('0')),
        })
    }

    /// The amount in minutes.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The amount as a balance delta. Lossless: [`Minutes::MAX`] is far below `i64::MAX`.
    pub fn as_balance(self) -> Balance {
        self.0 as Balance
    }
}

impl TryFrom<u64> for Minutes {
    type Error = ValidationError;
    fn try_from(minutes: u64) -> Result<Self, Self::Error> {
        Minutes::new(minutes)
    }
}

impl From<Minutes> for u64 {
    fn from(m: Minutes) -> u64 {
        m.0
    }
}

impl std::fmt::Display for Minutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} min", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_too_large_are_refused() {
        assert_eq!(Minutes::new(0), Err(ValidationError::ZeroAmount));
        assert_eq!(
            Minutes::new(Minutes::MAX + 1),
            Err(ValidationError::AmountTooLarge {
                minutes: Minutes::MAX + 1
            })
        );
        assert_eq!(
            Minutes::new(Minutes::MAX).map(Minutes::get),
            Ok(Minutes::MAX)
        );
    }

    #[test]
    fn hours_and_minutes_are_combined_exactly() {
        assert_eq!(
            Minutes::from_hours_and_minutes(2, 30).map(Minutes::get),
            Ok(150)
        );
        assert_eq!(
            Minutes::from_hours_and_minutes(1, 60),
            Err(ValidationError::MinutesOutOfRange { minutes: 60 })
        );
        assert!(Minutes::from_hours_and_minutes(u64::MAX, 0).is_err());
        assert_eq!(
            Minutes::from_hours_and_minutes(0, 0),
            Err(ValidationError::ZeroAmount)
        );
    }

    #[test]
    fn hours_are_read_as_people_write_them() {
        for (text, minutes) in [
            ("2", 120),
            ("1.5", 90),
            ("0.25", 15),
            ("1.05", 63),
            ("1.50", 90),
            ("1.1", 66),
            ("0.05", 3),
            (" 1:30 ", 90),
            ("0:45", 45),
            ("1000000", Minutes::MAX),
        ] {
            assert_eq!(
                Minutes::from_hours_text(text).map(Minutes::get),
                Ok(minutes),
                "{text}"
            );
        }
    }

    #[test]
    fn hours_that_are_not_whole_minutes_are_refused_with_what_they_come_to() {
        for (text, minutes) in [("1.33", "79.8"), ("0.001", "0.06"), ("0.125", "7.5")] {
            assert_eq!(
                Minutes::from_hours_text(text),
                Err(ValidationError::HoursNotWholeMinutes {
                    text: text.into(),
                    minutes: minutes.into()
                })
            );
        }
    }

    #[test]
    fn other_texts_are_not_hours() {
        for text in [
            "", " ", ".5", "2.", "1,5", "-1", "+1", "1e2", "1h30", "1:3", "1:300", "1:", ":30",
            "1.5.0", "1:30:00", "one", "１", "1 5", "1.-5",
        ] {
            assert_eq!(
                Minutes::from_hours_text(text),
                Err(ValidationError::BadHours {
                    text: text.trim().into()
                }),
                "{text:?}"
            );
        }
        assert_eq!(
            Minutes::from_hours_text("1:60"),
            Err(ValidationError::MinutesOutOfRange { minutes: 60 })
        );
        assert_eq!(
            Minutes::from_hours_text("0"),
            Err(ValidationError::ZeroAmount)
        );
        assert_eq!(
            Minutes::from_hours_text("0.0"),
            Err(ValidationError::ZeroAmount)
        );
        assert!(matches!(
            Minutes::from_hours_text("1000000.05"),
            Err(ValidationError::AmountTooLarge { .. })
        ));
        assert!(Minutes::from_hours_text("99999999999999999999").is_err());
    }

    proptest::proptest! {
        /// Every amount written as hours:minutes, and as decimal hours when it is a whole
        /// number of minutes that way, reads back exactly.
        #[test]
        fn written_hours_read_back_exactly(minutes in 1..=Minutes::MAX) {
            let (h, m) = (minutes / 60, minutes % 60);
            let read = |text: &str| Minutes::from_hours_text(text).map(Minutes::get);
            proptest::prop_assert_eq!(read(&format!("{h}:{m:02}")), Ok(minutes));
            // m minutes are m/60 hours: a finite decimal of at most two places when 60 / gcd
            // divides 100, i.e. for multiples of 3 minutes.
            if m % 3 == 0 {
                let hundredths = m * 100 / 60;
                proptest::prop_assert_eq!(read(&format!("{h}.{hundredths:02}")), Ok(minutes));
            }
        }

        /// No text is read as anything but what it exactly says: a decimal is accepted only
        /// when 60 times it is whole.
        #[test]
        fn a_decimal_is_accepted_only_when_it_is_whole_minutes(h in 0u64..1000, f in 0u64..10_000) {
            let text = format!("{h}.{f:04}");
            let exact = h * 600_000 + f * 60; // ten-thousandths of a minute
            let read = Minutes::from_hours_text(&text).map(Minutes::get);
            if exact % 10_000 == 0 && exact > 0 {
                proptest::prop_assert_eq!(read, Ok(exact / 10_000));
            } else {
                proptest::prop_assert!(read.is_err());
            }
        }
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<Minutes>("0").is_err());
        assert_eq!(serde_json::from_str::<Minutes>("60").unwrap().get(), 60);
    }
}
