//! The problem responses many operations share, each described once: an operation lists the
//! set that fits it (`responses(..., JsonWriteProblems)`) and only the problems of its own.

use crate::problem::Problem;

// The enums below are descriptions for the API document, never built.

/// The problems of any operation that needs a credential.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document, never built
pub enum AuthProblems {
    /// No valid credential (`unauthorized`)
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
}

/// The problems of a write with a JSON body, besides its own: the credential, the body, and a
/// repeat in flight.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document, never built
pub enum JsonWriteProblems {
    /// No valid credential (`unauthorized`)
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The same key is in flight (`idempotency_key_in_flight`)
    #[response(status = 409, content_type = "application/problem+json")]
    InFlight(Problem),
    /// `payload_too_large`
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// `unsupported_media_type`
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem),
}

/// The problems of a write without a body, besides its own: the credential, a body sent anyway,
/// and a repeat in flight.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description for the OpenAPI document, never built
pub enum BodilessWriteProblems {
    /// No valid credential (`unauthorized`)
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The same key is in flight (`idempotency_key_in_flight`)
    #[response(status = 409, content_type = "application/problem+json")]
    InFlight(Problem),
    /// A body was sent; this request takes none (`body_not_allowed`)
    #[response(status = 413, content_type = "application/problem+json")]
    BodyNotAllowed(Problem),
}
