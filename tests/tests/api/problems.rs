//! Every problem code a client can provoke, each with its status, `application/problem+json` and
//! its `code`, by family (one test each, table-driven); and no input at all that makes the
//! server fail. Which family provokes which code is the table [`FAMILIES`]: with
//! [`NOT_PROVOCABLE`], it covers the server's code table exactly.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};
use timecredits_server::problem::Code;
use timecredits_tests::client::{new_key, uuid, Api, Reply, Scheme};
use uuid::Uuid;

/// Codes no client request can produce, and why.
const NOT_PROVOCABLE: &[(&str, &str)] = &[
    (
        "internal_error",
        "a fault of the server, never caused by what a client sends",
    ),
    (
        "unavailable",
        "the ledger's storage failing or the service shutting down",
    ),
    ("account_exists", "the server chooses every account id"),
    (
        "storage_full",
        "a full disk (the `disk_full` and `readiness` tests provoke it on their own servers)",
    ),
    (
        "shutting_down",
        "a request during the drain after SIGTERM (the `sigterm` test provokes it)",
    ),
    (
        "ledger_busy",
        "more requests waiting at once than the ledger's queue holds (16,384; the ledger's tests fill a queue of one)",
    ),
    (
        "rate_limited",
        "needs a server with rate limits, which the test servers turn off (tested in limits.rs)",
    ),
    (
        "request_timeout",
        "a body trickled for longer than the body timeout (tested in limits.rs)",
    ),
    (
        "key_rotation_in_progress",
        "two rotations at the same moment, which only a race provokes (the ledger's keyring tests it)",
    ),
    (
        "unknown_entry",
        "a reversal names its entry by id, looked up first (`entry_not_found`)",
    ),
    (
        "amount_overflow",
        "a balance of ±9.2e18 minutes takes 1.5e11 maximal movements",
    ),
    (
        "spend_code_expired",
        "takes 15 minutes; see `spend_codes::tests::codes_expire` in the server crate",
    ),
    (
        "expiry_not_due",
        "only a wallet used while the expiry sweep writes, which the sweep skips (no client \
         sees it); see `expiries::tests::a_wallet_used_after_the_sweep_read_it_is_skipped` in \
         the server crate",
    ),
];

/// The codes each family's test provokes, all of them and no other.
const FAMILIES: &[(&str, &[&str])] = &[
    (
        "malformed input",
        &[
            "malformed_json",
            "unsupported_media_type",
            "payload_too_large",
            "invalid_path",
            "invalid_query",
            "invalid_size",
            "body_not_allowed",
        ],
    ),
    ("invalid values", &["invalid_request"]),
    (
        "credentials",
        &["unauthorized", "forbidden", "partner_suspended"],
    ),
    ("routes", &["not_found", "method_not_allowed"]),
    (
        "missing things",
        &[
            "account_not_found",
            "entry_not_found",
            "partner_not_found",
            "api_key_not_found",
            "member_not_found",
            "card_not_found",
        ],
    ),
    (
        "idempotency",
        &[
            "idempotency_key_missing",
            "idempotency_key_invalid",
            "idempotency_key_reused",
            "idempotency_key_in_flight",
        ],
    ),
    (
        "rules",
        &[
            "api_key_in_use",
            "username_taken",
            "wrong_partner_role",
            "insufficient_credits",
            "unknown_account",
            "wrong_account_kind",
            "account_not_empty",
            "account_closed",
            "programme_account",
            "effective_date_in_future",
        ],
    ),
    ("privacy", &["member_erased", "member_not_left"]),
    (
        "reversals",
        &[
            "not_reversible",
            "already_reversed",
            "reversal_window_passed",
        ],
    ),
    (
        "spend codes",
        &[
            "spend_code_amount_exceeded",
            "spend_code_used",
            "spend_code_revoked",
            "spend_code_invalid",
            "too_many_attempts",
            "too_many_spend_codes",
        ],
    ),
    (
        "member cards",
        &["card_invalid", "card_locked", "card_blocked"],
    ),
    ("key rotations", &["key_overlap_running"]),
    ("expiry", &["expiry_policy_off"]),
];

#[test]
fn every_code_is_provoked_by_one_family_or_said_to_be_unprovocable() {
    let listed: Vec<&str> = FAMILIES
        .iter()
        .flat_map(|(_, codes)| codes.iter().copied())
        .chain(NOT_PROVOCABLE.iter().map(|(code, _)| *code))
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a code listed twice");
    let table: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        unique, table,
        "the families and NOT_PROVOCABLE against the table"
    );
}

#[test]
fn the_api_description_lists_exactly_the_code_table() {
    let doc: Value = serde_json::from_str(&timecredits_server::openapi::document()).unwrap();
    let description = doc["info"]["description"].as_str().unwrap();
    let (_, list) = description.split_once("## Problem codes").unwrap();
    let rows: Vec<&str> = list.lines().filter(|l| l.starts_with("| `")).collect();
    let expected: Vec<String> = Code::ALL
        .iter()
        .map(|c| {
            let (code, status) = (c.as_str(), c.status().as_u16());
            format!("| `{code}` | {status} | {} |", c.meaning())
        })
        .collect();
    assert_eq!(rows, expected);
}

