//! The committed OpenAPI document must be the one the code generates.

use timecredits_server::openapi::document;

const COMMITTED: &str = include_str!("../../../openapi/openapi.json");

#[test]
fn the_committed_openapi_file_is_up_to_date() {
    let generated = document();
    assert!(
        generated == COMMITTED,
        "openapi/openapi.json is out of date; regenerate it with:\n    \
         cargo run --bin timecredits -- openapi > openapi/openapi.json"
    );
}

#[test]
fn every_operation_is_documented_with_summary_description_and_errors() {
    let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: summary"
            );
            assert!(
                op["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: description"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{name}: a success response"
            );
            let public = path.starts_with("/healthz")
                || path.starts_with("/readyz")
                || path.starts_with("/v1/ledger/");
            if !public {
                assert!(op["security"].is_array(), "{name}: security");
                assert!(responses.contains_key("401"), "{name}: 401");
            }
            // The expiry sweep takes no key of its own: each expiry it records is keyed by its
            // wallet and last use, so any number of sweeps records each once (its description
            // says so).
            let keyed_by_what_it_records = path == "/v1/expiries/sweep";
            if method == "post" && !keyed_by_what_it_records {
                let header = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
                assert!(header, "{name}: Idempotency-Key header");
                assert!(responses.contains_key("409"), "{name}: 409 in flight");
            }
        }
    }
}
