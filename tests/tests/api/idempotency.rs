//! The `Idempotency-Key` protocol on every POST: required, a repeat gets the original answer
//! without a new entry, a different request under the same key is refused, and a concurrent
//! repeat never makes a second entry.

use reqwest::Method;
use serde_json::{json, Value};
use timecredits_tests::client::{new_key, Api, Member, Reply, Scheme};

/// Every POST route, with a caller allowed to use it and a valid body, built fresh for each
/// attempt (a spend code or an entry to reverse is made on demand).
struct Routes {
    scheme: Scheme,
    member: Member,
    other: Member,
}

impl Routes {
    const ALL: [&'static str; 13] = [
        "partner",
        "api_key",
        "revoke",
        "allocation",
        "close",
        "member",
        "earn",
        "earn_batch",
        "spend_code",
        "redemption",
        "gift",
        "reversal",
        "key_rotation",
    ];

    /// (path, token, body) of route `name`; `variant` changes the body (or target) so that the
    /// request differs from variant 0.
    async fn request(&self, name: &str, variant: u64) -> (String, String, Option<Value>) {
        let s = &self.scheme;
        let (api, admin) = (&s.api, s.admin.clone());
        let minutes = 1 + variant;
        match name {
            "partner" => (
                "/v1/partners".into(),
                admin,
                Some(json!({"name": format!("P{variant}"), "roles": ["earn"]})),
            ),
            "api_key" => (
                "/v1/api-keys".into(),
                admin,
                Some(json!({"label": format!("k{variant}"), "holder": {"kind": "auditor"}})),
            ),
            "revoke" => {
                let (id, _) = api.create_key(&admin, json!({"kind": "auditor"})).await;
                (format!("/v1/api-keys/{id}/revoke"), admin, None)
            }
            "allocation" => (
                "/v1/allocations".into(),
                admin,
                Some(json!({"partner_id": s.earner.id, "minutes": minutes})),
            ),
            "close" => {
                let empty = api.register_member(&admin).await;
                (format!("/v1/accounts/{}/close", empty.id), admin, None)
            }
            "member" => ("/v1/members".into(), s.earner.key.clone(), None),
            "earn" => (
                "/v1/earn".into(),
                s.earner.key.clone(),
                Some(json!({"member_id": self.member.id, "minutes": minutes, "activity": "a"})),
            ),
            "earn_batch" => (
                "/v1/earn/batch".into(),
                s.earner.key.clone(),
                Some(
                    json!({"items": [{"member_id": self.member.id, "minutes": minutes, "activity": "a"}]}),
                ),
            ),
            "spend_code" => (
                "/v1/spend-codes".into(),
                self.member.credential.clone(),
                Some(json!({"max_minutes": minutes})),
            ),
            "redemption" => {
                let code = api.spend_code(&self.member.credential, None).await;
                (
                    "/v1/redemptions".into(),
                    s.venue.key.clone(),
                    Some(Api::redemption(&code, minutes)),
                )
            }
            "gift" => (
                "/v1/gifts".into(),
                self.member.credential.clone(),
                Some(json!({"to_member_id": self.other.id, "minutes": minutes})),
            ),
            "reversal" => {
                let entry = api.earn(&s.earner.key, self.member.id, 1).await;
                let id = entry["id"].as_str().unwrap();
                (
                    format!("/v1/entries/{id}/reversal"),
                    s.earner.key.clone(),
                    Some(json!({"reference": format!("r{variant}")})),
                )
            }
            "key_rotation" => ("/v1/key-rotations".into(), admin, None),
            other => unreachable!("route {other}"),
        }
    }
}

/// A scheme with a member holding 1,000 credits and another with none.
async fn setup() -> Routes {
    let scheme = Scheme::start().await;
    let member = scheme.member(60_000).await;
    let other = scheme.member(0).await;
    Routes {
        scheme,
        member,
        other,
    }
}