/// The codes one family's test has seen so far, each checked against its expected status.
struct Seen {
    family: &'static str,
    codes: BTreeSet<String>,
}

impl Seen {
    fn new(family: &'static str) -> Seen {
        Seen {
            family,
            codes: BTreeSet::new(),
        }
    }

    #[track_caller]
    fn check(&mut self, what: &str, reply: &Reply, status: u16, code: &str) {
        reply.assert_problem_for(what, status, code);
        let listed = Code::ALL.iter().find(|c| c.as_str() == code);
        assert_eq!(
            listed.map(|c| c.status().as_u16()),
            Some(status),
            "{code} is listed in the code table with status {status}"
        );
        self.codes.insert(code.to_owned());
    }

    /// Checks that the family provoked exactly the codes [`FAMILIES`] gives it.
    #[track_caller]
    fn done(self) {
        let (_, codes) = FAMILIES
            .iter()
            .find(|(family, _)| *family == self.family)
            .unwrap();
        let listed: BTreeSet<String> = codes.iter().map(|c| c.to_string()).collect();
        assert_eq!(self.codes, listed, "the codes of {}", self.family);
    }
}

/// An earn's body.
fn earn_body(member: Uuid, minutes: u64) -> Value {
    json!({"member_id": member, "minutes": minutes, "activity": "a"})
}

/// A POST of `body` with a fresh idempotency key.
async fn post(api: &Api, path: &str, token: &str, body: Value) -> Reply {
    api.post(path, Some(token), Some(&body)).await
}

/// A POST with a raw body and content type.
async fn raw(
    api: &Api,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut request = api
        .request(Method::POST, path)
        .bearer_auth(token)
        .header("Idempotency-Key", new_key())
        .body(body);
    if let Some(ct) = content_type {
        request = request.header(CONTENT_TYPE, ct);
    }
    api.send(request).await
}

/// Bodies, paths and queries the server cannot take as they are.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_refused_before_a_handler_runs() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let earner = &scheme.earner;
    let alice = scheme.member(120).await;
    let mut seen = Seen::new("malformed input");

    // Bodies actix refuses before a handler runs.
    let json_ct = Some("application/json");
    let bodies: [(&str, &[u8]); 6] = [
        ("truncated JSON", b"{\"member_id\":"),
        ("empty body", b""),
        ("a string for a UUID", b"{\"member_id\": 5, \"minutes\": 1, \"activity\": \"a\"}"),
        ("a negative amount", b"{\"member_id\": \"0192f0c1-7d3e-7c4a-9a51-3f0b5c9d2e12\", \"minutes\": -1, \"activity\": \"a\"}"),
        ("a missing field", b"{\"minutes\": 1}"),
        ("an array", b"[]"),
    ];
    for (what, body) in bodies {
        let reply = raw(api, "/v1/earn", earner.key.as_str(), json_ct, body.to_vec()).await;
        seen.check(what, &reply, 400, "malformed_json");
    }
    let mut unknown = earn_body(alice.id, 1);
    unknown["bonus"] = json!(true);
    seen.check(
        "an unknown field",
        &post(api, "/v1/earn", earner.key.as_str(), unknown).await,
        400,
        "malformed_json",
    );
    let body = serde_json::to_vec(&earn_body(alice.id, 1)).unwrap();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let reply = raw(api, "/v1/earn", earner.key.as_str(), ct, body.clone()).await;
        seen.check(
            &format!("content type {ct:?}"),
            &reply,
            415,
            "unsupported_media_type",
        );
    }
    let charset = raw(
        api,
        "/v1/earn",
        &earner.key,
        Some("application/json; charset=utf-8"),
        body.clone(),
    )
    .await;
    assert_eq!(
        charset.status, 201,
        "JSON with a charset parameter: {}",
        charset.text
    );
    let chunked = chunked_post(api.base(), "/v1/earn", &earner.key, 70 * 1024);
    assert!(
        chunked.starts_with("HTTP/1.1 413"),
        "a chunked 70 KiB body: {chunked}"
    );
    assert!(
        chunked.contains("application/problem+json") && chunked.contains("\"payload_too_large\""),
        "{chunked}"
    );
    let mut big = earn_body(alice.id, 1);
    big["activity"] = json!("x".repeat(70 * 1024));
    seen.check(
        "a 70 KiB body",
        &post(api, "/v1/earn", earner.key.as_str(), big).await,
        413,
        "payload_too_large",
    );

    // Paths and queries.
    for path in [
        "/v1/accounts/nope",
        "/v1/accounts/12345/entries",
        "/v1/entries/0192f0c1",
        "/v1/partners/%20",
    ] {
        seen.check(path, &api.get(path, Some(admin)).await, 400, "invalid_path");
    }
    for path in [
        "/v1/entries/x/reversal",
        "/v1/api-keys/x/revoke",
        "/v1/accounts/x/close",
    ] {
        // Revoking and closing take no body (a reversal does).
        let body = path.ends_with("/reversal").then(|| json!({}));
        let reply = api.post(path, Some(admin), body.as_ref()).await;
        seen.check(path, &reply, 400, "invalid_path");
    }
    let history = format!("/v1/accounts/{}/entries", alice.id);
    for query in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "limit=-1",
        "kind=bogus",
        "kind=earn,,spend",
        "cursor=@@@",
        "cursor=AAAA",
        "from=2026-13-01",
        "from=2026-02-01&to=2026-01-01",
        "colour=blue",
        "limit=1&limit=2",
    ] {
        let reply = api.get(&format!("{history}?{query}"), Some(admin)).await;
        seen.check(query, &reply, 400, "invalid_query");
    }
    for query in ["", "from=1", "from=x&to=2", "from=1&to=2&at=3"] {
        let reply = api
            .get(&format!("/v1/ledger/consistency?{query}"), None)
            .await;
        seen.check(query, &reply, 400, "invalid_query");
    }
    let size = api.ledger_size().await;
    for query in [
        "from=0&to=1",
        "from=3&to=2",
        &format!("from=1&to={}", size + 1),
    ] {
        let reply = api
            .get(&format!("/v1/ledger/consistency?{query}"), None)
            .await;
        seen.check(query, &reply, 400, "invalid_size");
    }
    let reply = api
        .get(
            &format!("/v1/ledger/export?size={}", size + 10),
            Some(admin),
        )
        .await;
    seen.check("an export beyond the ledger", &reply, 400, "invalid_size");
    let reply = api.get("/v1/api-keys?partner_id=x", Some(admin)).await;
    seen.check("a partner id that is no UUID", &reply, 400, "invalid_query");

    seen.check(
        "a body on a POST that takes none",
        &post(api, "/v1/key-rotations", admin, json!({})).await,
        413,
        "body_not_allowed",
    );
    seen.done();
}

