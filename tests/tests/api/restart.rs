//! What survives a restart of the service on the same data: balances, entries, keys and their
//! revocations, member credentials, spend codes, and the answers to repeated requests, also
//! after a SIGKILL.

use serde_json::json;
use timecredits_tests::client::{new_key, Api, Reply, Scheme};
use timecredits_tests::server::ChildServer;

#[tokio::test(flavor = "multi_thread")]
async fn data_keys_credentials_and_replays_survive_a_restart() {
    let mut scheme = Scheme::start().await;
    let admin = scheme.admin.clone();
    let (earner, venue) = (scheme.earner.clone(), scheme.venue.clone());
    let api = scheme.api.clone();
    let alice = scheme.member(600).await;
    let bob = scheme.member(0).await;
    api.gift(&alice, bob.id, 60).await.expect(201);
    let (revoked_id, revoked) = api.create_key(&admin, json!({"kind": "auditor"})).await;
    api.revoke_key(&admin, revoked_id).await;

    // Requests to repeat after the restart, each with its answer.
    let mut repeats: Vec<(String, String, String, Option<serde_json::Value>, Reply)> = Vec::new();
    let mut record =
        |path: &str, token: &str, key: &str, body: Option<serde_json::Value>, reply: Reply| {
            assert!(reply.status < 300, "{path}: {}", reply.text);
            repeats.push((
                path.to_owned(),
                token.to_owned(),
                key.to_owned(),
                body,
                reply,
            ));
        };
    let requests = [
        (
            "/v1/earn",
            earner.key.clone(),
            Some(json!({"member_id": alice.id, "minutes": 30, "activity": "a"})),
        ),
        (
            "/v1/partners",
            admin.clone(),
            Some(json!({"name": "Late", "roles": ["earn", "spend"]})),
        ),
        (
            "/v1/api-keys",
            admin.clone(),
            Some(json!({"label": "k", "holder": {"kind": "partner", "id": venue.id}})),
        ),
        ("/v1/members", earner.key.clone(), None),
        (
            "/v1/gifts",
            alice.credential.clone(),
            Some(json!({"to_member_id": bob.id, "minutes": 5})),
        ),
    ];
    for (path, token, body) in requests {
        let key = timecredits_tests::client::new_key();
        let reply = api
            .post_keyed(path, Some(&token), &key, body.as_ref())
            .await;
        record(path, &token, &key, body, reply);
    }
    let code = api.spend_code(&alice.credential, None).await;
    let redemption = Api::redemption(&code, 45);
    let key = timecredits_tests::client::new_key();
    let reply = api
        .post_keyed("/v1/redemptions", Some(&venue.key), &key, Some(&redemption))
        .await;
    record("/v1/redemptions", &venue.key, &key, Some(redemption), reply);
    let open_code = api.spend_code(&alice.credential, None).await;

    let balances = [
        api.balance(&admin, alice.id).await,
        api.balance(&admin, bob.id).await,
        api.balance(&admin, earner.budget()).await,
        api.balance(&admin, venue.venue()).await,
    ];
    let size = api.ledger_size().await;
    let checkpoint = api.get("/v1/ledger/checkpoint", None).await.text;
    let keys = api.get("/v1/api-keys", Some(&admin)).await.text;
    let partners = api.get("/v1/partners", Some(&admin)).await.text;
    let history = api
        .get(&format!("/v1/accounts/{}/entries", alice.id), Some(&admin))
        .await
        .text;

    scheme.restart();
    let api = scheme.api.clone();
    assert_ne!(api.base(), "", "the API follows the server");

    assert_eq!(api.ledger_size().await, size);
    assert_eq!(
        api.get("/v1/ledger/checkpoint", None).await.text,
        checkpoint,
        "an unchanged tree keeps its checkpoint"
    );
    let after = [
        api.balance(&admin, alice.id).await,
        api.balance(&admin, bob.id).await,
        api.balance(&admin, earner.budget()).await,
        api.balance(&admin, venue.venue()).await,
    ];
    assert_eq!(after, balances);
    assert_eq!(api.get("/v1/api-keys", Some(&admin)).await.text, keys);
    assert_eq!(api.get("/v1/partners", Some(&admin)).await.text, partners);
    assert_eq!(
        api.get(&format!("/v1/accounts/{}/entries", alice.id), Some(&admin))
            .await
            .text,
        history
    );
    // Credentials: keys, member credentials; the revoked key stays revoked.
    for token in [
        &admin,
        &earner.key,
        &venue.key,
        &alice.credential,
        &bob.credential,
    ] {
        api.get("/v1/me", Some(token)).await.expect(200);
    }
    api.get("/v1/me", Some(&revoked))
        .await
        .assert_problem(401, "unauthorized");

    // Every repeat gets its original answer, marked as a replay, and writes nothing.
    for (path, token, key, body, first) in &repeats {
        let reply = api.post_keyed(path, Some(token), key, body.as_ref()).await;
        assert_eq!(
            (reply.status, &reply.json),
            (first.status, &first.json),
            "{path} repeated after a restart"
        );
        assert!(
            reply.replayed(),
            "{path}: the repeat after a restart is marked as a replay"
        );
    }
    assert_eq!(api.ledger_size().await, size);
    // A different request under a used key is still refused.
    let (path, token, key, _, _) = &repeats[0];
    let other = json!({"member_id": alice.id, "minutes": 31, "activity": "a"});
    api.post_keyed(path, Some(token), key, Some(&other))
        .await
        .assert_problem(422, "idempotency_key_reused");

    // And the ledger goes on from where it was.
    let entry = api.earn(&earner.key, bob.id, 1).await;
    assert_eq!(entry["seq"], size);
    let code = api.spend_code(&alice.credential, None).await;
    api.redeem(&venue.key, &code, 1).await.expect(201);
    // Open spend codes are kept (hashed) on disk: they still work, once.
    api.redeem(&venue.key, &open_code, 1).await.expect(201);
    api.redeem(&venue.key, &open_code, 1)
        .await
        .assert_problem(422, "spend_code_used");
}

