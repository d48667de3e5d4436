//! Field types of request bodies that carry their own description in the API document, so that
//! each rule is stated once, on the type, not on every field that has it. A type's doc comment
//! is its description there; notes for developers are plain comments.

use serde::{Deserialize, Deserializer, Serialize};
use timecredits_domain::{Minutes, ShortText, ValidationError};
use utoipa::ToSchema;

use super::whole;

/// A short text: 1 to 200 characters; no control or invisible formatting characters; stored in
/// Unicode NFC.
// (The doc comment is the API description's.) Deserialized as any string and checked by
// `TextField::parse` when the handler builds its request, so that a bad value is an
// `invalid_request` naming its field, not malformed JSON. Serialized as the string it holds: a
// request's fingerprint does not change with the type.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(
    value_type = String,
    min_length = 1,
    max_length = 200,
    pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
)]
pub struct TextField(String);

impl TextField {
    /// The text as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text as the ledger takes it, or why it is refused (naming `field`).
    pub fn parse(&self, field: &'static str) -> Result<ShortText, ValidationError> {
        ShortText::from_input(field, self.as_str())
    }

    /// An optional text field as the ledger takes it.
    pub fn parse_optional(
        field: &'static str,
        value: &Option<TextField>,
    ) -> Result<Option<ShortText>, ValidationError> {
        value.as_ref().map(|v| v.parse(field)).transpose()
    }
}

/// A number of whole hours, at most a million (the largest amount).
// With `MinutesField`, an amount (see `api::amount`). A number with a zero fraction counts as
// whole (see `api::whole`), as JSON Schema counts it.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = u64, maximum = 1000000)]
pub struct HoursField(u64);

/// A number of whole minutes, at most 60,000,000 (a million hours, the largest amount).
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = u64, maximum = 60000000)]
pub struct MinutesField(u64);

impl HoursField {
    /// The number of hours.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl MinutesField {
    /// The number of minutes.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for HoursField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        whole::u64(d).map(HoursField)
    }
}

impl<'de> Deserialize<'de> for MinutesField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        whole::u64(d).map(MinutesField)
    }
}

const _: () = assert!(Minutes::MAX == 60_000_000, "the limits stated above");