/// Well-formed requests whose values the ledger refuses.
#[tokio::test(flavor = "multi_thread")]
async fn values_the_ledger_refuses_are_invalid_requests() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let (earner, venue) = (&scheme.earner, &scheme.venue);
    let alice = scheme.member(120).await;
    let mut seen = Seen::new("invalid values");

    // Values the ledger refuses.
    let party = api.spend_code(&alice.credential, None).await;
    let invalid: Vec<(&str, &'static str, &str, Value)> = vec![
        (
            "zero minutes",
            "/v1/earn",
            earner.key.as_str(),
            earn_body(alice.id, 0),
        ),
        (
            "no amount",
            "/v1/earn",
            earner.key.as_str(),
            json!({"member_id": alice.id, "activity": "a"}),
        ),
        (
            "60 minutes with hours",
            "/v1/earn",
            earner.key.as_str(),
            json!({"member_id": alice.id, "hours": 1, "minutes": 60, "activity": "a"}),
        ),
        (
            "too large an amount",
            "/v1/earn",
            earner.key.as_str(),
            earn_body(alice.id, 60_000_001),
        ),
        (
            "hours overflowing",
            "/v1/earn",
            earner.key.as_str(),
            json!({"member_id": alice.id, "hours": u64::MAX, "activity": "a"}),
        ),
        (
            "an empty activity",
            "/v1/earn",
            earner.key.as_str(),
            json!({"member_id": alice.id, "minutes": 1, "activity": ""}),
        ),
        (
            "a long activity",
            "/v1/earn",
            earner.key.as_str(),
            json!({"member_id": alice.id, "minutes": 1, "activity": "a".repeat(201)}),
        ),
        (
            "a control character",
            "/v1/earn",
            earner.key.as_str(),
            json!({"member_id": alice.id, "minutes": 1, "activity": "a", "reference": "a\nb"}),
        ),
        (
            "an empty batch",
            "/v1/earn/batch",
            earner.key.as_str(),
            json!({"items": []}),
        ),
        (
            "an empty party",
            "/v1/redemptions",
            venue.key.as_str(),
            json!({"code": party, "minutes": 1, "activity": "swim", "adults": 0, "children": 0}),
        ),
        (
            "a gift to oneself",
            "/v1/gifts",
            alice.credential.as_str(),
            json!({"to_member_id": alice.id, "minutes": 1}),
        ),
        (
            "a partner without roles",
            "/v1/partners",
            admin,
            json!({"name": "x", "roles": []}),
        ),
        (
            "a partner without a name",
            "/v1/partners",
            admin,
            json!({"name": "", "roles": ["earn"]}),
        ),
        (
            "no scope at all",
            "/v1/api-keys",
            admin,
            json!({"label": "k", "holder": {"kind": "partner", "id": venue.id, "scopes": []}}),
        ),
        (
            "an empty label",
            "/v1/api-keys",
            admin,
            json!({"label": "", "holder": {"kind": "auditor"}}),
        ),
        (
            "a zero cap",
            "/v1/spend-codes",
            alice.credential.as_str(),
            json!({"max_minutes": 0}),
        ),
    ];
    for (what, path, token, body) in invalid {
        seen.check(
            what,
            &post(api, path, token, body).await,
            400,
            "invalid_request",
        );
    }
    seen.done();
}