/// Spend codes survive a SIGKILL: every code handed out still works, and a venue re-sending the
/// redemptions it sent when the service died (answered or not) gets each one committed exactly
/// once, and none of them counts as a guess.
#[tokio::test(flavor = "multi_thread")]
async fn spend_codes_and_unanswered_redemptions_survive_a_kill() {
    const MEMBERS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let child = ChildServer::spawn(env!("CARGO_BIN_EXE_server-child"), dir.path());
    let api = Api::new(child.base());
    let admin = child.admin_key().to_owned();
    let earner = api.create_partner(&admin, "Lunch Club", &["earn"]).await;
    api.allocate(&admin, earner.id, 100_000).await;
    let venue = api.create_partner(&admin, "Pool", &["spend"]).await;
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        let member = api.register_member(&earner.key).await;
        api.earn(&earner.key, member.id, 600).await;
        let code = api.spend_code(&member.credential, None).await;
        let spare = api.spend_code(&member.credential, None).await;
        members.push((member, code, spare, new_key()));
    }
    // Every redemption is sent at once, and the service is killed while they are in flight.
    let sent: Vec<_> = members
        .iter()
        .map(|(_, code, _, key)| {
            let request = api
                .request(reqwest::Method::POST, "/v1/redemptions")
                .bearer_auth(&venue.key)
                .header("Idempotency-Key", key)
                .json(&Api::redemption(code, 60));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    child.kill();
    for task in sent {
        let status = task.await.unwrap();
        assert!(matches!(status, Ok(201) | Err(_)), "{status:?}");
    }

    let child = ChildServer::spawn(env!("CARGO_BIN_EXE_server-child"), dir.path());
    let api = Api::new(child.base());
    for (member, code, spare, key) in &members {
        let body = Api::redemption(code, 60);
        let reply = api
            .post_keyed("/v1/redemptions", Some(&venue.key), key, Some(&body))
            .await;
        assert_eq!(reply.status, 201, "a re-sent redemption: {}", reply.text);
        assert_eq!(reply.json["entry"]["debit"], json!(member.id));
        // A code handed out before the kill and never used still works.
        api.redeem(&venue.key, spare, 1).await.expect(201);
        assert_eq!(api.balance(&member.credential, member.id).await, 539);
    }
    child.kill();
}
