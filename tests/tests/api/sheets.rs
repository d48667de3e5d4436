//! Coordinators' sheets: a batch of earns uploaded as CSV, all or nothing, with every mistake
//! reported by its line.

use reqwest::Method;
use serde_json::json;
use timecredits_tests::client::{new_key, Api, Reply, Scheme};

/// Uploads `sheet` as a CSV batch earn with credential `token` (if any) and idempotency key
/// `idempotency_key`.
pub async fn upload(api: &Api, token: Option<&str>, idempotency_key: &str, sheet: &str) -> Reply {
    upload_to("/v1/earn/batch", api, token, idempotency_key, sheet).await
}

/// Uploads `sheet` as CSV to `path`, as [`upload`] does.
pub async fn upload_to(
    path: &str,
    api: &Api,
    token: Option<&str>,
    idempotency_key: &str,
    sheet: &str,
) -> Reply {
    let mut request = api
        .request(Method::POST, path)
        .header("Idempotency-Key", idempotency_key)
        .header("Content-Type", "text/csv; charset=utf-8")
        .body(sheet.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    api.send(request).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sheet_of_earns_is_recorded_with_hours_as_written_once() {
    let scheme = Scheme::start().await;
    let (api, club) = (&scheme.api, &scheme.earner);
    let (a, b) = (scheme.member(0).await, scheme.member(0).await);
    let sheet = format!(
        "member_id,hours,activity,reference,date_given\r\n\
         {},1.5,lunch club,R-1,2026-11-22\r\n\
         {},1:30,\"garden, front\",,\r\n\
         {},0.25,lunch club,R-3,\r\n",
        a.id, b.id, a.id
    );
    let key = new_key();
    let reply = upload(api, Some(&club.key), &key, &sheet).await;
    let body = reply.expect(201).clone();
    let entries = body["entries"].as_array().unwrap();
    let minutes: Vec<_> = entries.iter().map(|e| e["minutes"].clone()).collect();
    assert_eq!(minutes, [json!(90), json!(90), json!(15)]);
    assert_eq!(entries[0]["effective"], "2026-11-22");
    assert_eq!(entries[1]["activity"], "garden, front");
    assert!(entries[1].get("reference").is_none());
    assert_eq!(api.balance(&a.credential, a.id).await, 105);
    // A repeat is answered again and records nothing.
    let size = api.ledger_size().await;
    let again = upload(api, Some(&club.key), &key, &sheet).await;
    assert!(again.replayed());
    assert_eq!(again.expect(201)["entries"], body["entries"]);
    assert_eq!(api.ledger_size().await, size);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sheet_with_mistakes_records_nothing_and_lists_each_by_line() {
    let scheme = Scheme::start().await;
    let (api, club) = (&scheme.api, &scheme.earner);
    let member = scheme.member(0).await;
    let size = api.ledger_size().await;
    let sheet = format!(
        "member_id,hours,activity\n\
         {id},2,lunch club\n\
         {id},1.33,lunch club\n\
         someone,2,\n\
         {id},\"1,5\",lunch club\n\
         {id},1h30,lunch club\n",
        id = member.id
    );
    let reply = upload(api, Some(&club.key), &new_key(), &sheet).await;
    reply.assert_problem(400, "invalid_request");
    assert_eq!(
        reply.json["errors"],
        json!([
            {"line": 3, "field": "hours", "detail": "1.33 hours is 79.8 minutes: an amount is a whole number of minutes (write 1:20 or 1.35 hours, not 1.33)"},
            {"line": 4, "field": "member_id", "detail": "not a member id (a UUID)"},
            {"line": 4, "field": "activity", "detail": "activity must be 1 to 200 characters with no control characters"},
            {"line": 5, "field": "hours", "detail": "\"1,5\" is not an amount of hours: write whole hours (2), decimal hours with a point (1.5, 0.25) or hours:minutes (1:30)"},
            {"line": 6, "field": "hours", "detail": "\"1h30\" is not an amount of hours: write whole hours (2), decimal hours with a point (1.5, 0.25) or hours:minutes (1:30)"},
        ]),
        "{}",
        reply.text
    );
    // All or nothing: the good rows were not recorded either.
    assert_eq!(api.ledger_size().await, size);
    assert_eq!(api.balance(&member.credential, member.id).await, 0);

    // A sheet the ledger refuses (a member it does not know) is refused whole too.
    let unknown = format!(
        "member_id,hours,activity\n{},1,lunch club\n{},1,lunch club\n",
        member.id,
        uuid::Uuid::now_v7()
    );
    let reply = upload(api, Some(&club.key), &new_key(), &unknown).await;
    reply.assert_problem(422, "unknown_account");
    assert_eq!(api.ledger_size().await, size);

    // Columns are checked before any row.
    let reply = upload(
        api,
        Some(&club.key),
        &new_key(),
        "member_id,hours,minutes\n",
    )
    .await;
    reply.assert_problem(400, "invalid_request");
    let fields: Vec<_> = reply.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].clone(), e["field"].clone()))
        .collect();
    assert_eq!(
        fields,
        [(json!(1), json!("minutes")), (json!(1), json!("activity"))]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sheet_of_references_registers_members_all_or_nothing() {
    let scheme = Scheme::start().await;
    let (api, club) = (&scheme.api, &scheme.earner);
    let key = new_key();
    let sheet = "reference\r\nM-1\r\n\"M-2, Jo\"\r\n";
    let reply = upload_to("/v1/members/batch", api, Some(&club.key), &key, sheet).await;
    let body = reply.expect(201).clone();
    let members = body["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[1]["reference"], "M-2, Jo");
    let entries = body["entries"].as_array().unwrap();
    for (member, entry) in members.iter().zip(entries) {
        assert_eq!(entry["account"], member["member_id"]);
        let credential = member["credential"].as_str().unwrap();
        let id = timecredits_tests::client::uuid(&member["member_id"]);
        assert_eq!(api.balance(credential, id).await, 0);
    }
    // The club's list has them, with their references.
    let listed = api
        .get(
            &format!("/v1/partners/{}/members", club.id),
            Some(&club.key),
        )
        .await;
    let references: Vec<_> = listed.expect(200)["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reference"].clone())
        .collect();
    assert_eq!(references, [json!("M-1"), json!("M-2, Jo")]);
    // A repeat registers no one more; other references with the same key are refused.
    let again = upload_to("/v1/members/batch", api, Some(&club.key), &key, sheet).await;
    assert!(again.replayed());
    assert_eq!(
        again.expect(201)["members"][0]["member_id"],
        members[0]["member_id"]
    );
    let other = "reference\r\nM-1\r\nM-3\r\n";
    upload_to("/v1/members/batch", api, Some(&club.key), &key, other)
        .await
        .assert_problem(422, "idempotency_key_reused");

    // A sheet with a mistake registers no one.
    let size = api.ledger_size().await;
    let bad = "reference\nM-4\n\"\"\n";
    let reply = upload_to("/v1/members/batch", api, Some(&club.key), &new_key(), bad).await;
    reply.assert_problem(400, "invalid_request");
    assert_eq!(reply.json["errors"][0]["line"], 3);
    assert_eq!(reply.json["errors"][0]["field"], "reference");
    assert_eq!(api.ledger_size().await, size);
    // Only CSV.
    api.post(
        "/v1/members/batch",
        Some(&club.key),
        Some(&json!({"reference": "M-5"})),
    )
    .await
    .assert_problem(415, "unsupported_media_type");
}
