//! Every endpoint once, on its success path, checking what it answers and what it changed.

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use timecredits_tests::client::{uuid, Api, Scheme, BUDGET_MINUTES};

/// The entry of a single-entry write, after checking that the write's checkpoint includes it.
#[track_caller]
fn recorded(body: &Value) -> &Value {
    let entry = &body["entry"];
    let seq = entry["seq"].as_u64().expect("a sequence number");
    let size = body["checkpoint"]["size"]
        .as_u64()
        .expect("a checkpoint size");
    assert!(size > seq, "checkpoint of size {size} omits entry {seq}");
    assert!(body["checkpoint"]["note"]
        .as_str()
        .is_some_and(|n| n.contains(&format!("\n{size}\n"))));
    entry
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    assert_eq!(api.get("/healthz", None).await.expect(200)["status"], "ok");
    let ready = api.get("/readyz", None).await;
    assert_eq!(ready.expect(200)["status"], "ready");
    // Genesis, two partners' accounts and an allocation.
    assert_eq!(ready.json["entries"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn partners_keys_and_members_are_administered() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());

    let me = api.get("/v1/me", Some(admin)).await;
    assert_eq!(me.expect(200)["kind"], "administrator");
    assert_eq!(me.json["scopes"], json!(["admin"]));

    // A partner with both roles gets a budget and a venue account, opened in one request.
    let body = json!({"name": "Community Hub", "roles": ["spend", "earn", "earn"]});
    let created = api.post("/v1/partners", Some(admin), Some(&body)).await;
    let created = created.expect(201);
    let partner = &created["partner"];
    let id = uuid(&partner["id"]);
    assert_eq!(partner["name"], "Community Hub");
    assert_eq!(partner["roles"], json!(["earn", "spend"]));
    let entries = created["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (entry, kind, field) in [
        (&entries[0], "budget", "budget_account"),
        (&entries[1], "venue", "venue_account"),
    ] {
        assert_eq!(entry["kind"], "open");
        assert_eq!(entry["account_kind"], kind);
        assert_eq!(entry["owner"], json!(id));
        assert_eq!(entry["account"], partner[field]);
        assert_eq!(entry["key"], entries[0]["key"]);
    }
    assert!(created["checkpoint"]["size"].as_u64().unwrap() > entries[1]["seq"].as_u64().unwrap());

    let list = api.get("/v1/partners", Some(admin)).await;
    let partners = list.expect(200)["partners"].as_array().unwrap();
    assert_eq!(partners.len(), 3);
    assert!(partners.contains(partner));
    let one = api.get(&format!("/v1/partners/{id}"), Some(admin)).await;
    assert_eq!(one.expect(200), partner);

    // Keys: a partner key (narrowed to one scope), an auditor and another administrator.
    let body =
        json!({"label": "till 1", "holder": {"kind": "partner", "id": id, "scopes": ["spend"]}});
    let key = api.post("/v1/api-keys", Some(admin), Some(&body)).await;
    let key = key.expect(201).clone();
    let secret = key["secret"].as_str().unwrap();
    assert!(secret.starts_with("tck_") && secret.len() > 40, "{secret}");
    assert_eq!(key["key"]["label"], "till 1");
    assert_eq!(
        key["key"]["principal"],
        json!({"kind": "partner", "id": id})
    );
    assert_eq!(key["key"]["scopes"], json!(["spend"]));
    assert_eq!(key["key"]["revoked"], Value::Null);
    let till = api.get("/v1/me", Some(secret)).await;
    assert_eq!(till.expect(200)["kind"], "partner");
    assert_eq!(till.json["scopes"], json!(["spend"]));
    assert_eq!(till.json["partner"], *partner);
    assert_eq!(till.json["accounts"].as_array().unwrap().len(), 2);
    let (_, auditor) = api.create_key(admin, json!({"kind": "auditor"})).await;
    let me = api.get("/v1/me", Some(&auditor)).await;
    assert_eq!(me.expect(200)["kind"], "auditor");
    assert_eq!(me.json["scopes"], json!(["audit"]));
    let (_, second_admin) = api
        .create_key(admin, json!({"kind": "administrator"}))
        .await;
    assert_eq!(
        api.get("/v1/me", Some(&second_admin)).await.expect(200)["kind"],
        "administrator"
    );

    // Listing shows public records only, never a secret.
    let all = api.get("/v1/api-keys", Some(admin)).await;
    let keys = all.expect(200)["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        7,
        "first admin key and its staff login's key, two partner keys, till, auditor, admin"
    );
    assert!(!all.text.contains(secret) && !all.text.contains("secret"));
    let mine = api
        .get(&format!("/v1/api-keys?partner_id={id}"), Some(admin))
        .await;
    assert_eq!(mine.expect(200)["keys"], json!([key["key"]]));

    // Revoking: the key stops working at once; revoking again changes nothing.
    let key_id = uuid(&key["key"]["id"]);
    let revoked = api
        .post(&format!("/v1/api-keys/{key_id}/revoke"), Some(admin), None)
        .await;
    let revoked_at = revoked.expect(200)["revoked"].clone();
    assert!(revoked_at.is_string(), "{}", revoked.text);
    api.get("/v1/me", Some(secret))
        .await
        .assert_problem(401, "unauthorized");
    let again = api
        .post(&format!("/v1/api-keys/{key_id}/revoke"), Some(admin), None)
        .await;
    assert_eq!(again.expect(200)["revoked"], revoked_at);

    // Members: registered by an administrator or an earn partner, with a credential.
    for registrar in [admin, scheme.earner.key.as_str()] {
        let reply = api.post("/v1/members", Some(registrar), None).await;
        let body = reply.expect(201);
        let member = uuid(&body["member_id"]);
        let credential = body["credential"].as_str().unwrap();
        assert!(credential.starts_with("tcm_"), "{credential}");
        let entry = recorded(body);
        assert_eq!(
            (entry["kind"].as_str(), entry["account_kind"].as_str()),
            (Some("open"), Some("member"))
        );
        assert_eq!(entry["account"], json!(member));
        let me = api.get("/v1/me", Some(credential)).await;
        assert_eq!(me.expect(200)["kind"], "member");
        assert_eq!(me.json["actor"], json!(member));
        assert_eq!(me.json["scopes"], json!([]));
        assert_eq!(me.json["accounts"][0]["id"], json!(member));
        assert_eq!(me.json["accounts"][0]["balance_minutes"], 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credits_move_from_allocation_to_earning_spending_gifting_and_back() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let (earner, venue) = (&scheme.earner, &scheme.venue);

    // Allocation: from the programme account into the budget.
    let body = json!({"partner_id": earner.id, "hours": 2, "minutes": 30, "reference": "grant Q4"});
    let reply = api.post("/v1/allocations", Some(admin), Some(&body)).await;
    let allocation = recorded(reply.expect(201)).clone();
    assert_eq!(allocation["kind"], "allocate");
    assert_eq!(allocation["minutes"], 150);
    assert_eq!(allocation["credit"], json!(earner.budget()));
    assert_eq!(allocation["reference"], "grant Q4");
    let programme = uuid(&allocation["debit"]);
    assert_eq!(
        api.balance(admin, programme).await,
        -((BUDGET_MINUTES + 150) as i64)
    );
    assert_eq!(
        api.balance(&earner.key, earner.budget()).await,
        (BUDGET_MINUTES + 150) as i64
    );

    // Earning, in hours and minutes, with the day the time was given.
    let alice = api.register_member(&earner.key).await;
    let bob = api.register_member(admin).await;
    let yesterday = (Utc::now() - Duration::days(1)).date_naive();
    let body = json!({"member_id": alice.id, "hours": 1, "minutes": 30, "activity": "lunch club",
        "date_given": yesterday, "reference": "R-1042"});
    let reply = api.post("/v1/earn", Some(&earner.key), Some(&body)).await;
    let earn = recorded(reply.expect(201)).clone();
    assert_eq!(earn["kind"], "earn");
    assert_eq!(earn["actor"], json!(earner.id));
    assert_eq!(
        (&earn["debit"], &earn["credit"]),
        (&json!(earner.budget()), &json!(alice.id))
    );
    assert_eq!(earn["minutes"], 90);
    assert_eq!(earn["effective"], json!(yesterday));
    assert_eq!(
        (earn["activity"].as_str(), earn["reference"].as_str()),
        (Some("lunch club"), Some("R-1042"))
    );
    assert_eq!(api.balance(&alice.credential, alice.id).await, 90);

    // A batch: every item committed in one request, in order.
    let body = json!({"items": [
        {"member_id": alice.id, "minutes": 60, "activity": "litter pick"},
        {"member_id": bob.id, "hours": 3, "activity": "litter pick"},
    ]});
    let reply = api
        .post("/v1/earn/batch", Some(&earner.key), Some(&body))
        .await;
    let batch = reply.expect(201);
    let items = batch["entries"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["part"].as_u64(), items[1]["part"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(items[0]["key"], items[1]["key"]);
    assert_eq!(
        items[1]["seq"].as_u64(),
        items[0]["seq"].as_u64().map(|s| s + 1)
    );
    assert!(batch["checkpoint"]["size"].as_u64() > items[1]["seq"].as_u64());
    assert_eq!(api.balance(&alice.credential, alice.id).await, 150);
    assert_eq!(api.balance(&bob.credential, bob.id).await, 180);
    assert_eq!(
        api.balance(&earner.key, earner.budget()).await,
        (BUDGET_MINUTES + 150 - 330) as i64
    );

    // Spending with the member's consent: a code, then the venue's redemption.
    let reply = api
        .post(
            "/v1/spend-codes",
            Some(&alice.credential),
            Some(&json!({"max_minutes": 120})),
        )
        .await;
    let code = reply.expect(201).clone();
    assert_eq!(code["max_minutes"], 120);
    let typed = code["code"].as_str().unwrap().to_lowercase();
    let typed = format!("{}-{}", &typed[..4], &typed[4..]);
    let body = json!({"code": typed, "hours": 2, "activity": "family swim", "adults": 1, "children": 2, "reference": "T-7"});
    let reply = api
        .post("/v1/redemptions", Some(&venue.key), Some(&body))
        .await;
    let spend = recorded(reply.expect(201)).clone();
    assert_eq!(spend["kind"], "spend");
    assert_eq!(
        (&spend["debit"], &spend["credit"]),
        (&json!(alice.id), &json!(venue.venue()))
    );
    assert_eq!(
        (
            spend["minutes"].as_u64(),
            spend["adults"].as_u64(),
            spend["children"].as_u64()
        ),
        (Some(120), Some(1), Some(2))
    );
    assert_eq!(spend["activity"], "family swim");
    assert_eq!(api.balance(&alice.credential, alice.id).await, 30);
    assert_eq!(api.balance(&venue.key, venue.venue()).await, 120);

    // A gift between members.
    let reply = api.gift(&bob, alice.id, 45).await;
    let gift = recorded(reply.expect(201)).clone();
    assert_eq!(gift["kind"], "gift");
    assert_eq!(
        (&gift["debit"], &gift["credit"]),
        (&json!(bob.id), &json!(alice.id))
    );
    assert_eq!(api.balance(&alice.credential, alice.id).await, 75);
    assert_eq!(api.balance(&bob.credential, bob.id).await, 135);

    // Reading entries back, one by one and as a history.
    for entry in [&allocation, &earn, &spend, &gift] {
        let read = api
            .get(
                &format!("/v1/entries/{}", entry["id"].as_str().unwrap()),
                Some(admin),
            )
            .await;
        assert_eq!(read.expect(200), entry);
    }
    let history = api
        .get(
            &format!("/v1/accounts/{}/entries", alice.id),
            Some(&alice.credential),
        )
        .await;
    let kinds: Vec<&str> = history.expect(200)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["gift", "spend", "earn", "earn", "open"]);
    assert_eq!(history.json["has_more"], false);

    // A reversal mirrors the movement and restores both balances.
    let reply = api.reverse(admin, gift["id"].as_str().unwrap()).await;
    let reversal = recorded(reply.expect(201)).clone();
    assert_eq!(reversal["kind"], "reverse");
    assert_eq!(reversal["reference"], "recorded twice");
    assert_eq!(reversal["reverses"], gift["seq"]);
    assert_eq!(
        (&reversal["debit"], &reversal["credit"]),
        (&gift["credit"], &gift["debit"])
    );
    assert_eq!(reversal["minutes"], 45);
    assert_eq!(api.balance(&bob.credential, bob.id).await, 180);

    // Closing an empty account.
    let carol = api.register_member(admin).await;
    let reply = api.close_account(admin, carol.id).await;
    let close = recorded(reply.expect(201));
    assert_eq!(
        (close["kind"].as_str(), close["account"].as_str()),
        (Some("close"), Some(carol.id.to_string().as_str()))
    );
    let account = api
        .get(
            &format!("/v1/accounts/{}", carol.id),
            Some(&carol.credential),
        )
        .await;
    assert_eq!(account.expect(200)["status"], "closed");
    assert_eq!(account.json["kind"], "member");

    // The ledger's own endpoints are public.
    let checkpoint = api.get("/v1/ledger/checkpoint", None).await;
    checkpoint.expect(200);
    assert!(checkpoint
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let key = api.get("/v1/ledger/key", None).await;
    assert_eq!(
        key.expect(200)["origin"],
        checkpoint.text.lines().next().unwrap()
    );
    assert!(key.json["verifier_key"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}+", key.json["origin"].as_str().unwrap())));
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_are_read_with_kind_owner_and_balance() {
    let scheme = Scheme::start().await;
    let api: &Api = &scheme.api;
    let alice = scheme.member(90).await;
    let account = api
        .get(
            &format!("/v1/accounts/{}", alice.id),
            Some(&alice.credential),
        )
        .await;
    let body = account.expect(200);
    assert_eq!(
        (body["kind"].as_str(), body["status"].as_str()),
        (Some("member"), Some("open"))
    );
    assert_eq!(body["balance_minutes"], 90);
    assert!(body.get("owner").is_none());
    let budget = api
        .get(
            &format!("/v1/accounts/{}", scheme.earner.budget()),
            Some(&scheme.earner.key),
        )
        .await;
    assert_eq!(budget.expect(200)["kind"], "budget");
    assert_eq!(budget.json["owner"], json!(scheme.earner.id));
    assert_eq!(budget.json["balance_minutes"], (BUDGET_MINUTES - 90) as i64);
    let venue = api
        .get(
            &format!("/v1/accounts/{}", scheme.venue.venue()),
            Some(&scheme.venue.key),
        )
        .await;
    assert_eq!(venue.expect(200)["kind"], "venue");
    assert_eq!(venue.json["balance_minutes"], 0);
    let me = api.get("/v1/me", Some(&scheme.earner.key)).await;
    assert_eq!(
        me.expect(200)["accounts"][0]["id"],
        json!(scheme.earner.budget())
    );
    assert_eq!(
        me.json["accounts"][0]["balance_minutes"],
        (BUDGET_MINUTES - 90) as i64
    );
}

/// Text from clients: invisible formatting characters are refused with a problem naming the
/// field, nothing is written, and text is stored in NFC (the same words, the same bytes).
#[tokio::test(flavor = "multi_thread")]
async fn text_fields_refuse_invisible_characters_and_are_stored_normalised() {
    let scheme = timecredits_tests::client::Scheme::start().await;
    let api = &scheme.api;
    let size = api.ledger_size().await;
    let trojan = serde_json::json!({"name": "Pool\u{202E}looP", "roles": ["spend"]});
    let reply = api
        .post("/v1/partners", Some(&scheme.admin), Some(&trojan))
        .await;
    reply.assert_problem(400, "invalid_request");
    assert!(
        reply.text.contains("name") && reply.text.contains("U+202E"),
        "{}",
        reply.text
    );
    let member = scheme.member(0).await;
    for hidden in ["\u{200B}", "\u{FEFF}", "\u{2066}"] {
        let body = serde_json::json!({
            "member_id": member.id, "minutes": 5, "activity": format!("garden{hidden}ing")
        });
        let reply = api
            .post("/v1/earn", Some(&scheme.earner.key), Some(&body))
            .await;
        reply.assert_problem(400, "invalid_request");
    }
    assert_eq!(
        api.ledger_size().await,
        size + 1,
        "only the member's wallet was opened"
    );
    let body =
        serde_json::json!({"member_id": member.id, "minutes": 5, "activity": "cafe\u{0301}"});
    let entry = api
        .post("/v1/earn", Some(&scheme.earner.key), Some(&body))
        .await;
    assert_eq!(entry.expect(201)["entry"]["activity"], "caf\u{00E9}");
}

/// A venue settles what it redeemed and an earn partner hands back its unused budget (`retire`
/// entries to the programme); a repeat is answered, not settled twice; then, and only then, the
/// emptied accounts close.
#[tokio::test(flavor = "multi_thread")]
async fn partners_settle_their_accounts_and_then_close_them() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let (earner, venue) = (&scheme.earner, &scheme.venue);
    let alice = scheme.member(180).await;
    api.spend(&alice, &venue.key, 150).await;
    let settle = |token: &str, key: &str, body: Value| {
        let (api, token, key) = (api.clone(), token.to_owned(), key.to_owned());
        async move {
            api.post_keyed("/v1/settlements", Some(&token), &key, Some(&body))
                .await
        }
    };

    // Part of the venue's credits, by the venue itself.
    let body =
        json!({"partner_id": venue.id, "account": "venue", "hours": 1, "reference": "run 1"});
    let part = settle(&venue.key, "settle-1", body).await;
    let entry = recorded(part.expect(201)).clone();
    assert_eq!(entry["kind"], "retire");
    assert_eq!(entry["debit"], json!(venue.venue()));
    assert_eq!(entry["minutes"], 60);
    assert_eq!(entry["reference"], "run 1");
    let programme = uuid(&entry["credit"]);
    assert_eq!(api.balance(admin, venue.venue()).await, 90);

    // The rest, by an administrator, without an amount; its repeat answers the same entry
    // although the account is empty by then.
    let all = json!({"partner_id": venue.id, "account": "venue"});
    let rest = settle(admin, "settle-2", all.clone()).await;
    let rest_entry = recorded(rest.expect(201)).clone();
    assert_eq!(rest_entry["minutes"], 90);
    assert_eq!(api.balance(admin, venue.venue()).await, 0);
    let again = settle(admin, "settle-2", all).await;
    assert!(again.replayed());
    assert_eq!(again.expect(201)["entry"], rest_entry);

    // The earn partner returns its unused budget.
    let budget = api.balance(admin, earner.budget()).await;
    let body = json!({"partner_id": earner.id, "account": "budget"});
    let returned = settle(&earner.key, "return-1", body).await;
    let returned = recorded(returned.expect(201)).clone();
    assert_eq!(returned["debit"], json!(earner.budget()));
    assert_eq!(returned["credit"], json!(programme));
    assert_eq!(returned["minutes"], json!(budget));
    // In circulation now: only what Alice still holds.
    assert_eq!(api.balance(admin, programme).await, -30);

    // Settled, the accounts close.
    api.close_account(admin, venue.venue()).await.expect(201);
    api.close_account(admin, earner.budget()).await.expect(201);
}

/// A member leaves: their credits retired or gifted and their wallet closed in one request, then
/// their credential refused; a repeat answers the same entries.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_leaves_with_their_credits_retired_or_gifted() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let alice = scheme.member(90).await;
    let bob = scheme.member(30).await;

    // Alice gives what she has left to Bob, recorded by the partner that registered her.
    let path = format!("/v1/members/{}/leave", alice.id);
    let body = json!({"remaining": {"gift_to": bob.id}});
    let left = api
        .post_keyed(&path, Some(&scheme.earner.key), "leave-alice", Some(&body))
        .await;
    let left = left.expect(201).clone();
    let entries = left["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["kind"], "gift");
    assert_eq!(entries[0]["minutes"], 90);
    assert_eq!(entries[0]["credit"], json!(bob.id));
    assert_eq!(entries[1]["kind"], "close");
    assert_eq!(entries[1]["account"], json!(alice.id));
    assert_eq!(entries[1]["key"], entries[0]["key"]);
    assert!(left["credential"]["revoked"].is_string());
    assert_eq!(api.balance(admin, bob.id).await, 120);
    api.get("/v1/me", Some(&alice.credential))
        .await
        .assert_problem(401, "unauthorized");
    let again = api
        .post_keyed(&path, Some(&scheme.earner.key), "leave-alice", Some(&body))
        .await;
    assert!(again.replayed());
    assert_eq!(again.expect(201)["entries"], left["entries"]);

    // Bob's credits leave circulation, on an administrator's word.
    let path = format!("/v1/members/{}/leave", bob.id);
    let left = api
        .post(&path, Some(admin), Some(&json!({"remaining": "retire"})))
        .await;
    let entries = left.expect(201)["entries"].as_array().unwrap().clone();
    assert_eq!(entries[0]["kind"], "retire");
    assert_eq!(entries[0]["minutes"], 120);
    assert_eq!(entries[1]["kind"], "close");
    let wallet = api
        .get(&format!("/v1/accounts/{}", bob.id), Some(admin))
        .await;
    assert_eq!(wallet.expect(200)["status"], "closed");

    // An empty wallet just closes.
    let carol = scheme.member(0).await;
    let path = format!("/v1/members/{}/leave", carol.id);
    let left = api
        .post(&path, Some(admin), Some(&json!({"remaining": "retire"})))
        .await;
    let entries = left.expect(201)["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["kind"], "close");
}

/// A suspended partner reads but does not write, across a restart, until it is reinstated; both
/// are answered again for a repeat.
#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_partner_reads_but_does_not_write_until_reinstated() {
    let mut scheme = Scheme::start().await;
    let admin = scheme.admin.clone();
    let earner = scheme.earner.clone();
    let alice = scheme.member(0).await;
    let suspend = format!("/v1/partners/{}/suspend", earner.id);
    let suspended = scheme
        .api
        .post_keyed(&suspend, Some(&admin), "suspend-1", None)
        .await;
    let at = suspended.expect(200)["suspended"].clone();
    assert!(at.is_string(), "{at}");
    let again = scheme
        .api
        .post_keyed(&suspend, Some(&admin), "suspend-1", None)
        .await;
    assert!(again.replayed());
    assert_eq!(again.expect(200)["suspended"], at);

    scheme.restart();
    let api = &scheme.api;
    api.earn_reply(&earner.key, alice.id, 60)
        .await
        .assert_problem(403, "partner_suspended");
    let budget = api
        .get(
            &format!("/v1/accounts/{}", earner.budget()),
            Some(&earner.key),
        )
        .await;
    budget.expect(200);
    let partner = api
        .get(&format!("/v1/partners/{}", earner.id), Some(&earner.key))
        .await;
    assert_eq!(partner.expect(200)["suspended"], at);

    let reinstate = format!("/v1/partners/{}/reinstate", earner.id);
    let reinstated = api.post(&reinstate, Some(&admin), None).await;
    assert!(reinstated.expect(200).get("suspended").is_none());
    api.earn(&earner.key, alice.id, 60).await;
}

/// A partner's year-end statement: for each account its opening balance, every movement of the
/// year with the other side's kind, and its closing balance, as CSV.
#[tokio::test(flavor = "multi_thread")]
async fn a_partner_gets_its_year_end_statement_as_csv() {
    let scheme = Scheme::start().await;
    let (api, admin, venue) = (&scheme.api, scheme.admin.as_str(), &scheme.venue);
    let alice = scheme.member(90).await;
    let spend = api.spend(&alice, &venue.key, 60).await;
    let body = json!({"partner_id": venue.id, "account": "venue", "reference": "run, \"one\""});
    let settled = api
        .post("/v1/settlements", Some(&venue.key), Some(&body))
        .await;
    let retire = recorded(settled.expect(201)).clone();
    let year = Utc::now().format("%Y").to_string();
    let path = format!("/v1/partners/{}/statement?year={year}", venue.id);
    let reply = api.get(&path, Some(&venue.key)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    let today = Utc::now().date_naive();
    let expected = [
        "account_kind,line,date,seq,kind,minutes,counterparty_kind,reference,balance_minutes"
            .to_owned(),
        format!("venue,opening,{year}-01-01,,,,,,0"),
        format!(
            "venue,movement,{today},{},spend,60,member,,60",
            spend["seq"]
        ),
        format!(
            "venue,movement,{today},{},retire,-60,programme,\"run, \"\"one\"\"\",0",
            retire["seq"]
        ),
        format!("venue,closing,{year}-12-31,,,,,,0"),
    ];
    assert_eq!(reply.text, expected.join("\r\n") + "\r\n");
    // An earlier year: nothing moved, nothing held.
    let earlier = api
        .get(
            &format!("/v1/partners/{}/statement?year=2020", venue.id),
            Some(admin),
        )
        .await;
    assert_eq!(
        earlier.text.lines().skip(1).collect::<Vec<_>>(),
        [
            "venue,opening,2020-01-01,,,,,,0",
            "venue,closing,2020-12-31,,,,,,0"
        ]
    );
    for bad in ["year=1969", "year=two", ""] {
        let path = format!("/v1/partners/{}/statement?{bad}", venue.id);
        api.get(&path, Some(admin))
            .await
            .assert_problem(400, "invalid_query");
    }
}
