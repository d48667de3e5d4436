//! The pages served under `/app/`, for the people who run and use a scheme (not the API: they
//! are not in the OpenAPI document).

pub mod verifier;