/// Who calls: no credential, a bad one, or one that may not do this.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_insufficient_credential_is_refused() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let alice = scheme.member(120).await;
    let mut seen = Seen::new("credentials");

    // Credentials.
    let (revoked_id, revoked) = api.create_key(admin, json!({"kind": "auditor"})).await;
    api.revoke_key(admin, revoked_id).await;
    let bad_auth: [(&str, HeaderValue); 6] = [
        (
            "a Basic credential",
            HeaderValue::from_static("Basic YWRtaW46YWRtaW4="),
        ),
        ("an empty Bearer", HeaderValue::from_static("Bearer ")),
        (
            "an unknown key",
            HeaderValue::from_static("Bearer tck_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
        (
            "an unknown member credential",
            HeaderValue::from_static("Bearer tcm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
        (
            "a revoked key",
            HeaderValue::from_str(&format!("Bearer {revoked}")).unwrap(),
        ),
        (
            "bytes that are not text",
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        ),
    ];
    for (what, value) in bad_auth {
        let reply = api
            .send(
                api.request(Method::GET, "/v1/me")
                    .header(AUTHORIZATION, value),
            )
            .await;
        seen.check(what, &reply, 401, "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{what}");
    }
    seen.check(
        "no credential",
        &api.get("/v1/me", None).await,
        401,
        "unauthorized",
    );
    let reply = api.earn_reply(&alice.credential, alice.id, 1).await;
    seen.check("a member issuing credits", &reply, 403, "forbidden");
    let earner = &scheme.earner;
    let suspend = format!("/v1/partners/{}/suspend", earner.id);
    api.post(&suspend, Some(admin), None).await.expect(200);
    let reply = api.earn_reply(&earner.key, alice.id, 1).await;
    seen.check(
        "a suspended partner issuing credits",
        &reply,
        403,
        "partner_suspended",
    );
    let body = json!({"partner_id": earner.id, "account": "budget", "minutes": 1});
    let reply = post(api, "/v1/settlements", &earner.key, body).await;
    seen.check(
        "a suspended partner settling",
        &reply,
        403,
        "partner_suspended",
    );
    let reply = api.post("/v1/members", Some(&earner.key), None).await;
    seen.check(
        "a suspended partner registering a member",
        &reply,
        403,
        "partner_suspended",
    );
    // What the partner could never do is still only forbidden.
    let reply = api.get("/v1/partners", Some(&earner.key)).await;
    seen.check(
        "a suspended partner listing partners",
        &reply,
        403,
        "forbidden",
    );

    seen.done();
}

/// Paths that are no route, and methods a resource does not answer.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_methods_are_problems() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let alice = scheme.member(0).await;
    let mut seen = Seen::new("routes");

    // Routes and methods.
    for path in [
        "/",
        "/v1",
        "/v1/nothing",
        "/v1/accounts",
        "/docs/missing.js.map.none",
    ] {
        let reply = api.get(path, Some(admin)).await;
        if path.starts_with("/docs") && reply.status != 404 {
            continue; // Swagger UI serves its own files; it only has to not fail
        }
        seen.check(path, &reply, 404, "not_found");
    }
    seen.check(
        "POST to nowhere",
        &api.post("/v1/earnings", Some(admin), Some(&json!({})))
            .await,
        404,
        "not_found",
    );
    // RFC 9110: a 405 says which methods the resource has.
    let wrong_methods = [
        (Method::GET, "/v1/earn".to_owned(), "POST"),
        (Method::DELETE, "/v1/partners".to_owned(), "GET, POST"),
        (Method::PUT, format!("/v1/accounts/{}", alice.id), "GET"),
        (Method::PATCH, "/healthz".to_owned(), "GET"),
        (Method::POST, "/v1/ledger/checkpoint".to_owned(), "GET"),
        (Method::GET, "/v1/redemptions".to_owned(), "POST"),
    ];
    for (method, path, allow) in wrong_methods {
        let reply = api
            .call(method.clone(), &path, Some(admin), Some(&new_key()), None)
            .await;
        seen.check(
            &format!("{method} {path}"),
            &reply,
            405,
            "method_not_allowed",
        );
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
    }

    seen.done();
}

/// Accounts, entries, partners, keys and members that do not exist.
#[tokio::test(flavor = "multi_thread")]
async fn things_that_do_not_exist_are_not_found() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let mut seen = Seen::new("missing things");

    // Things that do not exist.
    let nobody = Uuid::now_v7();
    seen.check(
        "an account",
        &api.get(&format!("/v1/accounts/{nobody}"), Some(admin))
            .await,
        404,
        "account_not_found",
    );
    seen.check(
        "a history",
        &api.get(&format!("/v1/accounts/{nobody}/entries"), Some(admin))
            .await,
        404,
        "account_not_found",
    );
    seen.check(
        "an entry",
        &api.get(&format!("/v1/entries/{nobody}"), Some(admin)).await,
        404,
        "entry_not_found",
    );
    let reply = api.reverse(admin, nobody).await;
    seen.check("reversing nothing", &reply, 404, "entry_not_found");
    seen.check(
        "a partner",
        &api.get(&format!("/v1/partners/{nobody}"), Some(admin))
            .await,
        404,
        "partner_not_found",
    );
    let reply = post(
        api,
        "/v1/allocations",
        admin,
        json!({"partner_id": nobody, "minutes": 60}),
    )
    .await;
    seen.check("allocating to nobody", &reply, 404, "partner_not_found");
    let reply = post(
        api,
        "/v1/settlements",
        admin,
        json!({"partner_id": nobody, "account": "venue"}),
    )
    .await;
    seen.check(
        "settling nobody's account",
        &reply,
        404,
        "partner_not_found",
    );
    let reply = post(
        api,
        "/v1/api-keys",
        admin,
        json!({"label": "k", "holder": {"kind": "partner", "id": nobody}}),
    )
    .await;
    seen.check("a key for nobody", &reply, 404, "partner_not_found");
    let reply = api
        .post(&format!("/v1/api-keys/{nobody}/revoke"), Some(admin), None)
        .await;
    seen.check("revoking no key", &reply, 404, "api_key_not_found");
    let reply = api
        .post(
            &format!("/v1/members/{nobody}/credential"),
            Some(admin),
            None,
        )
        .await;
    seen.check("a credential for nobody", &reply, 404, "member_not_found");
    let reply = post(
        api,
        &format!("/v1/members/{nobody}/leave"),
        admin,
        json!({"remaining": "retire"}),
    )
    .await;
    seen.check("nobody leaves", &reply, 404, "member_not_found");
    let reply = api
        .get(&format!("/v1/members/{nobody}/card"), Some(admin))
        .await;
    seen.check("nobody's card", &reply, 404, "card_not_found");

    seen.done();
}

/// A member's erasure before they left, and their data after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_s_data_is_erased_only_after_leaving_and_is_gone_after() {
    let scheme = Scheme::start().await;
    let (api, club) = (&scheme.api, &scheme.earner);
    let member = scheme.member(0).await;
    let mut seen = Seen::new("privacy");
    let erasure = format!("/v1/members/{}/erasure", member.id);
    let reply = api.post(&erasure, Some(&club.key), None).await;
    seen.check(
        "erasing a member who did not leave",
        &reply,
        409,
        "member_not_left",
    );
    let leave = format!("/v1/members/{}/leave", member.id);
    api.post(
        &leave,
        Some(&club.key),
        Some(&json!({"remaining": "retire"})),
    )
    .await
    .expect(201);
    api.post(&erasure, Some(&club.key), None).await.expect(200);
    let reply = api
        .get(
            &format!("/v1/members/{}/profile", member.id),
            Some(&club.key),
        )
        .await;
    seen.check("an erased member's profile", &reply, 410, "member_erased");
    seen.done();
}

