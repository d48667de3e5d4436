//! A partner's own views: the members it registered (JSON and CSV, paginated), their wallets,
//! and what another partner that credits them sees.

use reqwest::Method;
use serde_json::Value;
use timecredits_tests::client::{new_key, uuid, Api, Scheme};
use uuid::Uuid;

/// Registers a member with `key`, giving `reference` (query-encoded by the client); returns the
/// answer.
async fn register(api: &Api, key: &str, idempotency_key: &str, reference: Option<&str>) -> Value {
    let mut request = api
        .request(Method::POST, "/v1/members")
        .bearer_auth(key)
        .header("Idempotency-Key", idempotency_key);
    if let Some(reference) = reference {
        request = request.query(&[("reference", reference)]);
    }
    api.send(request).await.expect(201).clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_lists_its_members_with_references_balances_and_last_activity() {
    let scheme = Scheme::start().await;
    let (api, club) = (&scheme.api, &scheme.earner);
    // Oldest first: a reference a spreadsheet must quote, none, a plain one.
    let references = [Some("M-1, \"Jo\""), None, Some("M-3")];
    let mut ids = Vec::new();
    for (i, reference) in references.iter().enumerate() {
        let body = register(api, &club.key, &format!("m-{i}"), *reference).await;
        ids.push(uuid(&body["member_id"]));
    }
    let earned = api.earn(&club.key, ids[0], 90).await;
    // A member the administrator registered is not the club's.
    api.register_member(&scheme.admin).await;

    let path = format!("/v1/partners/{}/members", club.id);
    let first = api.get(&format!("{path}?limit=2"), Some(&club.key)).await;
    let first = first.expect(200);
    assert_eq!(first["has_more"], true);
    let members = first["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(uuid(&members[0]["member_id"]), ids[0]);
    assert_eq!(members[0]["reference"], "M-1, \"Jo\"");
    assert_eq!(members[0]["balance_minutes"], 90);
    assert_eq!(members[0]["status"], "open");
    assert_eq!(members[0]["last_entry_seq"], earned["seq"]);
    assert_eq!(members[0]["last_entry_recorded"], earned["recorded"]);
    assert_eq!(members[1]["reference"], Value::Null);
    assert_eq!(members[1]["balance_minutes"], 0);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = api
        .get(&format!("{path}?limit=2&cursor={cursor}"), Some(&club.key))
        .await;
    let rest = rest.expect(200);
    assert_eq!(rest["has_more"], false);
    assert!(rest.get("next_cursor").is_none());
    let last = rest["members"].as_array().unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(uuid(&last[0]["member_id"]), ids[2]);

    // The same page as CSV, byte for byte: asked for by Accept or by `format`.
    let row = |m: &Value| {
        let reference = match m["reference"].as_str() {
            Some("M-1, \"Jo\"") => "\"M-1, \"\"Jo\"\"\"".to_owned(),
            Some(r) => r.to_owned(),
            None => String::new(),
        };
        format!(
            "{},{reference},{},{},{},{},{}\r\n",
            m["member_id"].as_str().unwrap(),
            m["registered"].as_str().unwrap(),
            m["status"].as_str().unwrap(),
            m["balance_minutes"],
            m["last_entry_seq"],
            m["last_entry_recorded"].as_str().unwrap(),
        )
    };
    let expected = format!(
        "member_id,reference,registered,status,balance_minutes,last_entry_seq,last_entry_recorded\r\n{}{}",
        row(&members[0]),
        row(&members[1]),
    );
    let by_accept = api
        .send(
            api.request(Method::GET, &format!("{path}?limit=2"))
                .bearer_auth(&club.key)
                .header("Accept", "application/json;q=0.5, text/csv"),
        )
        .await;
    let by_format = api
        .get(&format!("{path}?limit=2&format=csv"), Some(&club.key))
        .await;
    for csv in [&by_accept, &by_format] {
        assert_eq!(csv.status, 200, "{}", csv.text);
        assert_eq!(
            csv.header("content-type"),
            Some("text/csv; charset=utf-8; header=present")
        );
        assert_eq!(csv.text, expected);
        assert_eq!(
            csv.header("link"),
            Some(format!("<{path}?format=csv&limit=2&cursor={cursor}>; rel=\"next\"").as_str())
        );
    }
    // An empty page is its header row.
    let other = api
        .create_partner(&scheme.admin, "Allotment", &["earn"])
        .await;
    let empty = api
        .get(
            &format!("/v1/partners/{}/members?format=csv", other.id),
            Some(&other.key),
        )
        .await;
    assert_eq!(
        empty.text,
        "member_id,reference,registered,status,balance_minutes,last_entry_seq,last_entry_recorded\r\n"
    );
    assert!(empty.header("link").is_none());

    // The administrator reads it too; bad pages are refused.
    let admin = api.get(&path, Some(&scheme.admin)).await;
    assert_eq!(admin.expect(200)["members"].as_array().unwrap().len(), 3);
    for query in ["limit=0", "limit=501", "cursor=AAAAAAAAAAY", "format=xml"] {
        let reply = api.get(&format!("{path}?{query}"), Some(&club.key)).await;
        reply.assert_problem_for(query, 400, "invalid_query");
    }
    let nobody = api
        .get(
            &format!("/v1/partners/{}/members", Uuid::now_v7()),
            Some(&scheme.admin),
        )
        .await;
    nobody.assert_problem(404, "partner_not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_registered_by_one_partner_may_earn_at_another_which_sees_only_its_entries() {
    let scheme = Scheme::start().await;
    let (api, admin, club) = (&scheme.api, scheme.admin.as_str(), &scheme.earner);
    let member = scheme.member(60).await;
    let bank = api.create_partner(admin, "Food Bank", &["earn"]).await;
    api.allocate(admin, bank.id, 600).await;

    // The food bank credits the club's member, given the id.
    let entry = api.earn(&bank.key, member.id, 30).await;
    let entry_id = entry["id"].as_str().unwrap();
    api.get(&format!("/v1/entries/{entry_id}"), Some(&bank.key))
        .await
        .expect(200);
    // It does not see the member's wallet, nor list them.
    for path in [
        format!("/v1/accounts/{}", member.id),
        format!("/v1/accounts/{}/entries", member.id),
    ] {
        let refused = api.get(&path, Some(&bank.key)).await;
        refused.assert_problem(404, "account_not_found");
        let detail = refused.json["detail"].as_str().unwrap();
        assert_eq!(
            detail,
            format!("no account {} that this credential may read", member.id)
        );
    }
    let listed = api
        .get(
            &format!("/v1/partners/{}/members", bank.id),
            Some(&bank.key),
        )
        .await;
    assert_eq!(listed.expect(200)["members"], serde_json::json!([]));
    let others = api
        .get(
            &format!("/v1/partners/{}/members", club.id),
            Some(&bank.key),
        )
        .await;
    others.assert_problem(404, "partner_not_found");

    // The club, which registered the member, sees the balance with both earns.
    let wallet = api
        .get(&format!("/v1/accounts/{}", member.id), Some(&club.key))
        .await;
    assert_eq!(wallet.expect(200)["balance_minutes"], 90);
    let history = api
        .get(
            &format!("/v1/accounts/{}/entries", member.id),
            Some(&club.key),
        )
        .await;
    assert_eq!(history.expect(200)["entries"][0]["id"], entry["id"]);
    api.get(&format!("/v1/entries/{entry_id}"), Some(&club.key))
        .await
        .expect(200);

    // The member's history names the partners beside the entries, and the member reads them.
    let history = api
        .get(
            &format!("/v1/accounts/{}/entries", member.id),
            Some(&member.credential),
        )
        .await;
    let history = history.expect(200);
    let payer = |i: usize| &history["partners"][history["entries"][i]["debit"].as_str().unwrap()];
    assert_eq!(payer(0)["name"], "Food Bank");
    assert_eq!(payer(0)["partner_id"], serde_json::json!(bank.id));
    assert_eq!(payer(1)["partner_id"], serde_json::json!(club.id));
    // The member's own wallet is not a partner's.
    assert!(history["partners"].get(member.id.to_string()).is_none());
    let partner = api
        .get(
            &format!("/v1/partners/{}", bank.id),
            Some(&member.credential),
        )
        .await;
    assert_eq!(partner.expect(200)["name"], "Food Bank");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_s_reference_is_checked_and_part_of_its_repeat() {
    let scheme = Scheme::start().await;
    let (api, club) = (&scheme.api, &scheme.earner);
    let key = new_key();
    let first = register(api, &club.key, &key, Some("M-7")).await;
    let send = |reference: &'static str| {
        let key = key.clone();
        async move {
            let request = api
                .request(Method::POST, "/v1/members")
                .bearer_auth(&club.key)
                .header("Idempotency-Key", key)
                .query(&[("reference", reference)]);
            api.send(request).await
        }
    };
    let again = send("M-7").await;
    assert_eq!(again.expect(201)["member_id"], first["member_id"]);
    assert!(again.replayed());
    send("M-8")
        .await
        .assert_problem(422, "idempotency_key_reused");
    let bad = api
        .send(
            api.request(Method::POST, "/v1/members")
                .bearer_auth(&club.key)
                .header("Idempotency-Key", new_key())
                .query(&[("reference", "")]),
        )
        .await;
    bad.assert_problem(400, "invalid_request");
}
