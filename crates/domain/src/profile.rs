//! A member's optional profile: what a partner may keep about a person, outside the ledger.
//!
//! The ledger is pseudonymous (a member is a wallet's UUID) and signed, so it can never forget;
//! a profile is the personal part, kept by the service in a store of its own that an erasure
//! rewrites without the member. Nothing here is ever part of an entry, an export or a
//! checkpoint.
//!
//! # Invariants
//! 1. Every field is optional, and every value that exists satisfies its type's limits:
//!    [`Profile::DISPLAY_NAME_MAX`] and [`Profile::CONTACT_MAX`] characters of visible text in
//!    NFC (as [`ShortText::from_input`] accepts), an [`AgeBand`] of a fixed list, a
//!    [`PostcodeDistrict`] of at most [`PostcodeDistrict::MAX_LEN`] characters that is never a
//!    full postcode.
//! 2. A refusal names the field it is about ([`ProfileError::field`]).
//! 3. Consent is explicit: both flags default to `false`, so a profile written without them
//!    consents to nothing.

use serde::{Deserialize, Serialize};

use crate::entry::ShortText;

/// Why a profile field was refused, naming the field.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct ProfileError {
    /// The field, as named in the API (`display_name`, `contact`, `age_band`,
    /// `postcode_district`).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// An age band: the only age a profile holds, never a date of birth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AgeBand {
    /// Under 16.
    #[serde(rename = "under_16")]
    Under16,
    /// 16 to 24.
    #[serde(rename = "16_24")]
    From16To24,
    /// 25 to 49.
    #[serde(rename = "25_49")]
    From25To49,
    /// 50 to 64.
    #[serde(rename = "50_64")]
    From50To64,
    /// 65 and over.
    #[serde(rename = "65_plus")]
    From65,
    /// The member chose not to say.
    #[serde(rename = "undisclosed")]
    Undisclosed,
}

impl AgeBand {
    /// Every band, in report order.
    pub const ALL: [AgeBand; 6] = [
        AgeBand::Under16,
        AgeBand::From16To24,
        AgeBand::From25To49,
        AgeBand::From50To64,
        AgeBand::From65,
        AgeBand::Undisclosed,
    ];

    /// The stable name, as in the API and the reports.
    pub fn as_str(self) -> &'static str {
        match self {
            AgeBand::Under16 => "under_16",
            AgeBand::From16To24 => "16_24",
            AgeBand::From25To49 => "25_49",
            AgeBand::From50To64 => "50_64",
            AgeBand::From65 => "65_plus",
            AgeBand::Undisclosed => "undisclosed",
        }
    }
}

impl std::str::FromStr for AgeBand {
    type Err = ProfileError;
    fn from_str(s: &str) -> Result<Self, ProfileError> {
        AgeBand::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| ProfileError {
                field: "age_band",
                reason: format!(
                    "{s:?} is not an age band: one of {}",
                    AgeBand::ALL.map(AgeBand::as_str).join(", ")
                ),
            })
    }
}

/// Where a member lives, no finer than a district: the outward part of a UK postcode (`SW1A`,
/// `M1`, `EH12`), upper-cased, or a short place name (`Leith`, `St Ives`). A full postcode (the
/// outward and inward parts, which can narrow a person down to a few houses) is refused: a
/// free district holds no digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PostcodeDistrict(String);

impl PostcodeDistrict {
    /// The longest district accepted, in characters.
    pub const MAX_LEN: usize = 40;

    /// Validates a district a client sent (surrounding spaces are dropped).
    pub fn new(text: &str) -> Result<PostcodeDistrict, ProfileError> {
        let refuse = |reason: &str| ProfileError {
            field: "postcode_district",
            reason: reason.to_owned(),
        };
        let text = text.trim();
        if is_outward_code(text) {
            return Ok(PostcodeDistrict(text.to_ascii_uppercase()));
        }
        let typed =
            ShortText::from_input("postcode_district", text).map_err(|e| refuse(&e.to_string()))?;
        let typed = typed.as_str();
        if typed.chars().count() > Self::MAX_LEN {
            return Err(refuse(&format!("at most {} characters", Self::MAX_LEN)));
        }
        let allowed = |c: char| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '.');
        if !typed.chars().all(allowed) {
            return Err(refuse(
                "the outward part of a postcode (`SW1A`, `M1`) or a place name of letters, \
                 spaces, hyphens, apostrophes and full stops; never a full postcode",
            ));
        }
        Ok(PostcodeDistrict(typed.to_owned()))
    }

    /// The district.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PostcodeDistrict {
    type Error = ProfileError;
    fn try_from(text: String) -> Result<Self, ProfileError> {
        PostcodeDistrict::new(&text)
    }
}

impl From<PostcodeDistrict> for String {
    fn from(district: PostcodeDistrict) -> String {
        district.0
    }
}

/// Whether `text` is the outward part of a UK postcode: an area of one or two letters, then a
/// district of a digit and an optional digit or letter (`M1`, `B33`, `SW1A`, `EC1A`, `W1`).
fn is_outward_code(text: &str) -> bool {
    let b = text.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let rest = &b[letters..];
    (1..=2).contains(&letters)
        && matches!(rest, [d] | [d, _] if d.is_ascii_digit())
        && rest.iter().all(u8::is_ascii_alphanumeric)
}

/// A text a person typed into a profile: visible characters in NFC (as
/// [`ShortText::from_input`] accepts), within its field's limit. Read back from the store, it is
/// checked against [`ShortText::new`] again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProfileText(String);

