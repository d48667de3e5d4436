//! Accounts, entries and the canonical bytes of an entry.
//!
//! # Canonical encoding
//!
//! An entry is hashed into the Merkle log as one compact JSON object, produced once at commit and
//! stored as is. The encoding is canonical: there is exactly one byte string for each entry.
//!
//! - Keys appear in this order, and only those that apply to the entry's kind are present:
//!   `seq`, `id`, `kind`, `recorded`, `actor`, `key`, `part`, then `account`, `account_kind`,
//!   `owner` (for `open`/`close`), or `vkey`, `endorsement` (for `key`), or `debit`, `credit`,
//!   `minutes`, `effective`, `reverses`, `activity`, `reference`, `adults`, `children`,
//!   `expiry_months` (for movements). Absent optional keys are omitted, never `null`.
//! - No whitespace outside strings. Strings are escaped as by `serde_json` (only `"`, `\` and
//!   control characters are escaped; everything else is literal UTF-8).
//! - Integers are plain decimal with no sign, leading zero or exponent.
//! - `endorsement` is standard base64 with padding (RFC 4648 section 4).
//! - Ids are lowercase hyphenated UUIDs; `recorded` is RFC 3339 UTC with exactly six fractional
//!   digits and a `Z` (`2026-11-23T09:30:00.123456Z`); `effective` is `YYYY-MM-DD`.
//!
//! [`Entry::decode`] enforces all of this by parsing strictly and re-encoding: bytes that do not
//! re-encode to themselves are refused, so two different byte strings never describe one entry.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::amount::Minutes;

/// Why a value could not become a domain object. Every variant is a client mistake.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ValidationError {
    /// Zero minutes: every movement moves something.
    #[error("amount must be at least one minute")]
    ZeroAmount,
    /// More than [`Minutes::MAX`] in one movement.
    #[error(
        "amount of {minutes} minutes is above the limit of {} minutes per movement",
        Minutes::MAX
    )]
    AmountTooLarge {
        /// The amount asked for.
        minutes: u64,
    },
    /// Hours and minutes given with 60 or more minutes.
    #[error("minutes must be below 60 when hours are given, got {minutes}")]
    MinutesOutOfRange {
        /// The minutes given.
        minutes: u64,
    },
    /// Hours written in none of the accepted forms (see [`Minutes::from_hours_text`]).
    #[error("{text:?} is not an amount of hours: write whole hours (2), decimal hours with a point (1.5, 0.25) or hours:minutes (1:30)")]
    BadHours {
        /// The text given.
        text: String,
    },
    /// Decimal hours that are not a whole number of minutes (1.33 hours is 79.8 minutes).
    #[error("{text} hours is {minutes} minutes: an amount is a whole number of minutes (write 1:20 or 1.35 hours, not 1.33)")]
    HoursNotWholeMinutes {
        /// The text given.
        text: String,
        /// What it comes to, exactly, as a decimal number of minutes.
        minutes: String,
    },
    /// An idempotency key that is empty, too long or not visible ASCII.
    #[error("idempotency key must be 1 to {max} visible ASCII characters", max = IdempotencyKey::MAX_LEN)]
    BadIdempotencyKey,
    /// A text field that is empty, too long or holds control characters.
    #[error("{field} must be 1 to {max} characters with no control characters", max = ShortText::MAX_LEN)]
    BadText {
        /// The field's name.
        field: &'static str,
    },
    /// A text field with a character that hides or reorders what it shows (a Trojan Source trick).
    #[error("{field} holds an invisible formatting character (U+{code:04X}): direction overrides, zero-width characters and byte-order marks are refused, as they make a text read differently from what it says")]
    InvisibleCharacter {
        /// The field's name.
        field: &'static str,
        /// The character's code point.
        code: u32,
    },
    /// A movement from an account to itself.
    #[error("debit and credit must be different accounts")]
    SameAccount,
    /// A field the movement's kind requires is absent (e.g. an earn without an activity).
    #[error("a {kind} needs {field}")]
    MissingField {
        /// The movement's kind.
        kind: MovementKind,
        /// The field missing.
        field: &'static str,
    },
    /// A field the movement's kind does not take is present (e.g. a party size on an earn).
    #[error("a {kind} cannot have {field}")]
    UnexpectedField {
        /// The movement's kind.
        kind: MovementKind,
        /// The field present.
        field: &'static str,
    },
    /// An expiry period of zero months or more than [`Details::MAX_EXPIRY_MONTHS`].
    #[error("an expiry period must be 1 to {max} months, got {months}", max = Details::MAX_EXPIRY_MONTHS)]
    BadExpiryMonths {
        /// The period given.
        months: u32,
    },
    /// A spend whose party has no adult and no child.
    #[error("a spend needs at least one adult or child")]
    EmptyParty,
    /// An `open` of a budget or venue with no owner, or of a programme or member account with one.
    #[error("a {0} account has no owner; budget and venue accounts must have one")]
    BadOwner(AccountKind),
    /// A transfer of kind `reverse`: reversals name their original instead.
    #[error("a reversal is made with Intent::Reverse, not as a transfer")]
    ReverseAsTransfer,
    /// A request with no parts or more than [`Intent::MAX_PARTS`].
    #[error("a request needs between 1 and {max} parts", max = Intent::MAX_PARTS)]
    BadPartCount,
    /// A verifier key in a key rotation that is empty, too long or not visible ASCII.
    #[error("a verifier key must be 1 to {max} visible ASCII characters", max = KeyRotation::MAX_VKEY_LEN)]
    BadVerifierKey,
    /// An endorsement that is not a 64-byte ed25519 signature in standard base64.
    #[error("an endorsement must be a 64-byte ed25519 signature in standard base64")]
    BadEndorsement,
}

/// Why stored or exported bytes are not a valid canonical entry.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes are not a JSON object of the entry's shape.
    #[error("not an entry object: {0}")]
    Json(String),
    /// A field's value breaks a domain rule.
    #[error("invalid entry: {0}")]
    Invalid(#[from] ValidationError),
    /// A field the entry's kind requires is absent.
    #[error("a {kind} entry must have `{field}`")]
    Missing {
        /// The entry's kind.
        kind: EntryKind,
        /// The field missing.
        field: &'static str,
    },
    /// A field the entry's kind does not take is present.
    #[error("a {kind} entry cannot have `{field}`")]
    Unexpected {
        /// The entry's kind.
        kind: EntryKind,
        /// The field present.
        field: &'static str,
    },
    /// `recorded` is not an RFC 3339 UTC time.
    #[error("`recorded` is not an RFC 3339 UTC time: {0}")]
    BadTime(String),
    /// Valid, but not the one canonical encoding of the entry (field order, spacing, number form), so its hash would differ.
    #[error("bytes are not in canonical form (expected {expected})")]
    NotCanonical {
        /// The canonical bytes, for the error message.
        expected: String,
    },
}