/// Missing, invalid, reused and concurrent idempotency keys.
#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_are_checked() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let earner = &scheme.earner;
    let alice = scheme.member(0).await;
    let mut seen = Seen::new("idempotency");

    // Idempotency keys.
    let reply = api
        .call(
            Method::POST,
            "/v1/earn",
            Some(&earner.key),
            None,
            Some(&earn_body(alice.id, 1)),
        )
        .await;
    seen.check("no Idempotency-Key", &reply, 400, "idempotency_key_missing");
    let reply = api
        .call(
            Method::POST,
            "/v1/earn",
            Some(&earner.key),
            Some("two words"),
            Some(&earn_body(alice.id, 1)),
        )
        .await;
    seen.check("a key with a space", &reply, 400, "idempotency_key_invalid");
    let key = new_key();
    api.post_keyed(
        "/v1/earn",
        Some(&earner.key),
        &key,
        Some(&earn_body(alice.id, 1)),
    )
    .await
    .expect(201);
    let reply = api
        .post_keyed(
            "/v1/earn",
            Some(&earner.key),
            &key,
            Some(&earn_body(alice.id, 2)),
        )
        .await;
    seen.check("a reused key", &reply, 422, "idempotency_key_reused");
    seen_in_flight(api, &earner.key, alice.id, &mut seen).await;

    seen.done();
}

