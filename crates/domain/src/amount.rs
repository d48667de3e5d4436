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
    fn deserializing_validates() {
        assert!(serde_json::from_str::<Minutes>("0").is_err());
        assert_eq!(serde_json::from_str::<Minutes>("60").unwrap().get(), 60);
    }
}