/// An account's id (UUID v7, so ids sort by creation time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub Uuid);

impl AccountId {
    /// A fresh id.
    pub fn new() -> Self {
        AccountId(Uuid::now_v7())
    }
}

impl Default for AccountId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an account is for. The kind decides which movements may touch it and its floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// The programme's issuance account: the only one that may go negative.
    Programme,
    /// An earn partner's budget: what it may still give out.
    Budget,
    /// A spend partner's (venue's) account: what it has redeemed and not yet retired.
    Venue,
    /// A member's wallet.
    Member,
}

impl AccountKind {
    /// The stable lowercase name used in entries and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Programme => "programme",
            AccountKind::Budget => "budget",
            AccountKind::Venue => "venue",
            AccountKind::Member => "member",
        }
    }

    /// Whether accounts of this kind belong to a partner (and so must name one as owner).
    pub fn has_owner(self) -> bool {
        matches!(self, AccountKind::Budget | AccountKind::Venue)
    }
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of movement between two accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Programme -> earn partner budget.
    Allocate,
    /// Earn partner budget -> member, for time given.
    Earn,
    /// Member -> venue, for an activity.
    Spend,
    /// Member -> another member.
    Gift,
    /// The mirror of an earlier movement.
    Reverse,
    /// Venue, budget or member -> programme: credits leave circulation (a venue settles what it
    /// redeemed, an earn partner hands back unused budget, a leaving member's wallet is emptied).
    Retire,
    /// Member -> programme: the whole balance of a wallet unused for the scheme's expiry period
    /// leaves circulation (see [`crate::rules`]: the entry names the period it applied).
    Expire,
}

impl MovementKind {
    /// The account kinds this movement may go from (any of them) and the kind it goes to, or
    /// `None` for a reversal, whose accounts are those of the original swapped.
    ///
    /// Only a retirement has more than one source: every credit that is not the programme's may
    /// leave circulation, and the entry needs no other field to say why, so its encoding is the
    /// same whichever account it empties.
    pub fn route(self) -> Option<(&'static [AccountKind], AccountKind)> {
        use AccountKind::*;
        match self {
            MovementKind::Allocate => Some((&[Programme], Budget)),
            MovementKind::Earn => Some((&[Budget], Member)),
            MovementKind::Spend => Some((&[Member], Venue)),
            MovementKind::Gift => Some((&[Member], Member)),
            MovementKind::Retire => Some((&[Venue, Budget, Member], Programme)),
            MovementKind::Expire => Some((&[Member], Programme)),
            MovementKind::Reverse => None,
        }
    }

    /// The stable lowercase name used in entries and in the API.
    pub fn as_str(self) -> &'static str {
        EntryKind::from(self).as_str()
    }
}

impl fmt::Display for MovementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of every entry in the log: account lifecycle or movement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Opens an account.
    Open,
    /// Closes an empty account.
    Close,
    /// Programme to earn partner budget.
    Allocate,
    /// Earn partner budget to member, for time given.
    Earn,
    /// Member to venue, for an activity.
    Spend,
    /// Member to another member.
    Gift,
    /// The mirror of an earlier movement.
    Reverse,
    /// Venue, budget or member to programme: credits leave circulation.
    Retire,
    /// A new checkpoint signing key takes over (see [`KeyRotation`]).
    Key,
    /// Member to programme: an unused wallet's credits expire under the expiry policy.
    Expire,
}

impl EntryKind {
    /// All kinds, in a fixed order (used by storage to give each a one-byte code: new kinds are
    /// added at the end).
    pub const ALL: [EntryKind; 10] = [
        EntryKind::Open,
        EntryKind::Close,
        EntryKind::Allocate,
        EntryKind::Earn,
        EntryKind::Spend,
        EntryKind::Gift,
        EntryKind::Reverse,
        EntryKind::Retire,
        EntryKind::Key,
        EntryKind::Expire,
    ];

    /// The stable lowercase name used in entries and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Open => "open",
            EntryKind::Close => "close",
            EntryKind::Allocate => "allocate",
            EntryKind::Earn => "earn",
            EntryKind::Spend => "spend",
            EntryKind::Gift => "gift",
            EntryKind::Reverse => "reverse",
            EntryKind::Retire => "retire",
            EntryKind::Key => "key",
            EntryKind::Expire => "expire",
        }
    }

    /// The movement kind, if this is a movement.
    pub fn movement(self) -> Option<MovementKind> {
        Some(match self {
            EntryKind::Open | EntryKind::Close | EntryKind::Key => return None,
            EntryKind::Allocate => MovementKind::Allocate,
            EntryKind::Earn => MovementKind::Earn,
            EntryKind::Spend => MovementKind::Spend,
            EntryKind::Gift => MovementKind::Gift,
            EntryKind::Reverse => MovementKind::Reverse,
            EntryKind::Retire => MovementKind::Retire,
            EntryKind::Expire => MovementKind::Expire,
        })
    }
}