impl ProfileText {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProfileText {
    type Error = ProfileError;
    fn try_from(text: String) -> Result<Self, ProfileError> {
        ShortText::new("text", text)
            .map(|t| ProfileText(t.as_str().to_owned()))
            .map_err(|e| ProfileError {
                field: "text",
                reason: e.to_string(),
            })
    }
}

impl From<ProfileText> for String {
    fn from(text: ProfileText) -> String {
        text.0
    }
}

/// What the member agreed to. Both default to no.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Consent {
    /// The registering partner may contact them about activities.
    #[serde(default)]
    pub contact_about_activities: bool,
    /// Their age band may be counted in the age-band report (anonymous statistics).
    #[serde(default)]
    pub anonymous_statistics: bool,
}

/// A member's profile. Every field is optional (invariant 1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// How the member likes to be called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<ProfileText>,
    /// An email address or a phone number, as free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ProfileText>,
    /// Their age band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_band: Option<AgeBand>,
    /// Where they live, no finer than a district.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode_district: Option<PostcodeDistrict>,
    /// What they agreed to.
    #[serde(default)]
    pub consent: Consent,
}

impl Profile {
    /// The longest display name, in characters.
    pub const DISPLAY_NAME_MAX: usize = 100;
    /// The longest contact, in characters.
    pub const CONTACT_MAX: usize = 200;

    /// A profile from the fields a client sent, each checked against its limit (invariant 1),
    /// or the first field refused.
    pub fn from_input(
        display_name: Option<&str>,
        contact: Option<&str>,
        age_band: Option<&str>,
        postcode_district: Option<&str>,
        consent: Consent,
    ) -> Result<Profile, ProfileError> {
        Ok(Profile {
            display_name: display_name
                .map(|t| text("display_name", t, Self::DISPLAY_NAME_MAX))
                .transpose()?,
            contact: contact
                .map(|t| text("contact", t, Self::CONTACT_MAX))
                .transpose()?,
            age_band: age_band.map(str::parse).transpose()?,
            postcode_district: postcode_district.map(PostcodeDistrict::new).transpose()?,
            consent,
        })
    }

    /// The age band the age-band report may count: only with consent to anonymous statistics.
    pub fn statistics_band(&self) -> Option<AgeBand> {
        self.consent
            .anonymous_statistics
            .then_some(self.age_band.unwrap_or(AgeBand::Undisclosed))
    }
}

/// A typed text of at most `max` characters (and [`ShortText`]'s rules).
fn text(field: &'static str, typed: &str, max: usize) -> Result<ProfileText, ProfileError> {
    let refuse = |reason: String| ProfileError { field, reason };
    let text = ShortText::from_input(field, typed).map_err(|e| refuse(e.to_string()))?;
    if text.as_str().chars().count() > max {
        return Err(refuse(format!("at most {max} characters")));
    }
    Ok(ProfileText(text.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outward_codes_are_upper_cased_and_full_postcodes_refused() {
        for (typed, stored) in [
            ("sw1a", "SW1A"),
            (" M1 ", "M1"),
            ("EH12", "EH12"),
            ("b33", "B33"),
            ("W1", "W1"),
            ("Leith", "Leith"),
            ("St Ives", "St Ives"),
            ("Bishop's Stortford", "Bishop's Stortford"),
        ] {
            assert_eq!(PostcodeDistrict::new(typed).unwrap().as_str(), stored);
        }
        for refused in [
            "SW1A 1AA",
            "M1 1AE",
            "EH121AB",
            "",
            "1AA",
            "ABC1",
            "x\u{202e}y",
            "Flat 2",
        ] {
            let e = PostcodeDistrict::new(refused).unwrap_err();
            assert_eq!(e.field, "postcode_district", "{refused:?}");
        }
        assert!(PostcodeDistrict::new(&"a".repeat(41)).is_err());
        assert!(PostcodeDistrict::new(&"a".repeat(40)).is_ok());
    }

    #[test]
    fn every_refusal_names_its_field_and_limits_hold_at_the_edge() {
        let consent = Consent::default();
        let long = |n| "é".repeat(n);
        let ok = Profile::from_input(Some(&long(100)), Some(&long(200)), None, None, consent);
        assert!(ok.is_ok());
        let field = |r: Result<Profile, ProfileError>| r.unwrap_err().field;
        assert_eq!(
            field(Profile::from_input(
                Some(&long(101)),
                None,
                None,
                None,
                consent
            )),
            "display_name"
        );
        assert_eq!(
            field(Profile::from_input(
                None,
                Some(&long(201)),
                None,
                None,
                consent
            )),
            "contact"
        );
        assert_eq!(
            field(Profile::from_input(None, Some(""), None, None, consent)),
            "contact"
        );
        assert_eq!(
            field(Profile::from_input(
                None,
                None,
                Some("18_30"),
                None,
                consent
            )),
            "age_band"
        );
        assert_eq!(
            field(Profile::from_input(
                None,
                None,
                None,
                Some("N1 9GU"),
                consent
            )),
            "postcode_district"
        );
    }

    #[test]
    fn a_profile_round_trips_and_counts_only_with_consent() {
        let mut profile = Profile::from_input(
            Some("Ada"),
            Some("ada@example.org"),
            Some("65_plus"),
            Some("n1"),
            Consent::default(),
        )
        .unwrap();
        let json = serde_json::to_string(&profile).unwrap();
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), profile);
        assert_eq!(profile.statistics_band(), None);
        profile.consent.anonymous_statistics = true;
        assert_eq!(profile.statistics_band(), Some(AgeBand::From65));
        profile.age_band = None;
        assert_eq!(profile.statistics_band(), Some(AgeBand::Undisclosed));
        // A stored district is checked again when read.
        assert!(serde_json::from_str::<Profile>(r#"{"postcode_district":"N1 9GU"}"#).is_err());
    }
}
