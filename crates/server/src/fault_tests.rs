//! Storage faults injected under the whole HTTP stack: what a client and `/readyz` see.

use actix_web::{test, web, App};
use serde_json::{json, Value};

use crate::registry::Fault;
use crate::{configure, AppState, Settings};

/// The state of a new service in `dir` and its administrator's key.
fn open(dir: &std::path::Path) -> (web::Data<AppState>, String) {
    let settings = Settings::new(dir, "127.0.0.1:0".parse().unwrap());
    let state = web::Data::new(AppState::open(&settings).unwrap());
    let admin = std::fs::read_to_string(dir.join(crate::registry::layout::ADMIN_API_KEY)).unwrap();
    (state, admin.trim().to_owned())
}

fn new_key(admin: &str, n: u32) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/v1/api-keys")
        .insert_header(("Authorization", format!("Bearer {admin}")))
        .insert_header(("Idempotency-Key", format!("key-{n}")))
        .set_json(json!({"label": "auditor", "holder": {"kind": "auditor"}}))
}

#[actix_web::test]
async fn a_full_disk_under_a_registry_write_is_503_storage_full_and_writes_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (state, admin) = open(dir.path());
    let app = test::init_service(App::new().app_data(state.clone()).configure(configure)).await;
    state.registry.inject_fault(Fault {
        write_limit: Some(10),
        ..Fault::default()
    });
    let res = test::call_service(&app, new_key(&admin, 1).to_request()).await;
    assert_eq!(res.status(), 503);
    let retry_after = crate::problem::STORAGE_FULL_RETRY_AFTER.to_string();
    assert_eq!(
        res.headers().get("retry-after").unwrap(),
        retry_after.as_str()
    );
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["code"], "storage_full");
    assert!(
        body["detail"].as_str().unwrap().contains("registry"),
        "{body}"
    );
    // Undone at once: still ready, and the same request succeeds once space is back.
    let ready = test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request());
    assert_eq!(ready.await.status(), 200);
    state.registry.inject_fault(Fault::default());
    let res = test::call_service(&app, new_key(&admin, 1).to_request()).await;
    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn readyz_is_503_with_the_reason_when_registry_writes_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (state, admin) = open(dir.path());
    let app = test::init_service(App::new().app_data(state.clone()).configure(configure)).await;
    state.registry.inject_fault(Fault {
        write_limit: Some(10),
        rollback_fails: true,
        mark_fails: false,
    });
    let res = test::call_service(&app, new_key(&admin, 1).to_request()).await;
    assert_eq!(res.status(), 503);
    let res = test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(res.status(), 503);
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["code"], "unavailable");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("registry:"), "{detail}");
    assert!(detail.contains("could not be undone"), "{detail}");
    // Writes stay refused (503 unavailable, never a 500) until a restart.
    state.registry.inject_fault(Fault::default());
    let res = test::call_service(&app, new_key(&admin, 2).to_request()).await;
    assert_eq!(res.status(), 503);
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["code"], "unavailable");
}
