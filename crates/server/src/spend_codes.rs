//! One-time spend codes: how a member consents to a venue debiting their wallet.
//!
//! A member creates a code (8 characters of Crockford base32, 40 random bits), valid for
//! [`SpendCodes::TTL`], optionally capped at an amount, and reads it out or shows it as a QR code.
//! The venue redeems it once. Codes live only in memory, keyed by their SHA-256: they are
//! short-lived, and a restart simply invalidates the open ones (the member makes a new one).
//!
//! Guessing is throttled: an API key that presents [`SpendCodes::MAX_FAILURES`] wrong codes
//! within [`SpendCodes::WINDOW`] is refused with 429 until the window has passed.
//!
//! A redemption reserves the code, submits the spend to the ledger, then marks the code used
//! (or frees it again if the ledger refused the spend, e.g. for insufficient credits). The
//! venue's (actor, idempotency key) is recorded on the code, so a retried redemption finds its
//! own code and is answered by the ledger's replay.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::problem::ApiError;

/// Crockford's base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The length of a code.
pub const CODE_LEN: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Use {
    Fresh,
    Reserved { by: (Uuid, String) },
    Used { by: (Uuid, String) },
}

struct Code {
    member: Uuid,
    cap: Option<u64>,
    expires: DateTime<Utc>,
    state: Use,
}

/// A code as issued to a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub code: String,
    pub expires: DateTime<Utc>,
    pub cap: Option<u64>,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<[u8; 32], Code>,
    /// Codes by the member's (actor, idempotency key), with the request's fingerprint.
    issued: HashMap<(Uuid, String), (String, Issued)>,
    failures: HashMap<Uuid, VecDeque<Instant>>,
}

/// The table of open spend codes.
pub struct SpendCodes {
    inner: Mutex<Inner>,
    /// How long a code is valid.
    ttl: chrono::Duration,
}

fn hash(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// Normalises what a person typed: case, spaces and hyphens do not matter, and the letters
/// Crockford maps to digits (I, L -> 1, O -> 0) are read as those digits.
pub fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect()
}

fn random_code() -> Result<String, ApiError> {
    let mut bytes = [0u8; 5];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    let bits = bytes.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    Ok((0..CODE_LEN)
        .rev()
        .map(|i| ALPHABET[(bits >> (5 * i) & 31) as usize] as char)
        .collect())
}

impl SpendCodes {
    /// How long a code is valid, by default.
    pub const TTL: chrono::Duration = chrono::Duration::minutes(15);
    /// Wrong codes an API key may present per window.
    pub const MAX_FAILURES: usize = 5;
    /// The throttling window.
    pub const WINDOW: Duration = Duration::from_secs(60);