async fn post(
    api: &Api,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: &Option<Value>,
) -> Reply {
    api.call(Method::POST, path, Some(token), key, body.as_ref())
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_post_needs_a_valid_idempotency_key() {
    let routes = setup().await;
    let scheme = &routes.scheme;
    let api = &scheme.api;
    let size = api.ledger_size().await;
    let long = "k".repeat(256);
    // The expiry sweep's keys (a request that took one first would block an expiry).
    let services = format!("expiry:{}:7", uuid::Uuid::now_v7());
    let quoted = format!("\"{services}\"");
    for name in Routes::ALL {
        let (path, token, body) = routes.request(name, 0).await;
        let before = api.ledger_size().await;
        let reply = post(api, &path, &token, None, &body).await;
        reply.assert_problem_for(name, 400, "idempotency_key_missing");
        for bad in [
            "",
            "   ",
            long.as_str(),
            "caf\u{e9}",
            "a b",
            services.as_str(),
            quoted.as_str(),
        ] {
            let mut request = api.request(Method::POST, &path).bearer_auth(&token).header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
            );
            // A route without a body gets none (it would refuse one, even `null`).
            if let Some(body) = &body {
                request = request.json(body);
            }
            let reply = api.send(request).await;
            reply.assert_problem_for(
                &format!("{name} with key {bad:?}"),
                400,
                "idempotency_key_invalid",
            );
        }
        assert_eq!(
            api.ledger_size().await,
            before,
            "{name}: a refused request wrote nothing"
        );
    }
    // The longest key is fine, and a structured-field string (quoted) is read as its content.
    let (path, token, body) = routes.request("earn", 0).await;
    let max = "k".repeat(255);
    post(api, &path, &token, Some(&max), &body)
        .await
        .expect(201);
    let quoted = post(api, &path, &token, Some(&format!("\"{max}\"")), &body).await;
    assert!(
        quoted.replayed(),
        "a quoted key is the same key: {}",
        quoted.text
    );
    assert!(api.ledger_size().await > size);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_gets_the_original_answer_and_writes_nothing() {
    let routes = setup().await;
    let (scheme, member) = (&routes.scheme, &routes.member);
    let api = &scheme.api;
    let mut failures = Vec::new();
    for name in Routes::ALL {
        let (path, token, body) = routes.request(name, 0).await;
        let key = new_key();
        let first = post(api, &path, &token, Some(&key), &body).await;
        assert!(
            first.status == 200 || first.status == 201,
            "{name}: {}",
            first.text
        );
        assert!(!first.replayed(), "{name}: a first answer is not a replay");
        let size = api.ledger_size().await;
        let balance = api.balance(&member.credential, member.id).await;
        let keys = api.get("/v1/api-keys", Some(&scheme.admin)).await.text;
        let repeat = post(api, &path, &token, Some(&key), &body).await;
        if (repeat.status, &repeat.json) != (first.status, &first.json) {
            failures.push(format!(
                "{name}: first {} {}\n  repeat {} {}",
                first.status, first.text, repeat.status, repeat.text
            ));
        } else if !repeat.replayed() {
            failures.push(format!(
                "{name}: the repeat is not marked Idempotent-Replayed: true"
            ));
        }
        assert_eq!(
            api.ledger_size().await,
            size,
            "{name}: a repeat made a new entry"
        );
        assert_eq!(
            api.balance(&member.credential, member.id).await,
            balance,
            "{name}"
        );
        assert_eq!(
            api.get("/v1/api-keys", Some(&scheme.admin)).await.text,
            keys,
            "{name}"
        );
    }
    assert!(
        failures.is_empty(),
        "repeats that differ from the first answer:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_for_a_different_request_is_refused() {
    let routes = setup().await;
    let scheme = &routes.scheme;
    let api = &scheme.api;
    for name in Routes::ALL {
        // Register, close and revoke have no body: a different request is another target.
        let (path, token, body) = routes.request(name, 0).await;
        let key = new_key();
        let first = post(api, &path, &token, Some(&key), &body).await;
        assert!(first.status < 300, "{name}: {}", first.text);
        let (path2, token2, body2) = routes.request(name, 1).await;
        assert_eq!(token, token2);
        if (&path, &body) == (&path2, &body2) {
            continue; // `member`, `key_rotation`: every request is the same one
        }
        let size = api.ledger_size().await;
        let reply = post(api, &path2, &token, Some(&key), &body2).await;
        reply.assert_problem_for(name, 422, "idempotency_key_reused");
        assert_eq!(api.ledger_size().await, size, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_one_request_of_its_caller_across_routes() {
    let routes = setup().await;
    let (scheme, member) = (&routes.scheme, &routes.member);
    let api = &scheme.api;
    let admin = scheme.admin.as_str();
    // A key used for an allocation is not a registration.
    let key = new_key();
    let body = json!({"partner_id": scheme.earner.id, "minutes": 60});
    api.post_keyed("/v1/allocations", Some(admin), &key, Some(&body))
        .await
        .expect(201);
    api.post_keyed("/v1/members", Some(admin), &key, None)
        .await
        .assert_problem(422, "idempotency_key_reused");
    // Nor, for an earn partner, an earn and then a registration.
    let key = new_key();
    let earn = json!({"member_id": member.id, "minutes": 1, "activity": "a"});
    api.post_keyed("/v1/earn", Some(&scheme.earner.key), &key, Some(&earn))
        .await
        .expect(201);
    api.post_keyed("/v1/members", Some(&scheme.earner.key), &key, None)
        .await
        .assert_problem(422, "idempotency_key_reused");
    // Keys are the caller's own: another caller may use the same key.
    api.post_keyed("/v1/members", Some(admin), &key, None)
        .await
        .expect(201);
}

/// API keys and revocations are recorded in the registry, spend codes in memory, movements in
/// the ledger: a key used for one of them must still not be accepted by another.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_used_in_one_store_is_refused_by_the_others() {
    let routes = setup().await;
    let (scheme, member, other) = (&routes.scheme, &routes.member, &routes.other);
    let api = &scheme.api;
    let admin = scheme.admin.as_str();
    let api_key = (
        "/v1/api-keys",
        admin,
        json!({"label": "k", "holder": {"kind": "auditor"}}),
    );
    let allocation = (
        "/v1/allocations",
        admin,
        json!({"partner_id": scheme.earner.id, "minutes": 60}),
    );
    let spend_code = ("/v1/spend-codes", member.credential.as_str(), json!({}));
    let gift = (
        "/v1/gifts",
        member.credential.as_str(),
        json!({"to_member_id": other.id, "minutes": 1}),
    );
    let mut accepted = Vec::new();
    for (first, then) in [
        (&api_key, &allocation),
        (&allocation, &api_key),
        (&spend_code, &gift),
        (&gift, &spend_code),
    ] {
        let key = new_key();
        let reply = api
            .post_keyed(first.0, Some(first.1), &key, Some(&first.2))
            .await;
        assert_eq!(reply.status, 201, "{}: {}", first.0, reply.text);
        let reply = api
            .post_keyed(then.0, Some(then.1), &key, Some(&then.2))
            .await;
        if reply.status != 422 || reply.json["code"] != "idempotency_key_reused" {
            accepted.push(format!(
                "POST {} then POST {} with the same key: {} {}",
                first.0, then.0, reply.status, reply.text
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "BUG: the registry, the spend-code table and the ledger each remember only their own \
         Idempotency-Keys, so a key is accepted again for a different request:\n{}",
        accepted.join("\n")
    );
}

/// Sends the same request `n` times at once and checks that exactly one did the work, the others
/// being refused as in flight or answered with its replay.
async fn concurrent_repeats(
    api: &Api,
    name: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    n: usize,
) -> Vec<Reply> {
    let key = new_key();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (api, path, token, key, body) = (
                api.clone(),
                path.to_owned(),
                token.to_owned(),
                key.clone(),
                body.clone(),
            );
            tokio::spawn(async move { post(&api, &path, &token, Some(&key), &body).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    let originals: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status < 300 && !r.replayed())
        .collect();
    assert_eq!(
        originals.len(),
        1,
        "{name}: one request does the work: {replies:#?}"
    );
    for reply in &replies {
        if reply.status == 409 {
            reply.assert_problem(409, "idempotency_key_in_flight");
        } else {
            assert_eq!(
                (reply.status, &reply.json),
                (originals[0].status, &originals[0].json),
                "{name}"
            );
        }
    }
    replies
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_repeats_never_make_two_entries() {
    let routes = setup().await;
    let (scheme, member) = (&routes.scheme, &routes.member);
    let api = &scheme.api;
    let admin = scheme.admin.as_str();
    let budget = api.balance(admin, scheme.earner.budget()).await;
    let size = api.ledger_size().await;
    let mut conflicts = 0;
    for round in 0..5 {
        let body =
            json!({"member_id": member.id, "minutes": 1, "activity": format!("round {round}")});
        let replies =
            concurrent_repeats(api, "earn", "/v1/earn", &scheme.earner.key, Some(body), 16).await;
        conflicts += replies.iter().filter(|r| r.status == 409).count();
    }
    assert_eq!(api.ledger_size().await, size + 5);
    assert_eq!(api.balance(admin, scheme.earner.budget()).await, budget - 5);
    assert!(
        conflicts > 0,
        "16 simultaneous repeats, five times, and never one in flight"
    );
    // The writes answered partly from the registry are just as safe.
    let body = json!({"name": "Twin", "roles": ["earn", "spend"]});
    concurrent_repeats(api, "partner", "/v1/partners", admin, Some(body), 16).await;
    let partners = api.get("/v1/partners", Some(admin)).await;
    let twins = partners.expect(200)["partners"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "Twin")
        .count();
    assert_eq!(twins, 1);
    let before = api.get("/v1/api-keys", Some(admin)).await.expect(200)["keys"]
        .as_array()
        .unwrap()
        .len();
    let body = json!({"label": "twin", "holder": {"kind": "auditor"}});
    concurrent_repeats(api, "api key", "/v1/api-keys", admin, Some(body), 16).await;
    let after = api.get("/v1/api-keys", Some(admin)).await.expect(200)["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before + 1);
    let size = api.ledger_size().await;
    let replies =
        concurrent_repeats(api, "member", "/v1/members", &scheme.earner.key, None, 16).await;
    assert_eq!(api.ledger_size().await, size + 1);
    let credential = replies.iter().find(|r| r.status == 201).unwrap().json["credential"]
        .as_str()
        .unwrap()
        .to_owned();
    api.get("/v1/me", Some(&credential)).await.expect(200);
}

/// A redemption's repeat is answered by the ledger from the entry it made; the code is not part
/// of that entry, so the handler must not take a different code under the same key as a repeat.
#[tokio::test(flavor = "multi_thread")]
async fn a_redemption_key_reused_with_another_code_is_refused() {
    let routes = setup().await;
    let (scheme, alice, bob) = (&routes.scheme, &routes.member, &routes.other);
    let api = &scheme.api;
    api.earn(&scheme.earner.key, bob.id, 600).await;
    let key = new_key();
    let code = api.spend_code(&alice.credential, None).await;
    let first = Api::redemption(&code, 60);
    api.post_keyed(
        "/v1/redemptions",
        Some(&scheme.venue.key),
        &key,
        Some(&first),
    )
    .await
    .expect(201);
    let bobs_code = api.spend_code(&bob.credential, None).await;
    let second = Api::redemption(&bobs_code, 60);
    let reply = api
        .post_keyed(
            "/v1/redemptions",
            Some(&scheme.venue.key),
            &key,
            Some(&second),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "BUG: a redemption with another member's code under a used Idempotency-Key was answered \
         as a repeat of the first one (the venue is told Bob's code was redeemed, Alice was \
         debited, and Bob's code stays open): {}",
        reply.text
    );
}