impl From<MovementKind> for EntryKind {
    fn from(k: MovementKind) -> Self {
        match k {
            MovementKind::Allocate => EntryKind::Allocate,
            MovementKind::Earn => EntryKind::Earn,
            MovementKind::Spend => EntryKind::Spend,
            MovementKind::Gift => EntryKind::Gift,
            MovementKind::Reverse => EntryKind::Reverse,
            MovementKind::Retire => EntryKind::Retire,
            MovementKind::Expire => EntryKind::Expire,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client's idempotency key: 1 to 255 visible ASCII characters, scoped to its actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 255;

    /// Validates a key.
    pub fn new(key: impl Into<String>) -> Result<Self, ValidationError> {
        let key = key.into();
        let visible = key.bytes().all(|b| b.is_ascii_graphic());
        if key.is_empty() || key.len() > Self::MAX_LEN || !visible {
            return Err(ValidationError::BadIdempotencyKey);
        }
        Ok(IdempotencyKey(key))
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        IdempotencyKey::new(s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

/// Short free text in an entry (an activity, a partner's reference) or the registry (a name, a
/// label): 1 to 200 characters (Unicode scalar values, as JSON Schema's `maxLength` counts), no
/// control characters. Bounded so that an entry stays small; never personal data.
///
/// Text from a client goes through [`ShortText::from_input`], which also refuses invisible
/// formatting characters and normalises to NFC; [`ShortText::new`] checks only what every stored
/// text satisfies, so that entries committed before those rules still decode.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ShortText(String);

impl ShortText {
    /// The longest text accepted, in characters.
    pub const MAX_LEN: usize = 200;

    /// Validates a stored text; `field` names it in the error.
    pub fn new(field: &'static str, text: impl Into<String>) -> Result<Self, ValidationError> {
        let text = text.into();
        if text.is_empty()
            || text.chars().count() > Self::MAX_LEN
            || text.chars().any(char::is_control)
        {
            return Err(ValidationError::BadText { field });
        }
        Ok(ShortText(text))
    }

    /// Validates a text a client sent: refuses the invisible formatting characters that make a
    /// text display differently from what it holds (direction overrides and isolates, zero-width
    /// characters, byte-order marks), then normalises it to NFC, so that the same words are
    /// always the same bytes in the ledger, and checks it as [`ShortText::new`] does.
    ///
    /// ```
    /// use timecredits_domain::entry::ShortText;
    ///
    /// // "café" typed with a combining accent is stored as the one precomposed character.
    /// let typed = ShortText::from_input("activity", "cafe\u{301}")?;
    /// assert_eq!(typed.as_str(), "caf\u{e9}");
    /// // A right-to-left override would make the text display as something else: refused.
    /// assert!(ShortText::from_input("activity", "pool\u{202e}loop").is_err());
    /// # Ok::<(), timecredits_domain::ValidationError>(())
    /// ```
    pub fn from_input(field: &'static str, text: &str) -> Result<Self, ValidationError> {
        if let Some(c) = text.chars().find(|c| is_invisible_format(*c)) {
            return Err(ValidationError::InvisibleCharacter {
                field,
                code: u32::from(c),
            });
        }
        use unicode_normalization::UnicodeNormalization;
        ShortText::new(field, text.nfc().collect::<String>())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The characters [`ShortText::from_input`] refuses: bidirectional marks, embeddings, overrides
/// and isolates (the "Trojan Source" characters), zero-width spaces and joiners, the word joiner
/// and the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// What a movement is for: bounded descriptive fields, validated per kind by [`Movement`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Details {
    /// The activity the time was given for (earn) or spent on (spend).
    pub activity: Option<ShortText>,
    /// The actor's own reference (a timesheet line, a booking number, a reason for a reversal).
    pub reference: Option<ShortText>,
    /// Adults in the party (spend only).
    pub adults: Option<u32>,
    /// Children in the party (spend only).
    pub children: Option<u32>,
    /// The expiry policy an `expire` applied: the wallet was unused for at least this many
    /// months (expire only, 1 to [`Details::MAX_EXPIRY_MONTHS`]).
    pub expiry_months: Option<u32>,
}

impl Details {
    /// The longest expiry period an `expire` may name: ten years, in months.
    pub const MAX_EXPIRY_MONTHS: u32 = 120;
}

/// A movement a client asks for, before the ledger assigns it a place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transfer {
    /// Which movement: it fixes the account kinds of each side and the details required.
    pub kind: MovementKind,
    /// The account the minutes leave.
    pub debit: AccountId,
    /// The account the minutes go to.
    pub credit: AccountId,
    /// How much.
    pub minutes: Minutes,
    /// The day the time was given or spent; the ledger uses the recording day when absent.
    pub effective: Option<NaiveDate>,
    /// What it was for.
    pub details: Details,
}

/// A movement of credits as committed: one debit, one credit, one amount.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Movement {
    /// Which movement: it fixes the account kinds of each side and the details required.
    pub kind: MovementKind,
    /// The account the minutes left.
    pub debit: AccountId,
    /// The account the minutes went to.
    pub credit: AccountId,
    /// How much.
    pub minutes: Minutes,
    /// The day the time was given or spent (the recording day when the request named none).
    pub effective: NaiveDate,
    /// For a reversal: the sequence number of the entry it mirrors.
    pub reverses: Option<u64>,
    /// What it was for.
    pub details: Details,
}

impl Movement {
    /// Builds a movement, checking that its fields fit its kind.
    pub fn new(
        kind: MovementKind,
        debit: AccountId,
        credit: AccountId,
        minutes: Minutes,
        effective: NaiveDate,
        reverses: Option<u64>,
        details: Details,
    ) -> Result<Self, ValidationError> {
        if debit == credit {
            return Err(ValidationError::SameAccount);
        }
        let need = |present: bool, field| {
            if present {
                Ok(())
            } else {
                Err(ValidationError::MissingField { kind, field })
            }
        };
        let forbid = |present: bool, field| {
            if present {
                Err(ValidationError::UnexpectedField { kind, field })
            } else {
                Ok(())
            }
        };
        let is_reverse = kind == MovementKind::Reverse;
        let is_spend = kind == MovementKind::Spend;
        need(reverses.is_some() || !is_reverse, "reverses")?;
        forbid(reverses.is_some() && !is_reverse, "reverses")?;
        if matches!(kind, MovementKind::Earn | MovementKind::Spend) {
            need(details.activity.is_some(), "activity")?;
        }
        need(details.adults.is_some() || !is_spend, "adults")?;
        need(details.children.is_some() || !is_spend, "children")?;
        forbid(details.adults.is_some() && !is_spend, "adults")?;
        forbid(details.children.is_some() && !is_spend, "children")?;
        let is_expire = kind == MovementKind::Expire;
        need(
            details.expiry_months.is_some() || !is_expire,
            "expiry_months",
        )?;
        forbid(
            details.expiry_months.is_some() && !is_expire,
            "expiry_months",
        )?;
        if let Some(months) = details.expiry_months {
            if months == 0 || months > Details::MAX_EXPIRY_MONTHS {
                return Err(ValidationError::BadExpiryMonths { months });
            }
        }
        if is_spend && details.adults.unwrap_or(0) == 0 && details.children.unwrap_or(0) == 0 {
            return Err(ValidationError::EmptyParty);
        }
        Ok(Movement {
            kind,
            debit,
            credit,
            minutes,
            effective,
            reverses,
            details,
        })
    }

    /// The reversal of `original` (entry `seq`): same amount, accounts swapped.
    pub fn reversal_of(
        original: &Movement,
        seq: u64,
        effective: NaiveDate,
        reference: Option<ShortText>,
    ) -> Movement {
        Movement {
            kind: MovementKind::Reverse,
            debit: original.credit,
            credit: original.debit,
            minutes: original.minutes,
            effective,
            reverses: Some(seq),
            details: Details {
                reference,
                ..Details::default()
            },
        }
    }
}

/// The hand-over from one checkpoint signing key to the next, recorded in the log so that a
/// verifier who trusts the old key can follow the chain to the new one without being told.
///
/// The old key endorses the new one by signing [`KeyRotation::message`]; checkpoints of trees that
/// include this entry are signed by the new key (and, for an overlap period, by the old one too).
/// The ledger checks nothing else here: the verifier key's syntax and the endorsement are checked
/// with the log-format crate by the ledger before it commits and by auditors when they verify.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyRotation {
    /// The new key as a C2SP verifier key: `name+keyid+base64(0x01 || public key)`.
    vkey: String,
    /// The previous key's ed25519 signature over [`KeyRotation::message`] of `vkey`.
    endorsement: [u8; 64],
}

impl KeyRotation {
    /// The longest verifier key accepted, in bytes.
    pub const MAX_VKEY_LEN: usize = 512;

    /// Checks the shape of a rotation: a verifier key of visible ASCII and a 64-byte signature.
    pub fn new(vkey: impl Into<String>, endorsement: [u8; 64]) -> Result<Self, ValidationError> {
        let vkey = vkey.into();
        Self::check_vkey(&vkey)?;
        Ok(KeyRotation { vkey, endorsement })
    }

    /// Checks a verifier key's length and characters (not that it parses as a key).
    pub fn check_vkey(vkey: &str) -> Result<(), ValidationError> {
        let visible = vkey.bytes().all(|b| b.is_ascii_graphic());
        if vkey.is_empty() || vkey.len() > Self::MAX_VKEY_LEN || !visible {
            return Err(ValidationError::BadVerifierKey);
        }
        Ok(())
    }

    /// The bytes the previous key signs to endorse `vkey`: the line `timecredits key rotation`,
    /// then `vkey`, each ending in a newline. The fixed first line keeps the signature from ever
    /// being mistaken for a checkpoint signature (a checkpoint's first line is its origin, which
    /// has no spaces).
    pub fn message(vkey: &str) -> Vec<u8> {
        format!("timecredits key rotation\n{vkey}\n").into_bytes()
    }

    /// The new verifier key.
    pub fn vkey(&self) -> &str {
        &self.vkey
    }

    /// The previous key's signature over [`KeyRotation::message`].
    pub fn endorsement(&self) -> &[u8; 64] {
        &self.endorsement
    }
}

/// What an entry does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryBody {
    /// Opens an account. `owner` is the partner a budget or venue account belongs to.
    Open {
        /// The id the ledger assigned.
        account: AccountId,
        /// What the account is for.
        account_kind: AccountKind,
        /// The partner it belongs to (budget and venue only).
        owner: Option<Uuid>,
    },
    /// Closes an account for good; it must be empty.
    Close {
        /// The account to close.
        account: AccountId,
    },
    /// Moves credits.
    Move(Movement),
    /// Hands checkpoint signing over to a new key. Touches no account.
    Key(KeyRotation),
}

impl EntryBody {
    /// The entry kind.
    pub fn kind(&self) -> EntryKind {
        match self {
            EntryBody::Open { .. } => EntryKind::Open,
            EntryBody::Close { .. } => EntryKind::Close,
            EntryBody::Move(m) => m.kind.into(),
            EntryBody::Key(_) => EntryKind::Key,
        }
    }

    /// The accounts this entry touches (none, one or two).
    pub fn accounts(&self) -> Vec<AccountId> {
        match self {
            EntryBody::Open { account, .. } | EntryBody::Close { account } => vec![*account],
            EntryBody::Move(m) => vec![m.debit, m.credit],
            EntryBody::Key(_) => Vec::new(),
        }
    }

    /// Whether this body is what `intent` asked for, given the day the entry was recorded (the
    /// default effective date). This is how a repeated request is recognised as the same one.
    pub fn fulfils(&self, intent: &Intent, recorded_day: NaiveDate) -> bool {
        match (self, intent) {
            (
                EntryBody::Open {
                    account_kind,
                    owner,
                    ..
                },
                Intent::Open {
                    account_kind: k,
                    owner: o,
                },
            ) => account_kind == k && owner == o,
            (EntryBody::Close { account }, Intent::Close { account: a }) => account == a,
            (EntryBody::Move(m), Intent::Transfer(t)) => {
                m.kind == t.kind
                    && m.debit == t.debit
                    && m.credit == t.credit
                    && m.minutes == t.minutes
                    && m.effective == t.effective.unwrap_or(recorded_day)
                    && m.details == t.details
            }
            (EntryBody::Move(m), Intent::Reverse { entry, reference }) => {
                m.reverses == Some(*entry) && &m.details.reference == reference
            }
            (EntryBody::Key(rotation), Intent::RotateKey { vkey }) => rotation.vkey == *vkey,
            _ => false,
        }
    }
}

/// One part of a request to the ledger: what the client wants, before the ledger gives it ids,
/// a time and a place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Intent {
    /// Open a new account of this kind.
    Open {
        /// What the account is for.
        account_kind: AccountKind,
        /// The partner it belongs to (budget and venue only).
        owner: Option<Uuid>,
    },
    /// Close an empty account.
    Close {
        /// The account to close.
        account: AccountId,
    },
    /// Move credits (any kind but `reverse`).
    Transfer(Transfer),
    /// Reverse the movement at sequence number `entry`.
    Reverse {
        /// The sequence number of the movement to reverse.
        entry: u64,
        /// The actor's reference, e.g. why it is reversed.
        reference: Option<ShortText>,
    },
    /// Hand checkpoint signing over to the key `vkey` (the ledger adds the endorsement).
    RotateKey {
        /// The new key as a C2SP verifier key.
        vkey: String,
    },
}

impl Intent {
    /// The most parts one atomic request may have.
    pub const MAX_PARTS: usize = 1000;