    /// An empty table of codes valid for `ttl`.
    pub fn new(ttl: chrono::Duration) -> SpendCodes {
        SpendCodes {
            inner: Mutex::default(),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a code to `member` for the request (key, fingerprint); a repeat of the request
    /// gets the same code back (with `true`: a replay), a different request under the same key
    /// is refused.
    pub fn issue(
        &self,
        member: Uuid,
        key: &str,
        fingerprint: &str,
        cap: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<(Issued, bool), ApiError> {
        let mut inner = self.lock();
        inner.codes.retain(|_, c| c.expires > now);
        inner.issued.retain(|_, (_, i)| i.expires > now);
        if let Some((f, issued)) = inner.issued.get(&(member, key.to_owned())) {
            return if f == fingerprint {
                Ok((issued.clone(), true))
            } else {
                Err(ApiError::IdempotencyKeyReused(key.to_owned()))
            };
        }
        let code = loop {
            let code = random_code()?;
            if !inner.codes.contains_key(&hash(&code)) {
                break code;
            }
        };
        let issued = Issued {
            code: code.clone(),
            expires: now + self.ttl,
            cap,
        };
        inner.codes.insert(
            hash(&code),
            Code {
                member,
                cap,
                expires: issued.expires,
                state: Use::Fresh,
            },
        );
        inner.issued.insert(
            (member, key.to_owned()),
            (fingerprint.to_owned(), issued.clone()),
        );
        Ok((issued, false))
    }

    /// Whether `member` was issued a code under idempotency key `key` (and it has not expired).
    pub fn knows(&self, member: Uuid, key: &str) -> bool {
        self.lock().issued.contains_key(&(member, key.to_owned()))
    }

    /// Checks that a repeated redemption by (actor, key) presents the code it used the first
    /// time. A code this table no longer knows (expired, or forgotten at a restart) cannot be
    /// checked; the ledger then compares the rest of the request.
    pub fn check_repeat(&self, code: &str, by: &(Uuid, String)) -> Result<(), ApiError> {
        match self
            .lock()
            .codes
            .get(&hash(&normalise(code)))
            .map(|c| &c.state)
        {
            None => Ok(()),
            Some(Use::Used { by: b } | Use::Reserved { by: b }) if b == by => Ok(()),
            Some(_) => Err(ApiError::IdempotencyKeyReused(by.1.clone())),
        }
    }

    /// Reserves `code` for a redemption of `minutes` by (actor, key), presented with API key
    /// `api_key`, and returns the member. A retry of the same redemption finds the code it
    /// reserved or used and gets the member again.
    pub fn reserve(
        &self,
        api_key: Uuid,
        by: (Uuid, String),
        code: &str,
        minutes: u64,
        now: DateTime<Utc>,
    ) -> Result<Uuid, ApiError> {
        let mut inner = self.lock();
        let clock = Instant::now();
        let failures = inner.failures.entry(api_key).or_default();
        while failures
            .front()
            .is_some_and(|t| clock.duration_since(*t) >= Self::WINDOW)
        {
            failures.pop_front();
        }
        if failures.len() >= Self::MAX_FAILURES {
            let oldest = failures.front().copied().unwrap_or(clock);
            let wait = Self::WINDOW.saturating_sub(clock.duration_since(oldest));
            return Err(ApiError::TooManyAttempts {
                retry_after: wait.as_secs().max(1),
            });
        }
        let Some(entry) = inner.codes.get_mut(&hash(&normalise(code))) else {
            inner.failures.entry(api_key).or_default().push_back(clock);
            return Err(ApiError::SpendCodeInvalid);
        };
        match &entry.state {
            Use::Reserved { by: b } | Use::Used { by: b } if *b == by => return Ok(entry.member),
            Use::Reserved { .. } | Use::Used { .. } => return Err(ApiError::SpendCodeUsed),
            Use::Fresh => {}
        }
        if entry.expires <= now {
            return Err(ApiError::SpendCodeExpired);
        }
        if let Some(cap) = entry.cap.filter(|cap| minutes > *cap) {
            return Err(ApiError::SpendCodeAmountExceeded {
                cap,
                asked: minutes,
            });
        }
        entry.state = Use::Reserved { by };
        Ok(entry.member)
    }

    /// Ends a reservation: the code is used if the spend was committed, free again if not.
    pub fn finish(&self, code: &str, committed: bool) {
        let mut inner = self.lock();
        if let Some(entry) = inner.codes.get_mut(&hash(&normalise(code))) {
            entry.state = match std::mem::replace(&mut entry.state, Use::Fresh) {
                Use::Reserved { by } if committed => Use::Used { by },
                Use::Reserved { .. } => Use::Fresh,
                other => other,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(key: &str) -> (Uuid, String) {
        (Uuid::nil(), key.to_owned())
    }

    #[test]
    fn codes_are_eight_crockford_characters_and_typing_slips_are_forgiven() {
        let code = random_code().unwrap();
        assert_eq!(code.len(), CODE_LEN);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(normalise("ab1o-il2z"), "AB1011 2Z".replace(' ', ""));
    }

    #[test]
    fn a_code_is_used_once_and_a_retry_of_its_redemption_finds_it() {
        let codes = SpendCodes::new(SpendCodes::TTL);
        let now = Utc::now();
        let member = Uuid::now_v7();
        let (issued, replayed) = codes.issue(member, "k", "f", Some(120), now).unwrap();
        assert!(!replayed);
        assert_eq!(
            codes.issue(member, "k", "f", Some(120), now).unwrap(),
            (issued.clone(), true)
        );
        assert!(matches!(
            codes.issue(member, "k", "g", None, now),
            Err(ApiError::IdempotencyKeyReused(_))
        ));
        let key = Uuid::now_v7();
        let lower = issued.code.to_lowercase();
        assert!(matches!(
            codes.reserve(key, by("r1"), &lower, 121, now),
            Err(ApiError::SpendCodeAmountExceeded {
                cap: 120,
                asked: 121
            })
        ));
        assert_eq!(
            codes.reserve(key, by("r1"), &lower, 60, now).unwrap(),
            member
        );
        // A refused spend frees the code; a committed one uses it up.
        codes.finish(&issued.code, false);
        assert_eq!(
            codes.reserve(key, by("r2"), &issued.code, 60, now).unwrap(),
            member
        );
        codes.finish(&issued.code, true);
        assert_eq!(
            codes.reserve(key, by("r2"), &issued.code, 60, now).unwrap(),
            member
        );
        assert!(matches!(
            codes.reserve(key, by("r3"), &issued.code, 60, now),
            Err(ApiError::SpendCodeUsed)
        ));
    }

    #[test]
    fn codes_expire() {
        let codes = SpendCodes::new(SpendCodes::TTL);
        let then = Utc::now();
        let (issued, _) = codes.issue(Uuid::now_v7(), "k", "f", None, then).unwrap();
        let later = then + SpendCodes::TTL;
        assert!(matches!(
            codes.reserve(Uuid::now_v7(), by("r"), &issued.code, 60, later),
            Err(ApiError::SpendCodeExpired)
        ));
    }

    #[test]
    fn wrong_guesses_are_throttled_per_key() {
        let codes = SpendCodes::new(SpendCodes::TTL);
        let now = Utc::now();
        let (issued, _) = codes.issue(Uuid::now_v7(), "k", "f", None, now).unwrap();
        let guesser = Uuid::now_v7();
        for _ in 0..SpendCodes::MAX_FAILURES {
            assert!(matches!(
                codes.reserve(guesser, by("g"), "00000000", 60, now),
                Err(ApiError::SpendCodeInvalid)
            ));
        }
        // Even the right code is refused now, so guessing cannot continue.
        assert!(matches!(
            codes.reserve(guesser, by("g"), &issued.code, 60, now),
            Err(ApiError::TooManyAttempts { retry_after }) if (1..=60).contains(&retry_after)
        ));
        // Another key is not affected.
        assert!(codes
            .reserve(Uuid::now_v7(), by("h"), &issued.code, 60, now)
            .is_ok());
    }
}
