//! Reversals: by the partner that made an entry within the window, by an administrator at any
//! time, by nobody else, and at most once.

use serde_json::{json, Value};
use timecredits_tests::client::{Api, Reply, Scheme};

/// Reverses `entry` (as answered by the API) with `token`.
async fn reverse(api: &Api, entry: &Value, token: &str) -> Reply {
    api.reverse(token, entry["id"].as_str().unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn partners_reverse_their_own_entries_and_administrators_any() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let (earner, venue) = (&scheme.earner, &scheme.venue);
    let other = api.create_partner(admin, "Other Charity", &["earn"]).await;
    api.allocate(admin, other.id, 600).await;
    let (_, auditor) = api.create_key(admin, json!({"kind": "auditor"})).await;
    let alice = scheme.member(0).await;

    // The earn partner reverses its own earn: the mirror movement, referencing it.
    let earn = api.earn(&earner.key, alice.id, 90).await;
    let budget = api.balance(admin, earner.budget()).await;
    for refused in [&other.key, &venue.key, &auditor, &alice.credential] {
        reverse(api, &earn, refused)
            .await
            .assert_problem(403, "forbidden");
    }
    let reply = reverse(api, &earn, &earner.key).await;
    let reversal = reply.expect(201)["entry"].clone();
    assert_eq!(reversal["kind"], "reverse");
    assert_eq!(reversal["reverses"], earn["seq"]);
    assert_eq!(reversal["actor"], json!(earner.id));
    assert_eq!(reversal["reference"], "recorded twice");
    assert_eq!(
        (&reversal["debit"], &reversal["credit"]),
        (&earn["credit"], &earn["debit"])
    );
    assert_eq!(api.balance(admin, alice.id).await, 0);
    assert_eq!(api.balance(admin, earner.budget()).await, budget + 90);
    // At most once, whoever asks.
    for token in [earner.key.as_str(), admin] {
        reverse(api, &earn, token)
            .await
            .assert_problem(422, "already_reversed");
    }
    reverse(api, &reversal, admin)
        .await
        .assert_problem(422, "not_reversible");

    // An administrator reverses any partner's movement.
    let earn = api.earn(&other.key, alice.id, 60).await;
    reverse(api, &earn, admin).await.expect(201);
    assert_eq!(api.balance(admin, other.budget()).await, 600);

    // A venue reverses its own redemption; the member gets the credits back.
    api.earn(&earner.key, alice.id, 120).await;
    let spend = api.spend(&alice, &venue.key, 100).await;
    reverse(api, &spend, &earner.key)
        .await
        .assert_problem(403, "forbidden");
    reverse(api, &spend, &venue.key).await.expect(201);
    assert_eq!(api.balance(admin, alice.id).await, 120);
    assert_eq!(api.balance(admin, venue.venue()).await, 0);

    // A reversal that would take an account below zero is refused.
    let bob = scheme.member(0).await;
    let earn = api.earn(&earner.key, alice.id, 30).await;
    api.gift(&alice, bob.id, 150).await.expect(201);
    reverse(api, &earn, &earner.key)
        .await
        .assert_problem(422, "insufficient_credits");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_window_only_an_administrator_reverses() {
    let scheme = Scheme::start_with(|s| s.reversal_window = chrono::Duration::zero()).await;
    let api = &scheme.api;
    let alice = scheme.member(0).await;
    let earn = api.earn(&scheme.earner.key, alice.id, 60).await;
    reverse(api, &earn, &scheme.earner.key)
        .await
        .assert_problem(403, "reversal_window_passed");
    assert_eq!(api.balance(&alice.credential, alice.id).await, 60);
    reverse(api, &earn, &scheme.admin).await.expect(201);
    assert_eq!(api.balance(&alice.credential, alice.id).await, 0);
}