/// The rules of the ledger and the registry a request can break.
#[tokio::test(flavor = "multi_thread")]
async fn the_ledgers_and_the_registrys_rules_are_kept() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let (earner, venue) = (&scheme.earner, &scheme.venue);
    let alice = scheme.member(120).await;
    let bob = scheme.member(0).await;
    let mut seen = Seen::new("rules");

    let admin_key_id = {
        let keys = api.get("/v1/api-keys", Some(admin)).await;
        uuid(&keys.expect(200)["keys"][0]["id"])
    };
    let own = api
        .post(
            &format!("/v1/api-keys/{admin_key_id}/revoke"),
            Some(admin),
            None,
        )
        .await;
    seen.check(
        "revoking the key one calls with",
        &own,
        422,
        "api_key_in_use",
    );
    let login = json!({"username": "ana", "label": "Ana", "holder": {"kind": "administrator"}});
    api.post("/v1/staff-logins", Some(admin), Some(&login))
        .await
        .expect(201);
    let taken = api
        .post("/v1/staff-logins", Some(admin), Some(&login))
        .await;
    seen.check(
        "a staff login's username twice",
        &taken,
        409,
        "username_taken",
    );
    let refused_roles = [
        (
            "an allocation to a venue",
            "/v1/allocations",
            json!({"partner_id": venue.id, "minutes": 60}),
        ),
        (
            "a scope the partner lacks",
            "/v1/api-keys",
            json!({"label": "k", "holder": {"kind": "partner", "id": venue.id, "scopes": ["earn"]}}),
        ),
    ];
    for (what, path, body) in refused_roles {
        seen.check(
            what,
            &post(api, path, admin, body).await,
            422,
            "wrong_partner_role",
        );
    }

    // The ledger's rules.
    let nobody = Uuid::now_v7();
    let small = api.create_partner(admin, "Small", &["earn"]).await;
    api.allocate(admin, small.id, 60).await;
    seen.check(
        "earning beyond the budget",
        &api.earn_reply(&small.key, alice.id, 61).await,
        422,
        "insufficient_credits",
    );
    seen.check(
        "giving more than one has",
        &api.gift(&bob, alice.id, 1).await,
        422,
        "insufficient_credits",
    );
    let code = api.spend_code(&alice.credential, None).await;
    let balance = api.balance(admin, alice.id).await as u64;
    let reply = api.redeem(&venue.key, &code, balance + 1).await;
    seen.check(
        "spending more than one has",
        &reply,
        422,
        "insufficient_credits",
    );
    seen.check(
        "earning for nobody",
        &api.earn_reply(&earner.key, nobody, 1).await,
        422,
        "unknown_account",
    );
    seen.check(
        "giving to nobody",
        &api.gift(&alice, nobody, 1).await,
        422,
        "unknown_account",
    );
    let reply = api.close_account(admin, nobody).await;
    seen.check("closing nothing", &reply, 422, "unknown_account");
    let reply = api.earn_reply(&earner.key, venue.venue(), 1).await;
    seen.check("earning into a venue", &reply, 422, "wrong_account_kind");
    seen.check(
        "giving to a budget",
        &api.gift(&alice, earner.budget(), 1).await,
        422,
        "wrong_account_kind",
    );
    let reply = api.close_account(admin, alice.id).await;
    seen.check(
        "closing a wallet with credits",
        &reply,
        422,
        "account_not_empty",
    );
    // Settlements: no more than the account holds, nothing from an empty one, only from an
    // account the partner has; a venue with credits closes only once settled.
    let settle = |partner: Uuid, account: &str, minutes: Option<u64>| {
        let mut body = json!({"partner_id": partner, "account": account});
        if let Some(m) = minutes {
            body["minutes"] = json!(m);
        }
        post(api, "/v1/settlements", admin, body)
    };
    api.spend(&alice, &venue.key, 30).await;
    seen.check(
        "settling more than the venue holds",
        &settle(venue.id, "venue", Some(31)).await,
        422,
        "insufficient_credits",
    );
    let unfunded = api.create_partner(admin, "Unfunded", &["earn"]).await;
    seen.check(
        "settling an empty budget",
        &settle(unfunded.id, "budget", None).await,
        422,
        "insufficient_credits",
    );
    seen.check(
        "settling the venue account of an earn partner",
        &settle(earner.id, "venue", None).await,
        422,
        "wrong_partner_role",
    );
    seen.check(
        "closing a venue account that holds credits",
        &api.close_account(admin, venue.venue()).await,
        422,
        "account_not_empty",
    );
    let former = api.create_partner(admin, "Former", &["spend"]).await;
    api.close_account(admin, former.venue()).await.expect(201);
    seen.check(
        "settling a closed venue account",
        &settle(former.id, "venue", Some(1)).await,
        422,
        "account_closed",
    );
    let leave = |member: Uuid, remaining: Value| {
        let path = format!("/v1/members/{member}/leave");
        async move { post(api, &path, admin, json!({ "remaining": remaining })).await }
    };
    let dave = scheme.member(10).await;
    seen.check(
        "a leaving member's credits given to a budget",
        &leave(dave.id, json!({"gift_to": earner.budget()})).await,
        422,
        "wrong_account_kind",
    );
    leave(dave.id, json!("retire")).await.expect(201);
    seen.check(
        "a member who left leaves again",
        &leave(dave.id, json!("retire")).await,
        422,
        "account_closed",
    );
    let carol = scheme.member(0).await;
    api.close_account(admin, carol.id).await.expect(201);
    seen.check(
        "earning into a closed wallet",
        &api.earn_reply(&earner.key, carol.id, 1).await,
        422,
        "account_closed",
    );
    seen.check(
        "giving to a closed wallet",
        &api.gift(&alice, carol.id, 1).await,
        422,
        "account_closed",
    );
    let reply = api.close_account(admin, carol.id).await;
    seen.check("closing twice", &reply, 422, "account_closed");
    let allocation = api.allocate(admin, earner.id, 60).await;
    let programme = uuid(&allocation["debit"]);
    let reply = api.close_account(admin, programme).await;
    seen.check("closing the programme", &reply, 422, "programme_account");
    let future = (Utc::now() + Duration::days(3)).date_naive();
    let body = json!({"member_id": alice.id, "minutes": 1, "activity": "a", "date_given": future});
    seen.check(
        "time given in the future",
        &post(api, "/v1/earn", earner.key.as_str(), body).await,
        422,
        "effective_date_in_future",
    );

    seen.done();
}

