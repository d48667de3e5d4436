//! Honest readiness and full disks, with writes made to fail by a cap on the server's file sizes:
//! `/readyz` is 503 with the reason whenever writes are refused, and the registry answers a full
//! disk with 503 `storage_full` and takes writes again once there is room, without a restart.

use serde_json::json;
use timecredits_server::problem::STORAGE_FULL_RETRY_AFTER;
use timecredits_tests::client::{new_key, Api};
use timecredits_tests::server::ChildServer;

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_with_the_reason_once_the_ledger_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::spawn(env!("CARGO_BIN_EXE_server-child"), dir.path());
    let api = Api::new(server.base());
    let admin = server.admin_key().to_owned();
    let partner = api.create_partner(&admin, "Club", &["earn"]).await;
    api.allocate(&admin, partner.id, 600).await;
    let member = api.register_member(&partner.key).await;
    let ready = api.get("/readyz", None).await;
    assert_eq!(ready.expect(200)["status"], "ready");

    // The next journal append cannot fit.
    let journal = std::fs::metadata(dir.path().join("journal")).unwrap().len();
    server.cap_file_size(journal + 16);
    let refused = api.earn_reply(&partner.key, member.id, 30).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    let ready = api.get("/readyz", None).await;
    ready.assert_problem(503, "unavailable");
    let detail = ready.json["detail"].as_str().unwrap();
    assert!(detail.contains("ledger"), "names the ledger: {detail}");
    // Reads are still answered.
    api.get(&format!("/v1/accounts/{}", member.id), Some(&admin))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_under_the_registry_is_503_storage_full_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::spawn(env!("CARGO_BIN_EXE_server-child"), dir.path());
    let api = Api::new(server.base());
    let admin = server.admin_key().to_owned();
    let registry = std::fs::metadata(dir.path().join("registry"))
        .unwrap()
        .len();
    server.cap_file_size(registry + 16);
    let body = json!({"label": "auditor", "holder": {"kind": "auditor"}});
    let key = new_key();
    let full = api
        .post_keyed("/v1/api-keys", Some(&admin), &key, Some(&body))
        .await;
    full.assert_problem(503, "storage_full");
    let retry_after = STORAGE_FULL_RETRY_AFTER.to_string();
    assert_eq!(full.header("retry-after"), Some(retry_after.as_str()));
    assert!(full.json["detail"].as_str().unwrap().contains("registry"));
    // The partial append was cut back at once: the file is as it was, and still ready.
    let len = std::fs::metadata(dir.path().join("registry"))
        .unwrap()
        .len();
    assert_eq!(len, registry);
    api.get("/readyz", None).await.expect(200);

    server.cap_file_size(libc::RLIM_INFINITY);
    let created = api
        .post_keyed("/v1/api-keys", Some(&admin), &key, Some(&body))
        .await;
    let secret = created.expect(201)["secret"].as_str().unwrap().to_owned();
    api.get("/v1/partners", Some(&secret)).await.expect(200);
}
