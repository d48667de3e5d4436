//! Field types of request bodies that carry their own description in the API document, so that
//! each rule is stated once, on the type, not on every field that has it.

use serde::{Deserialize, Serialize};
use timecredits_domain::{ShortText, ValidationError};
use utoipa::ToSchema;

/// A short text: 1 to 200 characters; no control or invisible formatting characters; stored in
/// Unicode NFC.
///
/// Deserialized as any string and checked by [`TextField::parse`] when the handler builds its
/// request, so that a bad value is an `invalid_request` naming its field, not malformed JSON.
/// Serialized as the string it holds: a request's fingerprint does not change with the type.
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
