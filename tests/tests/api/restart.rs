//! What survives a restart of the service on the same data: balances, entries, keys and their
//! revocations, member credentials, and the answers to repeated requests.

use serde_json::json;
use timecredits_tests::client::{Api, Reply, Scheme};

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

    // Open spend codes are kept in memory only: a restart voids them.
    api.redeem(&venue.key, &open_code, 1)
        .await
        .assert_problem(422, "spend_code_invalid");
    // And the ledger goes on from where it was.
    let entry = api.earn(&earner.key, bob.id, 1).await;
    assert_eq!(entry["seq"], size);
    let code = api.spend_code(&alice.credential, None).await;
    api.redeem(&venue.key, &code, 1).await.expect(201);
}