    /// Checks what can be checked without the ledger's state.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Intent::Open {
                account_kind,
                owner,
            } => {
                if account_kind.has_owner() != owner.is_some() {
                    return Err(ValidationError::BadOwner(*account_kind));
                }
                Ok(())
            }
            Intent::Close { .. } | Intent::Reverse { .. } => Ok(()),
            Intent::RotateKey { vkey } => KeyRotation::check_vkey(vkey),
            Intent::Transfer(t) => {
                if t.kind == MovementKind::Reverse {
                    return Err(ValidationError::ReverseAsTransfer);
                }
                // A placeholder date: the real one is known only at commit; the checks on the
                // other fields do not depend on it.
                Movement::new(
                    t.kind,
                    t.debit,
                    t.credit,
                    t.minutes,
                    NaiveDate::MIN,
                    None,
                    t.details.clone(),
                )
                .map(drop)
            }
        }
    }
}

/// A committed entry: its place in the log, who caused it, and what it does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Position in the log, equal to its Merkle leaf index. Starts at 0.
    pub seq: u64,
    /// A UUID v7 naming this entry.
    pub id: Uuid,
    /// Server time of recording, in whole microseconds, never decreasing along the log.
    pub recorded: DateTime<Utc>,
    /// The partner, administrator or member that caused the entry.
    pub actor: Uuid,
    /// The actor's idempotency key for the request that made this entry.
    pub key: IdempotencyKey,
    /// This entry's index among the entries of its request (0 for a single-entry request).
    pub part: u32,
    /// What the entry does.
    pub body: EntryBody,
}

