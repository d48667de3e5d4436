//! One identity per data directory: a start on a directory whose registry or server secret was
//! deleted, emptied, replaced or damaged is refused with a message naming the file and what to
//! restore, and a fresh directory still initialises itself.

use std::path::Path;

use serde_json::json;
use timecredits_server::registry::layout;
use timecredits_tests::client::{Api, Scheme};
use timecredits_tests::server::TestServer;

/// Restarts on the data as `damage` left it, expects a refusal naming `file`, then puts the
/// original files back and requires a clean start again.
fn refused_until_restored(scheme: &mut Scheme, damage: impl FnOnce(&Path), file: &str) -> String {
    let dir = scheme.server.data_dir().to_owned();
    scheme.server.stop();
    let saved: Vec<(String, Option<Vec<u8>>)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).ok())
        })
        .collect();
    damage(&dir);
    let message = match scheme.server.try_restart() {
        Ok(()) => panic!("started on a directory whose {file} was damaged"),
        Err(e) => e.to_string(),
    };
    let named = dir.join(file).display().to_string();
    assert!(message.contains(&named), "names {named}: {message}");
    assert!(
        message.contains("restore"),
        "says what to restore: {message}"
    );
    for (name, bytes) in saved {
        std::fs::write(dir.join(name), bytes.unwrap()).unwrap();
    }
    scheme.restart();
    message
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_directory_initialises_itself_with_no_flags() {
    let server = TestServer::start();
    let api = Api::new(server.base());
    api.get("/v1/partners", Some(server.admin_key()))
        .await
        .expect(200);
    for file in [
        layout::REGISTRY,
        layout::REGISTRY_ACKED,
        layout::SERVER_SECRET,
    ] {
        assert!(server.data_dir().join(file).exists(), "{file}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_emptied_registry_is_refused_while_the_ledger_has_entries() {
    let mut scheme = Scheme::start().await;
    let message = refused_until_restored(
        &mut scheme,
        |dir| {
            std::fs::remove_file(dir.join(layout::REGISTRY)).unwrap();
            std::fs::remove_file(dir.join(layout::REGISTRY_ACKED)).unwrap();
        },
        layout::REGISTRY,
    );
    assert!(message.contains("the ledger"), "{message}");
    refused_until_restored(
        &mut scheme,
        |dir| std::fs::write(dir.join(layout::REGISTRY), b"").unwrap(),
        layout::REGISTRY,
    );
    // The keys of before still work on the restored directory.
    let api = Api::new(scheme.server.base());
    api.get("/v1/partners", Some(&scheme.admin))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_or_missing_server_secret_is_refused() {
    let mut scheme = Scheme::start().await;
    let message = refused_until_restored(
        &mut scheme,
        |dir| std::fs::write(dir.join(layout::SERVER_SECRET), [9u8; 32]).unwrap(),
        layout::SERVER_SECRET,
    );
    assert!(message.contains("not the secret"), "{message}");
    let message = refused_until_restored(
        &mut scheme,
        |dir| std::fs::remove_file(dir.join(layout::SERVER_SECRET)).unwrap(),
        layout::SERVER_SECRET,
    );
    assert!(message.contains("missing"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_acknowledged_revocation_is_refused_not_dropped() {
    let mut scheme = Scheme::start().await;
    let api = scheme.api.clone();
    let (id, key) = api
        .create_key(&scheme.admin, json!({"kind": "auditor"}))
        .await;
    api.revoke_key(&scheme.admin, id).await;
    let message = refused_until_restored(
        &mut scheme,
        |dir| {
            let path = dir.join(layout::REGISTRY);
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 2;
            bytes[last] ^= 0x20;
            std::fs::write(&path, bytes).unwrap();
        },
        layout::REGISTRY,
    );
    assert!(message.contains("acknowledged"), "{message}");
    // Restored, the revocation holds.
    let api = Api::new(scheme.server.base());
    api.get("/v1/partners", Some(&key))
        .await
        .assert_problem(401, "unauthorized");
}
