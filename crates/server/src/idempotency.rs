//! The `Idempotency-Key` header (IETF draft-ietf-httpapi-idempotency-key-header).
//!
//! Every POST requires one. Keys are scoped to the caller (its actor id). What makes a repeat
//! safe is not here but where the write is recorded: the ledger remembers (actor, key) for the
//! entries it commits, the registry for the keys and revocations it records, and the spend-code
//! table for the codes it issues; each answers a repeat with the original result and refuses a
//! different request under the same key. This module adds the one thing those cannot: a request
//! still in flight makes a concurrent repeat fail fast with 409.

use std::collections::HashSet;
use std::future::{ready, Ready};
use std::sync::Mutex;

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use serde::Serialize;
use sha2::{Digest, Sha256};
use timecredits_domain::IdempotencyKey;
use uuid::Uuid;

use crate::problem::ApiError;

/// The name of the header.
pub const HEADER: &str = "Idempotency-Key";

/// The prefix of the keys the service makes for writes of its own, under the administrator's
/// actor (the expiry sweep's, [`crate::service::expiries::expiry_key`]). A client may not send
/// one: a request that took such a key first would make the service's write under it a
/// different request, refused.
pub const SERVICE_KEY_PREFIX: &str = "expiry:";

/// A key a client sent (a header or a form): valid, and not one of the service's own.
pub fn client_key(text: &str) -> Result<IdempotencyKey, ApiError> {
    if text.starts_with(SERVICE_KEY_PREFIX) {
        return Err(ApiError::IdempotencyKeyInvalid);
    }
    IdempotencyKey::new(text).map_err(|_| ApiError::IdempotencyKeyInvalid)
}

/// The validated `Idempotency-Key` of a request.
#[derive(Clone, Debug)]
pub struct IdemKey(pub IdempotencyKey);

impl FromRequest for IdemKey {
    type Error = ApiError;
    type Future = Ready<Result<IdemKey, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.headers().get(HEADER) {
            None => Err(ApiError::IdempotencyKeyMissing),
            Some(value) => value
                .to_str()
                .map_err(|_| ApiError::IdempotencyKeyInvalid)
                // The draft's header value is a structured-field string: accept it quoted too.
                .and_then(|v| client_key(v.trim().trim_matches('"')))
                .map(IdemKey),
        };
        ready(result)
    }
}

/// The `Idempotency-Key` header as the API description states it, for `params(...)` of every
/// POST. The pattern is what [`IdemKey`] accepts: 1 to 255 visible ASCII characters,
/// optionally between double quotes (the draft's structured-field string), so generated
/// clients and fuzzers agree with the server on which keys are valid. The one exception, keys
/// starting with [`SERVICE_KEY_PREFIX`], is in the description rather than the pattern: a
/// lookahead is beyond the regex engines some generators use.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Unique key for this request: 1 to 255 visible ASCII characters, optionally quoted, not
    /// starting with `expiry:` (the service's own keys).
    #[param(
        rename = "Idempotency-Key",
        pattern = r#"^"*[!#-~]([!-~]{0,253}[!#-~])?"*$"#
    )]
    pub idempotency_key: String,
}

/// The (actor, key) pairs of requests being processed.
#[derive(Default)]
pub struct InFlight(Mutex<HashSet<(Uuid, String)>>);

/// Marks a request in flight until dropped.
pub struct InFlightGuard<'a> {
    set: &'a InFlight,
    entry: (Uuid, String),
}

impl InFlight {
    /// Marks (actor, idempotency key) in flight, or refuses with 409 if it already is.
    pub fn begin(
        &self,
        actor: Uuid,
        idempotency_key: &IdempotencyKey,
    ) -> Result<InFlightGuard<'_>, ApiError> {
        let entry = (actor, idempotency_key.as_str().to_owned());
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(entry.clone()) {
            return Err(ApiError::IdempotencyKeyInFlight(entry.1));
        }
        Ok(InFlightGuard { set: self, entry })
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(&self.entry);
    }
}

/// The fingerprint of a request that is not a ledger movement: SHA-256 of the route name and
/// the body as parsed (so spacing and key order do not matter), hex.
pub fn fingerprint(route: &str, body: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update(b"\n");
    hasher.update(serde_json::to_vec(body).expect("request bodies always serialize"));
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_flight_refuses_a_second_until_released() {
        let set = InFlight::default();
        let key = IdempotencyKey::new("k").unwrap();
        let actor = Uuid::now_v7();
        let guard = set.begin(actor, &key).unwrap();
        assert!(matches!(
            set.begin(actor, &key),
            Err(ApiError::IdempotencyKeyInFlight(_))
        ));
        // Another actor's key of the same name is independent.
        let _other = set.begin(Uuid::now_v7(), &key).unwrap();
        drop(guard);
        assert!(set.begin(actor, &key).is_ok());
    }

    #[test]
    fn a_client_may_not_take_a_key_of_the_services() {
        let wallet = Uuid::now_v7();
        let services = crate::service::expiries::expiry_key(wallet, 7);
        assert!(services.as_str().starts_with(SERVICE_KEY_PREFIX));
        assert!(matches!(
            client_key(services.as_str()),
            Err(ApiError::IdempotencyKeyInvalid)
        ));
        assert_eq!(client_key("expiry-7").unwrap().as_str(), "expiry-7");
        assert!(client_key("").is_err());
    }

    #[test]
    fn fingerprints_differ_by_route_and_body() {
        let a = fingerprint("revoke", &serde_json::json!({"a": 1}));
        assert_eq!(a, fingerprint("revoke", &serde_json::json!({"a": 1})));
        assert_ne!(a, fingerprint("revoke", &serde_json::json!({"a": 2})));
        assert_ne!(a, fingerprint("create", &serde_json::json!({"a": 1})));
    }
}