/// Entries that cannot be reversed, or not any more.
#[tokio::test(flavor = "multi_thread")]
async fn reversals_are_refused_when_they_cannot_be() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let earner = &scheme.earner;
    let alice = scheme.member(120).await;
    let bob = scheme.member(0).await;
    let mut seen = Seen::new("reversals");

    // Reversals.
    let open = api
        .get(
            &format!("/v1/accounts/{}/entries?kind=open", bob.id),
            Some(admin),
        )
        .await;
    let open_id = open.expect(200)["entries"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = api.reverse(admin, open_id).await;
    seen.check("reversing an opening", &reply, 422, "not_reversible");
    let entry = api.earn(&earner.key, alice.id, 1).await;
    let id = entry["id"].as_str().unwrap();
    let reversal = api.reverse(&earner.key, id).await;
    let reversal_id = reversal.expect(201)["entry"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = api.reverse(admin, id).await;
    seen.check("reversing twice", &reply, 422, "already_reversed");
    let reply = api.reverse(admin, reversal_id).await;
    seen.check("reversing a reversal", &reply, 422, "not_reversible");
    let late = Scheme::start_with(|s| s.reversal_window = chrono::Duration::zero()).await;
    let member = late.member(60).await;
    let entry = late.api.earn(&late.earner.key, member.id, 1).await;
    let id = entry["id"].as_str().unwrap();
    let reply = late.api.reverse(&late.earner.key, id).await;
    seen.check(
        "a partner reversing after the window",
        &reply,
        403,
        "reversal_window_passed",
    );

    seen.done();
}

/// Spend codes that cannot pay, and the limits on guessing and hoarding them.
#[tokio::test(flavor = "multi_thread")]
async fn spend_codes_are_refused_when_they_cannot_pay() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let venue = &scheme.venue;
    let alice = scheme.member(120).await;
    let mut seen = Seen::new("spend codes");

    // Spend codes.
    let code = api.spend_code(&alice.credential, Some(30)).await;
    seen.check(
        "above the code's cap",
        &api.redeem(&venue.key, &code, 31).await,
        422,
        "spend_code_amount_exceeded",
    );
    api.redeem(&venue.key, &code, 30).await.expect(201);
    seen.check(
        "a used code",
        &api.redeem(&venue.key, &code, 1).await,
        422,
        "spend_code_used",
    );
    let erin = scheme.member(60).await;
    let code = api.spend_code(&erin.credential, None).await;
    let revoke = format!("/v1/members/{}/credential/revoke", erin.id);
    api.post(&revoke, Some(&scheme.earner.key), None)
        .await
        .expect(200);
    seen.check(
        "a code made before the member's credential was revoked",
        &api.redeem(&venue.key, &code, 1).await,
        422,
        "spend_code_revoked",
    );
    for _ in 0..2 {
        seen.check(
            "a wrong code",
            &api.redeem(&venue.key, "ZZZZZZZZ", 1).await,
            422,
            "spend_code_invalid",
        );
    }
    // Every refused redemption by this key above counted (the cap, the used code, the revoked
    // one, the two wrong ones): that makes five.
    let reply = api.redeem(&venue.key, "ZZZZZZZZ", 1).await;
    seen.check(
        "a sixth refused redemption in a minute",
        &reply,
        429,
        "too_many_attempts",
    );
    let dave = scheme.member(0).await;
    for _ in 0..5 {
        api.spend_code(&dave.credential, None).await;
    }
    seen.check(
        "a sixth live spend code",
        &api.post("/v1/spend-codes", Some(&dave.credential), Some(&json!({})))
            .await,
        429,
        "too_many_spend_codes",
    );

    seen.done();
}

/// Member cards: a wrong number or PIN, a locked card, a blocked card.
#[tokio::test(flavor = "multi_thread")]
async fn member_cards_are_refused_when_they_cannot_consent() {
    let scheme = Scheme::start_with(|s| s.cards.pin_attempts = 2).await;
    let (api, venue) = (&scheme.api, &scheme.venue);
    let alice = scheme.member(120).await;
    let (number, pin) = api
        .issue_card(&scheme.earner.key, alice.id, Some("2468"))
        .await;
    let mut seen = Seen::new("member cards");
    seen.check(
        "a wrong PIN",
        &api.redeem_card(&venue.key, &number, "1357", 1).await,
        422,
        "card_invalid",
    );
    seen.check(
        "a second wrong PIN in a row",
        &api.redeem_card(&venue.key, &number, "1357", 1).await,
        422,
        "card_invalid",
    );
    seen.check(
        "a locked card",
        &api.redeem_card(&venue.key, &number, &pin, 1).await,
        422,
        "card_locked",
    );
    let bob = scheme.member(120).await;
    let (number, pin) = api.issue_card(&scheme.earner.key, bob.id, None).await;
    let block = format!("/v1/members/{}/card/block", bob.id);
    api.post(&block, Some(&scheme.earner.key), None)
        .await
        .expect(200);
    seen.check(
        "a blocked card",
        &api.redeem_card(&venue.key, &number, &pin, 1).await,
        422,
        "card_blocked",
    );
    seen.done();
}

/// Signing key rotations: one per overlap.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_key_rotation_waits_for_the_overlap() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let mut seen = Seen::new("key rotations");

    // Key rotations: one per overlap.
    api.post("/v1/key-rotations", Some(admin), None)
        .await
        .expect(201);
    seen.check(
        "a second key rotation during the first one's overlap",
        &api.post("/v1/key-rotations", Some(admin), None).await,
        409,
        "key_overlap_running",
    );

    seen.done();
}