/// The flat JSON shape of an entry. Field order here is the canonical key order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    seq: u64,
    id: Uuid,
    kind: EntryKind,
    recorded: String,
    actor: Uuid,
    key: IdempotencyKey,
    part: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<AccountId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_kind: Option<AccountKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endorsement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    debit: Option<AccountId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credit: Option<AccountId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    minutes: Option<Minutes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reverses: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    adults: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiry_months: Option<u32>,
}

/// Formats a recorded time canonically: UTC, microseconds, `Z`.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Truncates a time to whole microseconds, the precision of `recorded`.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

impl Entry {
    /// The canonical bytes of this entry (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut r = Record {
            seq: self.seq,
            id: self.id,
            kind: self.body.kind(),
            recorded: format_time(&self.recorded),
            actor: self.actor,
            key: self.key.clone(),
            part: self.part,
            account: None,
            account_kind: None,
            owner: None,
            vkey: None,
            endorsement: None,
            debit: None,
            credit: None,
            minutes: None,
            effective: None,
            reverses: None,
            activity: None,
            reference: None,
            adults: None,
            children: None,
            expiry_months: None,
        };
        match &self.body {
            EntryBody::Open {
                account,
                account_kind,
                owner,
            } => {
                r.account = Some(*account);
                r.account_kind = Some(*account_kind);
                r.owner = *owner;
            }
            EntryBody::Close { account } => r.account = Some(*account),
            EntryBody::Key(rotation) => {
                r.vkey = Some(rotation.vkey.clone());
                r.endorsement = Some(BASE64.encode(rotation.endorsement));
            }
            EntryBody::Move(m) => {
                r.debit = Some(m.debit);
                r.credit = Some(m.credit);
                r.minutes = Some(m.minutes);
                r.effective = Some(m.effective);
                r.reverses = m.reverses;
                r.activity = m.details.activity.as_ref().map(|t| t.0.clone());
                r.reference = m.details.reference.as_ref().map(|t| t.0.clone());
                r.adults = m.details.adults;
                r.children = m.details.children;
                r.expiry_months = m.details.expiry_months;
            }
        }
        // Serializing a struct of plain fields into a Vec cannot fail.
        serde_json::to_vec(&r).expect("entry serializes")
    }

    /// Parses canonical entry bytes strictly: unknown, missing, misplaced or duplicated fields,
    /// invalid values and non-canonical spelling are all refused.
    ///
    /// Most entries are recognised by a fast scan of the canonical layout (see `scan.rs`); the
    /// rest, and every refusal with its reason, go through `Entry::decode_general`.
    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        match crate::scan::entry(bytes) {
            Some(entry) => Ok(entry),
            None => Self::decode_general(bytes),
        }
    }

    /// The definition of decoding: parse the JSON strictly, build the entry through the
    /// validating constructors, then refuse the bytes unless they re-encode to themselves.
    fn decode_general(bytes: &[u8]) -> Result<Entry, DecodeError> {
        let r: Record =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
        let entry = Entry::from_record(r)?;
        let canonical = entry.encode();
        if canonical != bytes {
            return Err(DecodeError::NotCanonical {
                expected: String::from_utf8_lossy(&canonical).into_owned(),
            });
        }
        Ok(entry)
    }

    fn from_record(r: Record) -> Result<Entry, DecodeError> {
        let kind = r.kind;
        let missing = |field| DecodeError::Missing { kind, field };
        let unexpected = |field| DecodeError::Unexpected { kind, field };
        let recorded = DateTime::parse_from_rfc3339(&r.recorded)
            .map_err(|e| DecodeError::BadTime(e.to_string()))?
            .with_timezone(&Utc);
        let movement_fields = [
            ("debit", r.debit.is_some()),
            ("credit", r.credit.is_some()),
            ("minutes", r.minutes.is_some()),
            ("effective", r.effective.is_some()),
            ("reverses", r.reverses.is_some()),
            ("activity", r.activity.is_some()),
            ("reference", r.reference.is_some()),
            ("adults", r.adults.is_some()),
            ("children", r.children.is_some()),
            ("expiry_months", r.expiry_months.is_some()),
        ];
        let account_fields = [
            ("account", r.account.is_some()),
            ("account_kind", r.account_kind.is_some()),
            ("owner", r.owner.is_some()),
        ];
        let key_fields = [
            ("vkey", r.vkey.is_some()),
            ("endorsement", r.endorsement.is_some()),
        ];
        let refuse_any = |fields: &[(&'static str, bool)]| match fields.iter().find(|f| f.1) {
            Some((field, _)) => Err(unexpected(field)),
            None => Ok(()),
        };
        let body = match kind.movement() {
            None if kind == EntryKind::Key => {
                refuse_any(&movement_fields)?;
                refuse_any(&account_fields)?;
                let vkey = r.vkey.ok_or_else(|| missing("vkey"))?;
                let endorsement = r.endorsement.ok_or_else(|| missing("endorsement"))?;
                let endorsement = BASE64
                    .decode(endorsement)
                    .ok()
                    .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
                    .ok_or(ValidationError::BadEndorsement)?;
                EntryBody::Key(KeyRotation::new(vkey, endorsement)?)
            }
            None => {
                refuse_any(&movement_fields)?;
                refuse_any(&key_fields)?;
                let account = r.account.ok_or_else(|| missing("account"))?;
                if kind == EntryKind::Open {
                    let account_kind = r.account_kind.ok_or_else(|| missing("account_kind"))?;
                    if account_kind.has_owner() != r.owner.is_some() {
                        return Err(ValidationError::BadOwner(account_kind).into());
                    }
                    EntryBody::Open {
                        account,
                        account_kind,
                        owner: r.owner,
                    }
                } else {
                    if r.account_kind.is_some() {
                        return Err(unexpected("account_kind"));
                    }
                    if r.owner.is_some() {
                        return Err(unexpected("owner"));
                    }
                    EntryBody::Close { account }
                }
            }
            Some(mk) => {
                refuse_any(&account_fields)?;
                refuse_any(&key_fields)?;
                let details = Details {
                    activity: r
                        .activity
                        .map(|t| ShortText::new("activity", t))
                        .transpose()?,
                    reference: r
                        .reference
                        .map(|t| ShortText::new("reference", t))
                        .transpose()?,
                    adults: r.adults,
                    children: r.children,
                    expiry_months: r.expiry_months,
                };
                EntryBody::Move(Movement::new(
                    mk,
                    r.debit.ok_or_else(|| missing("debit"))?,
                    r.credit.ok_or_else(|| missing("credit"))?,
                    r.minutes.ok_or_else(|| missing("minutes"))?,
                    r.effective.ok_or_else(|| missing("effective"))?,
                    r.reverses,
                    details,
                )?)
            }
        };
        Ok(Entry {
            seq: r.seq,
            id: r.id,
            recorded,
            actor: r.actor,
            key: r.key,
            part: r.part,
            body,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn time() -> DateTime<Utc> {
        "2026-11-23T09:30:00.123456Z".parse().unwrap()
    }

    pub fn text(s: &str) -> ShortText {
        ShortText::new("test", s).unwrap()
    }

    fn earn_entry() -> Entry {
        let debit = AccountId(Uuid::parse_str("019ab000-0000-7000-8000-000000000001").unwrap());
        let credit = AccountId(Uuid::parse_str("019ab000-0000-7000-8000-000000000002").unwrap());
        let details = Details {
            activity: Some(text("Lunch club \"kitchen\"")),
            reference: Some(text("R-42")),
            ..Details::default()
        };
        Entry {
            seq: 7,
            id: Uuid::parse_str("019ab000-0000-7000-8000-0000000000ff").unwrap(),
            recorded: time(),
            actor: Uuid::parse_str("019ab000-0000-7000-8000-0000000000aa").unwrap(),
            key: IdempotencyKey::new("k-1").unwrap(),
            part: 0,
            body: EntryBody::Move(
                Movement::new(
                    MovementKind::Earn,
                    debit,
                    credit,
                    Minutes::new(90).unwrap(),
                    day("2026-11-20"),
                    None,
                    details,
                )
                .unwrap(),
            ),
        }
    }

    #[test]
    fn encoding_is_the_documented_compact_json() {
        let bytes = earn_entry().encode();
        let expected = concat!(
            r#"{"seq":7,"id":"019ab000-0000-7000-8000-0000000000ff","kind":"earn","#,
            r#""recorded":"2026-11-23T09:30:00.123456Z","actor":"019ab000-0000-7000-8000-0000000000aa","#,
            r#""key":"k-1","part":0,"debit":"019ab000-0000-7000-8000-000000000001","#,
            r#""credit":"019ab000-0000-7000-8000-000000000002","minutes":90,"effective":"2026-11-20","#,
            r#""activity":"Lunch club \"kitchen\"","reference":"R-42"}"#
        );
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }

    #[test]
    fn decode_round_trips() {
        let e = earn_entry();
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    }

    /// A named edit of an encoded entry's text.
    type Edit = (&'static str, Box<dyn Fn(&str) -> String>);

    fn reencoded(edit: impl Fn(&str) -> String) -> Result<Entry, DecodeError> {
        let s = String::from_utf8(earn_entry().encode()).unwrap();
        Entry::decode(edit(&s).as_bytes())
    }

    #[test]
    fn non_canonical_spellings_are_refused() {
        let cases: Vec<Edit> = vec![
            ("space", Box::new(|s| s.replacen(",", ", ", 1))),
            (
                "uppercase uuid",
                Box::new(|s| s.replace("0000000000ff", "0000000000FF")),
            ),
            ("millis", Box::new(|s| s.replace(".123456Z", ".123Z"))),
            (
                "offset",
                Box::new(|s| s.replace(".123456Z", ".123456+00:00")),
            ),
            (
                "reordered",
                Box::new(|s| s.replace(r#""key":"k-1","part":0"#, r#""part":0,"key":"k-1""#)),
            ),
            (
                "null",
                Box::new(|s| s.replace(r#""part":0"#, r#""part":0,"owner":null"#)),
            ),
            ("escaped", Box::new(|s| s.replace("R-42", "R\\u002d42"))),
        ];
        for (name, edit) in cases {
            let result = reencoded(edit);
            assert!(
                matches!(result, Err(DecodeError::NotCanonical { .. })),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn invalid_shapes_are_refused() {
        let cases: Vec<Edit> = vec![
            (
                "unknown field",
                Box::new(|s| s.replace(r#""part":0"#, r#""part":0,"x":1"#)),
            ),
            (
                "duplicate field",
                Box::new(|s| s.replace(r#""part":0"#, r#""part":0,"part":0"#)),
            ),
            (
                "zero",
                Box::new(|s| s.replace(r#""minutes":90"#, r#""minutes":0"#)),
            ),
            (
                "float",
                Box::new(|s| s.replace(r#""minutes":90"#, r#""minutes":90.0"#)),
            ),
            (
                "negative",
                Box::new(|s| s.replace(r#""minutes":90"#, r#""minutes":-90"#)),
            ),
            (
                "no activity",
                Box::new(|s| s.replace(r#""activity":"Lunch club \"kitchen\"","#, "")),
            ),
            (
                "account on movement",
                Box::new(|s| {
                    s.replace(
                        r#""part":0"#,
                        r#""part":0,"account":"019ab000-0000-7000-8000-000000000001""#,
                    )
                }),
            ),
            (
                "adults on earn",
                Box::new(|s| s.replace(r#""R-42""#, r#""R-42","adults":1"#)),
            ),
            (
                "bad kind",
                Box::new(|s| s.replace(r#""earn""#, r#""steal""#)),
            ),
            ("not json", Box::new(|s| s[..s.len() - 1].to_string())),
            ("empty key", Box::new(|s| s.replace(r#""k-1""#, r#""""#))),
            ("control char", Box::new(|s| s.replace("R-42", "R\\n42"))),
        ];
        for (name, edit) in cases {
            let result = reencoded(edit);
            assert!(
                result.is_err() && !matches!(result, Err(DecodeError::NotCanonical { .. })),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn an_expire_names_its_period_last_and_only_an_expire_does() {
        let mut e = earn_entry();
        let EntryBody::Move(m) = &mut e.body else {
            unreachable!()
        };
        m.kind = MovementKind::Expire;
        m.details = Details {
            expiry_months: Some(12),
            ..Details::default()
        };
        let bytes = e.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""kind":"expire""#)
                && text.ends_with(r#""effective":"2026-11-20","expiry_months":12}"#),
            "{text}"
        );
        assert_eq!(crate::scan::entry(&bytes), Some(e.clone()), "fast path");
        assert_eq!(Entry::decode_general(&bytes), Ok(e), "general path");
        let refused = [
            text.replace(r#","expiry_months":12"#, ""),
            text.replace(r#""expiry_months":12"#, r#""expiry_months":0"#),
            text.replace(r#""expiry_months":12"#, r#""expiry_months":121"#),
            text.replace(r#""expire""#, r#""retire""#),
        ];
        for bad in refused {
            assert_eq!(crate::scan::entry(bad.as_bytes()), None, "{bad}");
            assert!(Entry::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn movement_fields_must_fit_the_kind() {
        let (a, b) = (AccountId::new(), AccountId::new());
        let m = Minutes::new(60).unwrap();
        let d = day("2026-01-01");
        let none = Details::default();
        assert_eq!(
            Movement::new(MovementKind::Gift, a, a, m, d, None, none.clone()),
            Err(ValidationError::SameAccount)
        );
        assert!(matches!(
            Movement::new(MovementKind::Reverse, a, b, m, d, None, none.clone()),
            Err(ValidationError::MissingField {
                field: "reverses",
                ..
            })
        ));
        assert!(matches!(
            Movement::new(MovementKind::Gift, a, b, m, d, Some(1), none.clone()),
            Err(ValidationError::UnexpectedField {
                field: "reverses",
                ..
            })
        ));
        let party = |adults, children| Details {
            activity: Some(text("swim")),
            adults: Some(adults),
            children: Some(children),
            ..Details::default()
        };
        assert_eq!(
            Movement::new(MovementKind::Spend, a, b, m, d, None, party(0, 0)),
            Err(ValidationError::EmptyParty)
        );
        assert!(Movement::new(MovementKind::Spend, a, b, m, d, None, party(1, 2)).is_ok());
        assert!(matches!(
            Movement::new(MovementKind::Gift, a, b, m, d, None, party(1, 0)),
            Err(ValidationError::UnexpectedField { .. })
        ));
    }

    #[test]
    fn keys_and_texts_are_bounded() {
        assert!(IdempotencyKey::new("a".repeat(255)).is_ok());
        assert!(IdempotencyKey::new("a".repeat(256)).is_err());
        assert!(IdempotencyKey::new("has space").is_err());
        assert!(IdempotencyKey::new("").is_err());
        assert!(
            ShortText::new("f", "é".repeat(200)).is_ok(),
            "characters, not bytes"
        );
        assert!(ShortText::new("f", "é".repeat(201)).is_err());
        assert!(ShortText::new("f", "tab\there").is_err());
    }

    #[test]
    fn client_text_refuses_invisible_formatting_and_is_stored_in_nfc() {
        for hidden in [
            '\u{202E}', '\u{2066}', '\u{200B}', '\u{200D}', '\u{FEFF}', '\u{061C}',
        ] {
            let text = format!("swim{hidden}ming");
            assert_eq!(
                ShortText::from_input("activity", &text),
                Err(ValidationError::InvisibleCharacter {
                    field: "activity",
                    code: u32::from(hidden)
                }),
                "U+{:04X}",
                u32::from(hidden)
            );
            // Entries committed before the rule still decode.
            assert!(ShortText::new("activity", text).is_ok());
        }
        // "é" as e + combining acute (3 bytes) is stored as the one precomposed character.
        let decomposed = "cafe\u{0301}";
        let text = ShortText::from_input("activity", decomposed).unwrap();
        assert_eq!(text.as_str(), "caf\u{00E9}");
        assert_eq!(
            ShortText::from_input("activity", "caf\u{00E9}").unwrap(),
            text
        );
        // The limit is counted after normalising: 200 decomposed "é" are 200 characters.
        assert!(ShortText::from_input("f", &"e\u{0301}".repeat(200)).is_ok());
        assert!(ShortText::from_input("f", &"é".repeat(201)).is_err());
        assert!(ShortText::from_input("f", "").is_err());
    }

    #[test]
    fn open_entries_need_an_owner_only_for_partner_accounts() {
        assert!(Intent::Open {
            account_kind: AccountKind::Budget,
            owner: None
        }
        .validate()
        .is_err());
        assert!(Intent::Open {
            account_kind: AccountKind::Member,
            owner: Some(Uuid::nil())
        }
        .validate()
        .is_err());
        assert!(Intent::Open {
            account_kind: AccountKind::Venue,
            owner: Some(Uuid::nil())
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn a_body_fulfils_its_own_intent_only() {
        let e = earn_entry();
        let EntryBody::Move(m) = &e.body else {
            unreachable!()
        };
        let t = Transfer {
            kind: m.kind,
            debit: m.debit,
            credit: m.credit,
            minutes: m.minutes,
            effective: None,
            details: m.details.clone(),
        };
        // Without an explicit date the recording day is used.
        assert!(e
            .body
            .fulfils(&Intent::Transfer(t.clone()), day("2026-11-20")));
        assert!(!e
            .body
            .fulfils(&Intent::Transfer(t.clone()), day("2026-11-21")));
        let other = Transfer {
            minutes: Minutes::new(91).unwrap(),
            ..t
        };
        assert!(!e.body.fulfils(&Intent::Transfer(other), day("2026-11-20")));
    }

    /// Any entry of any kind, with texts that sometimes need escaping and times and dates that
    /// sometimes fall outside the fast scanner's range.
    fn any_entry() -> impl Strategy<Value = Entry> {
        let uuid = any::<u128>().prop_map(Uuid::from_u128);
        let text = |field| {
            proptest::option::of("[^\\p{Cc}]{1,30}|[a-z\"\\\\ ]{1,10}")
                .prop_map(move |t| t.map(|t| ShortText::new(field, t).unwrap()))
        };
        let body = prop_oneof![
            (uuid.clone(), 0..4usize, uuid.clone()).prop_map(|(account, k, owner)| {
                let kinds = [
                    AccountKind::Programme,
                    AccountKind::Budget,
                    AccountKind::Venue,
                    AccountKind::Member,
                ];
                EntryBody::Open {
                    account: AccountId(account),
                    account_kind: kinds[k],
                    owner: kinds[k].has_owner().then_some(owner),
                }
            }),
            uuid.clone().prop_map(|a| EntryBody::Close {
                account: AccountId(a)
            }),
            ("[!-~]{1,80}", prop::array::uniform32(any::<u8>())).prop_map(|(vkey, half)| {
                let mut endorsement = [0u8; 64];
                endorsement[..32].copy_from_slice(&half);
                endorsement[32..].copy_from_slice(&half);
                EntryBody::Key(KeyRotation::new(vkey, endorsement).unwrap())
            }),
            (
                0..6usize,
                uuid.clone(),
                uuid.clone(),
                1..=Minutes::MAX,
                -1_000_000i32..4_000_000,
                any::<u64>(),
                text("activity"),
                text("reference"),
                (any::<u32>(), 0..3u32),
            )
                .prop_filter_map(
                    "fields that fit the kind",
                    |(k, debit, credit, minutes, days, rev, activity, reference, party)| {
                        let kind = [
                            MovementKind::Allocate,
                            MovementKind::Earn,
                            MovementKind::Spend,
                            MovementKind::Gift,
                            MovementKind::Reverse,
                            MovementKind::Retire,
                        ][k];
                        let spend = kind == MovementKind::Spend;
                        let details = Details {
                            activity,
                            reference,
                            adults: spend.then_some(party.0),
                            children: spend.then_some(party.1),
                            expiry_months: None,
                        };
                        Movement::new(
                            kind,
                            AccountId(debit),
                            AccountId(credit),
                            Minutes::new(minutes).ok()?,
                            NaiveDate::from_num_days_from_ce_opt(days)?,
                            (kind == MovementKind::Reverse).then_some(rev),
                            details,
                        )
                        .ok()
                        .map(EntryBody::Move)
                    }
                ),
        ];
        (
            any::<u64>(),
            uuid.clone(),
            // Years 0000 to 9999: others do not round-trip through RFC 3339.
            -62_167_219_200_000_000i64..253_402_300_800_000_000,
            uuid,
            "[!-~]{1,20}",
            any::<u32>(),
            body,
        )
            .prop_map(|(seq, id, micros, actor, key, part, body)| Entry {
                seq,
                id,
                recorded: DateTime::from_timestamp_micros(micros).unwrap(),
                actor,
                key: IdempotencyKey::new(key).unwrap(),
                part,
                body,
            })
    }

    fn key_entry() -> Entry {
        let vkey = "example.org/ledger+a1b2c3d4+AbCdEf0123456789/+abcdefghijklmnopqrstuvwxyzABCDE=";
        Entry {
            seq: 12,
            id: Uuid::parse_str("019ab000-0000-7000-8000-0000000000ee").unwrap(),
            recorded: time(),
            actor: Uuid::nil(),
            key: IdempotencyKey::new("rotate-key-a1b2c3d4").unwrap(),
            part: 0,
            body: EntryBody::Key(KeyRotation::new(vkey, [7u8; 64]).unwrap()),
        }
    }

    #[test]
    fn a_key_entry_has_its_own_fields_and_round_trips() {
        let entry = key_entry();
        let text = String::from_utf8(entry.encode()).unwrap();
        let endorsement = BASE64.encode([7u8; 64]);
        assert!(
            text.ends_with(&format!(
                r#""part":0,"vkey":"example.org/ledger+a1b2c3d4+AbCdEf0123456789/+abcdefghijklmnopqrstuvwxyzABCDE=","endorsement":"{endorsement}"}}"#
            )),
            "{text}"
        );
        assert_eq!(Entry::decode(text.as_bytes()), Ok(entry.clone()));
        assert!(entry.body.accounts().is_empty());
        assert!(entry.body.fulfils(
            &Intent::RotateKey {
                vkey:
                    "example.org/ledger+a1b2c3d4+AbCdEf0123456789/+abcdefghijklmnopqrstuvwxyzABCDE="
                        .into()
            },
            day("2026-11-23")
        ));
        assert!(!entry.body.fulfils(
            &Intent::RotateKey {
                vkey: "other".into()
            },
            day("2026-11-23")
        ));
    }

    #[test]
    fn malformed_key_entries_are_refused() {
        let text = String::from_utf8(key_entry().encode()).unwrap();
        let endorsement = BASE64.encode([7u8; 64]);
        let cases = [
            (
                "short endorsement",
                text.replace(&endorsement, &BASE64.encode([7u8; 63])),
            ),
            (
                "unpadded endorsement",
                text.replace(&endorsement, endorsement.trim_end_matches('=')),
            ),
            ("space in vkey", text.replace("a1b2c3d4+", "a1b2c3d4 +")),
            (
                "missing endorsement",
                text.replace(&format!(r#","endorsement":"{endorsement}""#), ""),
            ),
            (
                "with an account",
                text.replace(
                    r#""part":0,"#,
                    r#""part":0,"account":"019ab000-0000-7000-8000-000000000001","#,
                ),
            ),
            (
                "with minutes",
                text.replace(r#""vkey""#, r#""minutes":5,"vkey""#),
            ),
        ];
        for (name, bytes) in cases {
            assert!(Entry::decode(bytes.as_bytes()).is_err(), "{name} accepted");
        }
        assert_eq!(
            KeyRotation::new("", [0; 64]),
            Err(ValidationError::BadVerifierKey)
        );
        assert_eq!(
            KeyRotation::message("o+1+2"),
            b"timecredits key rotation\no+1+2\n"
        );
    }

    #[test]
    fn the_fast_scan_takes_ordinary_entries() {
        let bytes = earn_entry().encode();
        let plain = String::from_utf8(bytes)
            .unwrap()
            .replace(r#"\"kitchen\""#, "kitchen");
        assert_eq!(
            crate::scan::entry(plain.as_bytes()),
            Some(Entry::decode_general(plain.as_bytes()).unwrap())
        );
    }

    proptest! {
        /// The fast scan agrees with the general path: on every valid encoding it either gives
        /// up or returns the same entry, and it never accepts bytes the general path refuses.
        #[test]
        fn the_fast_scan_accepts_only_what_the_general_path_accepts(
            entry in any_entry(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(b"0019aAfF-:.TZ\"\\,{}x ".to_vec())), 0..3),
        ) {
            let mut bytes = entry.encode();
            prop_assert_eq!(Entry::decode_general(&bytes), Ok(entry.clone()));
            for (at, op, byte) in edits {
                let at = at.index(bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 if at < bytes.len() => { bytes.remove(at); }
                    _ => bytes.insert(at, byte),
                }
            }
            if let Some(fast) = crate::scan::entry(&bytes) {
                prop_assert_eq!(Entry::decode_general(&bytes), Ok(fast));
            }
        }

        #[test]
        fn any_valid_gift_round_trips(
            seq in any::<u64>(),
            minutes in 1..=Minutes::MAX,
            micros in 0i64..4_000_000_000_000_000,
            key in "[!-~]{1,40}",
            reference in proptest::option::of("[^\\p{Cc}]{1,50}"),
            part in any::<u32>(),
        ) {
            let entry = Entry {
                seq,
                id: Uuid::now_v7(),
                recorded: DateTime::from_timestamp_micros(micros).unwrap(),
                actor: Uuid::now_v7(),
                key: IdempotencyKey::new(key).unwrap(),
                part,
                body: EntryBody::Move(Movement::new(
                    MovementKind::Gift,
                    AccountId::new(),
                    AccountId::new(),
                    Minutes::new(minutes).unwrap(),
                    day("2026-02-28"),
                    None,
                    Details { reference: reference.map(|r| ShortText::new("reference", r).unwrap()), ..Details::default() },
                ).unwrap()),
            };
            let bytes = entry.encode();
            prop_assert_eq!(Entry::decode(&bytes).unwrap(), entry);
        }
    }
}
