//! The verifiable log over HTTP (checkpoints, receipts, consistency proofs, the export), and
//! the published API description.

use base64::Engine;
use serde_json::Value;
use timecredits_tests::client::{proof_hashes, Api, Scheme};
use timecredits_tlog::checkpoint::{open_checkpoint, Checkpoint};
use timecredits_tlog::merkle::{check_tree, leaf_hash, root_of_leaves};
use timecredits_tlog::note::NoteVerifier;
use timecredits_tlog::proof::TlogProof;

/// The committed OpenAPI document.
const COMMITTED_OPENAPI: &str = include_str!("../../../openapi/openapi.json");

/// Opens a signed checkpoint note with the verifier key the ledger publishes.
async fn verified(api: &Api, note: &str) -> Checkpoint {
    let key = api.get("/v1/ledger/key", None).await;
    let body = key.expect(200);
    let origin = body["origin"].as_str().unwrap();
    let verifier = NoteVerifier::parse(body["verifier_key"].as_str().unwrap())
        .expect("the verifier key parses");
    let (checkpoint, _) = open_checkpoint(note.as_bytes(), origin, &[verifier])
        .unwrap_or_else(|e| panic!("the checkpoint does not verify ({e}):\n{note}"));
    checkpoint
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_verify_with_the_published_key_and_count_every_entry() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(0).await;
    for minutes in 1..=5 {
        let reply = api.earn_reply(&scheme.earner.key, alice.id, minutes).await;
        let body = reply.expect(201);
        // The checkpoint answered with a write includes it and verifies.
        let checkpoint = verified(api, body["checkpoint"]["note"].as_str().unwrap()).await;
        assert!(checkpoint.size > body["entry"]["seq"].as_u64().unwrap());
        assert_eq!(body["checkpoint"]["size"], checkpoint.size);
        let root = base64::engine::general_purpose::STANDARD.encode(checkpoint.root);
        assert_eq!(body["checkpoint"]["root"], Value::String(root));
    }
    let reply = api.get("/v1/ledger/checkpoint", None).await;
    reply.expect(200);
    let checkpoint = verified(api, &reply.text).await;
    assert_eq!(checkpoint.size, api.ledger_size().await);
    // The size is the number of entries: the last entry is size - 1, and there is none after.
    let history = api
        .get(
            &format!("/v1/accounts/{}/entries?limit=1", alice.id),
            Some(&scheme.admin),
        )
        .await;
    assert_eq!(
        history.expect(200)["entries"][0]["seq"],
        checkpoint.size - 1
    );

    // A note altered in any way does not verify.
    let tampered = reply.text.replacen(
        &format!("\n{}\n", checkpoint.size),
        &format!("\n{}\n", checkpoint.size + 1),
        1,
    );
    let key = api.get("/v1/ledger/key", None).await;
    let verifier = NoteVerifier::parse(key.json["verifier_key"].as_str().unwrap()).unwrap();
    assert!(open_checkpoint(tampered.as_bytes(), &checkpoint.origin, &[verifier]).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_openapi_document_is_the_committed_one() {
    let scheme = Scheme::start().await;
    let reply = scheme.api.get("/openapi.json", None).await;
    let served = reply.expect(200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let committed: Value =
        serde_json::from_str(COMMITTED_OPENAPI).expect("the committed file is JSON");
    assert!(
        *served == committed,
        "/openapi.json differs from openapi/openapi.json; regenerate the file with:\n    \
         cargo run --bin timecredits -- openapi > openapi/openapi.json"
    );
    assert_eq!(served["openapi"], "3.1.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn interactive_docs_are_served_without_internet() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let page = api.get("/docs/", None).await;
    page.expect(200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        page.headers
    );
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    // The page's scripts and styles are served by the service itself.
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        let reply = api.get(&format!("/docs/{asset}"), None).await;
        assert_eq!(reply.status, 200, "/docs/{asset}");
        assert!(!reply.text.is_empty());
    }
    let init = api.get("/docs/swagger-initializer.js", None).await;
    assert!(
        init.text.contains("/openapi.json"),
        "the docs load this service's document"
    );
}

/// The checkpoint note of the latest tree, verified, with its text.
async fn latest(api: &Api) -> (Checkpoint, String) {
    let reply = api.get("/v1/ledger/checkpoint", None).await;
    reply.expect(200);
    (verified(api, &reply.text).await, reply.text)
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_prove_an_entry_is_in_the_signed_tree() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(0).await;
    let entry = api.earn(&scheme.earner.key, alice.id, 60).await;
    api.earn(&scheme.earner.key, alice.id, 30).await;
    let id = entry["id"].as_str().unwrap();
    let reply = api
        .get(
            &format!("/v1/entries/{id}/receipt"),
            Some(&alice.credential),
        )
        .await;
    reply.expect(200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let proof = TlogProof::parse(&reply.text).expect("a tlog-proof");
    assert_eq!(proof.index, entry["seq"].as_u64().unwrap());
    let bytes = proof.extra.clone().expect("the entry's bytes");
    let key = api.get("/v1/ledger/key", None).await;
    let verifier = NoteVerifier::parse(key.json["verifier_key"].as_str().unwrap()).unwrap();
    let origin = key.json["origin"].as_str().unwrap();
    let checkpoint = proof
        .verify(origin, std::slice::from_ref(&verifier), &bytes)
        .expect("the receipt verifies");
    assert_eq!(checkpoint.size, api.ledger_size().await);
    let decoded: Value = serde_json::from_slice(&bytes).expect("the entry's canonical JSON");
    assert_eq!(decoded["id"], entry["id"]);
    // Other bytes are not in the tree at that index.
    let mut forged = bytes.clone();
    forged[bytes.len() / 2] ^= 1;
    assert!(proof.verify(origin, &[verifier], &forged).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn consistency_proofs_link_older_checkpoints_to_newer_ones() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(0).await;
    let (old, _) = latest(api).await;
    for minutes in 1..=6 {
        api.earn(&scheme.earner.key, alice.id, minutes).await;
    }
    let (new, _) = latest(api).await;
    assert_eq!(new.size, old.size + 6);
    for from in [1, old.size, new.size] {
        let path = format!("/v1/ledger/consistency?from={from}&to={}", new.size);
        let reply = api.get(&path, None).await;
        let body = reply.expect(200);
        assert_eq!(
            (body["from"].as_u64(), body["to"].as_u64()),
            (Some(from), Some(new.size))
        );
        let proof = proof_hashes(&body["proof"]);
        if from == old.size {
            check_tree(&proof, new.size, &new.root, old.size, &old.root)
                .expect("the old checkpoint's tree is a prefix of the new one");
            assert!(check_tree(&proof, new.size, &new.root, old.size, &new.root).is_err());
        }
        if from == new.size {
            assert!(proof.is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_holds_every_entry_of_the_signed_tree() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(0).await;
    api.earn(&scheme.earner.key, alice.id, 60).await;
    api.spend(&alice, &scheme.venue.key, 15).await;
    let (checkpoint, _) = latest(api).await;
    let (_, auditor) = api
        .create_key(&scheme.admin, serde_json::json!({"kind": "auditor"}))
        .await;
    let reply = api.get("/v1/ledger/export", Some(&auditor)).await;
    reply.expect(200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/x-ndjson"));
    let mut lines = reply.text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).expect("a JSON header");
    assert!(reply.text.contains(&checkpoint.origin), "{header}");
    let entries: Vec<&str> = lines.collect();
    assert_eq!(
        entries.len() as u64,
        checkpoint.size,
        "every entry, one per line"
    );
    let root = root_of_leaves(entries.iter().map(|e| leaf_hash(e.as_bytes())));
    assert_eq!(
        root, checkpoint.root,
        "the lines are the exact bytes of the signed tree"
    );
    for (seq, line) in entries.iter().enumerate() {
        let entry: Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["seq"], seq as u64);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotation_is_published_and_later_checkpoints_verify_with_the_new_key() {
    let mut scheme = Scheme::start().await;
    scheme.member(60).await;
    let before = scheme.api.get("/v1/ledger/key", None).await;
    let old = before.expect(200)["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = before.json["origin"].as_str().unwrap().to_owned();
    assert_eq!(before.json["rotations"], serde_json::json!([]));

    // `timecredits rotate-key` does this while the service is stopped.
    scheme.server.stop();
    let dir = scheme.server.data_dir().to_owned();
    let config_origin = origin.clone();
    let (new, rotation) = tokio::task::spawn_blocking(move || {
        let config = timecredits_ledger::LedgerConfig {
            origin: config_origin,
            ..Default::default()
        };
        let ledger = timecredits_ledger::Ledger::open(&dir, config).expect("the ledger opens");
        let key = timecredits_domain::IdempotencyKey::new("rotate").unwrap();
        let (vkey, committed) = ledger
            .rotate_key(uuid::Uuid::nil(), key)
            .expect("the key rotates");
        (vkey, committed.entries[0].clone())
    })
    .await
    .unwrap();
    scheme.restart();

    let after = scheme.api.get("/v1/ledger/key", None).await;
    let body = after.expect(200);
    assert_eq!(body["verifier_key"], new.as_str());
    assert_eq!(body["rotations"].as_array().unwrap().len(), 1);
    assert_eq!(body["rotations"][0]["seq"], rotation.seq);
    assert_eq!(body["rotations"][0]["id"], rotation.id.to_string());
    assert_eq!(body["rotations"][0]["vkey"], new.as_str());

    // Checkpoints carry the new key's signature, and the old one's during the overlap.
    scheme.member(30).await;
    let note = scheme.api.get("/v1/ledger/checkpoint", None).await.text;
    for key in [&new, &old] {
        let verifier = NoteVerifier::parse(key).unwrap();
        open_checkpoint(note.as_bytes(), &origin, &[verifier])
            .unwrap_or_else(|e| panic!("not signed by {key}: {e}\n{note}"));
    }

    // The key entry itself, as an administrator reads it.
    let entry = scheme
        .api
        .get(&format!("/v1/entries/{}", rotation.id), Some(&scheme.admin))
        .await;
    let entry = entry.expect(200);
    assert_eq!(entry["kind"], "key");
    assert_eq!(entry["vkey"], new.as_str());
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(entry["endorsement"].as_str().unwrap())
            .unwrap()
            .len(),
        64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_rotates_the_key_online_and_a_repeat_answers_with_the_same_rotation() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let old = api.get("/v1/ledger/key", None).await.json["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = timecredits_tests::client::new_key();
    let reply = api
        .post_keyed("/v1/key-rotations", Some(&scheme.admin), &key, None)
        .await;
    let rotated = reply.expect(201).clone();
    let new = rotated["verifier_key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["entry"]["kind"], "key");
    assert_eq!(rotated["entry"]["vkey"], new.as_str());
    // The checkpoint that first includes the rotation carries both signatures.
    let note = rotated["checkpoint"]["note"].as_str().unwrap();
    let origin = rotated["checkpoint"]["origin"].as_str().unwrap();
    for vkey in [&new, &old] {
        let verifier = NoteVerifier::parse(vkey).unwrap();
        open_checkpoint(note.as_bytes(), origin, &[verifier])
            .unwrap_or_else(|e| panic!("not signed by {vkey}: {e}"));
    }

    // A repeat answers with the same rotation and rotates nothing.
    let again = api
        .post_keyed("/v1/key-rotations", Some(&scheme.admin), &key, None)
        .await;
    assert!(again.replayed());
    assert_eq!(again.expect(201), &rotated);
    let published = api.get("/v1/ledger/key", None).await;
    assert_eq!(published.json["verifier_key"], new.as_str());
    assert_eq!(published.json["rotations"].as_array().unwrap().len(), 1);

    // The `key` entry's actor is the administrator who asked, as AUDIT.md says.
    let me = api.get("/v1/me", Some(&scheme.admin)).await;
    assert_eq!(rotated["entry"]["actor"], me.expect(200)["actor"]);

    // One rotation per overlap: a second one now is refused, and changes nothing.
    let size = api.ledger_size().await;
    let refused = api
        .post_keyed(
            "/v1/key-rotations",
            Some(&scheme.admin),
            &timecredits_tests::client::new_key(),
            None,
        )
        .await;
    refused.assert_problem(409, "key_overlap_running");
    let detail = refused.json["detail"].as_str().unwrap();
    assert!(detail.contains("overlap runs until"), "{detail}");
    assert_eq!(api.ledger_size().await, size);
    let published = api.get("/v1/ledger/key", None).await;
    assert_eq!(published.json["verifier_key"], new.as_str());

    // Later writes are signed by the new key.
    scheme.member(30).await;
    let checkpoint = api.get("/v1/ledger/checkpoint", None).await.text;
    verified(api, &checkpoint).await;
}