/// The expiry sweep of a service without an expiry policy.
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_without_an_expiry_policy_is_refused() {
    let scheme = Scheme::start().await;
    let mut seen = Seen::new("expiry");
    seen.check(
        "an expiry sweep with no policy configured",
        &scheme
            .api
            .post("/v1/expiries/sweep", Some(&scheme.admin), None)
            .await,
        409,
        "expiry_policy_off",
    );
    seen.done();
}

/// A POST whose body of `len` bytes is sent chunked (no Content-Length), over a raw connection;
/// returns the head and body of the answer as text.
fn chunked_post(base: &str, path: &str, token: &str, len: usize) -> String {
    use std::io::{Read, Write};
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Idempotency-Key: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        new_key()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 4096];
    let mut sent = 0;
    while sent < len {
        // The server may answer and close before it has read everything.
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || stream.write_all(&chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends the same earn many times at once until one is refused as in flight.
async fn seen_in_flight(api: &Api, key: &str, member: Uuid, seen: &mut Seen) {
    for _ in 0..20 {
        let idem = new_key();
        let body = json!({"member_id": member, "minutes": 1, "activity": "a"});
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (api, key, idem, body) =
                    (api.clone(), key.to_owned(), idem.clone(), body.clone());
                tokio::spawn(async move {
                    api.post_keyed("/v1/earn", Some(&key), &idem, Some(&body))
                        .await
                })
            })
            .collect();
        for task in tasks {
            let reply = task.await.unwrap();
            if reply.status == 409 {
                seen.check(
                    "a repeat in flight",
                    &reply,
                    409,
                    "idempotency_key_in_flight",
                );
            }
        }
        if seen.codes.contains("idempotency_key_in_flight") {
            return;
        }
    }
    panic!("320 simultaneous repeats and none was refused as in flight");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_input_makes_the_server_fail() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let alice = scheme.member(60).await;
    let key = &scheme.earner.key;
    let odd: Vec<(&str, Value)> = vec![
        (
            "a date in year 1",
            json!({"member_id": alice.id, "minutes": 1, "activity": "a", "date_given": "0001-01-01"}),
        ),
        (
            "a date before year 0",
            json!({"member_id": alice.id, "minutes": 1, "activity": "a", "date_given": "-0001-12-31"}),
        ),
        (
            "the last date there is",
            json!({"member_id": alice.id, "minutes": 1, "activity": "a", "date_given": "+262142-12-31"}),
        ),
        (
            "200 emoji",
            json!({"member_id": alice.id, "minutes": 1, "activity": "🕒".repeat(200)}),
        ),
        (
            "201 emoji",
            json!({"member_id": alice.id, "minutes": 1, "activity": "🕒".repeat(201)}),
        ),
        (
            "a float amount",
            json!({"member_id": alice.id, "minutes": 1.5, "activity": "a"}),
        ),
        (
            "a huge amount",
            json!({"member_id": alice.id, "minutes": 1e30, "activity": "a"}),
        ),
        (
            "nulls",
            json!({"member_id": null, "minutes": null, "activity": null}),
        ),
        (
            "a nil UUID",
            json!({"member_id": Uuid::nil(), "minutes": 1, "activity": "a"}),
        ),
        (
            "the maximum",
            json!({"member_id": alice.id, "minutes": 60_000_000, "activity": "a"}),
        ),
    ];
    for (what, body) in odd {
        let reply = api.post("/v1/earn", Some(key), Some(&body)).await;
        assert!(
            reply.status < 500,
            "{what}: {} {}",
            reply.status,
            reply.text
        );
        if reply.status >= 400 {
            assert_eq!(
                reply.header("content-type"),
                Some("application/problem+json"),
                "{what}"
            );
        }
    }
    let mut nested = String::new();
    for _ in 0..10_000 {
        nested.push('[');
    }
    let reply = raw(
        api,
        "/v1/earn",
        key,
        Some("application/json"),
        nested.into_bytes(),
    )
    .await;
    reply.assert_problem(400, "malformed_json");
    let reply = raw(
        api,
        "/v1/earn",
        key,
        Some("application/json"),
        b"\xef\xbb\xbf{}".to_vec(),
    )
    .await;
    reply.assert_problem(400, "malformed_json");
    let long_path = format!("/v1/accounts/{}", "a".repeat(4000));
    assert!(api.get(&long_path, Some(admin)).await.status < 500);
    for path in [
        "/v1/accounts/%FF",
        "/v1/entries/%00",
        "/v1/partners/..%2F..%2Fetc",
        "/v1//accounts",
    ] {
        let reply = api.get(path, Some(admin)).await;
        assert!(
            reply.status >= 400 && reply.status < 500,
            "{path}: {} {}",
            reply.status,
            reply.text
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
    }
    // Whatever was accepted, the ledger still verifies and is ready.
    assert_eq!(
        api.get("/readyz", None).await.expect(200)["status"],
        "ready"
    );
    let history = api
        .get(
            &format!("/v1/accounts/{}/entries?limit=500", alice.id),
            Some(admin),
        )
        .await;
    history.expect(200);
}
