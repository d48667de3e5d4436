//! The API description and the server agree: what Schemathesis found (bench/schemathesis.sh),
//! each kept as a regression test. A request the description allows is not refused as malformed
//! (400), and one it forbids is refused.

use serde_json::{json, Map, Value};
use timecredits_tests::client::Scheme;

/// Integer fields take a number with a zero fraction (`30.0`): JSON Schema counts it as the
/// integer, so the description allows it. A fraction or a negative number stays malformed.
#[tokio::test(flavor = "multi_thread")]
async fn integer_fields_take_whole_numbers_written_with_a_fraction() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let (earner, venue) = (&scheme.earner, &scheme.venue);
    let alice = scheme.member(0).await;

    let body = json!({"member_id": alice.id, "hours": 1.0, "minutes": 30.0, "activity": "a"});
    let earned = api.post("/v1/earn", Some(&earner.key), Some(&body)).await;
    assert_eq!(earned.expect(201)["entry"]["minutes"], 90);
    let body = json!({"partner_id": earner.id, "minutes": 60.0});
    let allocated = api.post("/v1/allocations", Some(admin), Some(&body)).await;
    assert_eq!(allocated.expect(201)["entry"]["minutes"], 60);

    let body = json!({"max_minutes": 45.0});
    let code = api
        .post("/v1/spend-codes", Some(&alice.credential), Some(&body))
        .await;
    let code = code.expect(201);
    assert_eq!(code["max_minutes"], 45);
    let code = code["code"].as_str().unwrap();
    let body =
        json!({"code": code, "minutes": 45.0, "activity": "swim", "adults": 1.0, "children": 0.0});
    let spent = api
        .post("/v1/redemptions", Some(&venue.key), Some(&body))
        .await;
    let entry = &spent.expect(201)["entry"];
    assert_eq!(
        (&entry["minutes"], &entry["adults"]),
        (&json!(45), &json!(1))
    );

    let bob = scheme.member(0).await;
    let body = json!({"to_member_id": bob.id, "minutes": 15.0});
    let gift = api
        .post("/v1/gifts", Some(&alice.credential), Some(&body))
        .await;
    assert_eq!(gift.expect(201)["entry"]["minutes"], 15);

    for minutes in [json!(1.5), json!(-1.0), json!(-1), json!(1e30), json!("1")] {
        let body = json!({"member_id": alice.id, "minutes": minutes, "activity": "a"});
        let reply = api.post("/v1/earn", Some(&earner.key), Some(&body)).await;
        reply.assert_problem_for(&format!("minutes {minutes}"), 400, "malformed_json");
    }
    let body =
        json!({"code": "X", "minutes": 1, "activity": "a", "adults": 4294967296.0, "children": 0});
    let reply = api
        .post("/v1/redemptions", Some(&venue.key), Some(&body))
        .await;
    reply.assert_problem_for("adults beyond u32", 400, "malformed_json");
}

/// `deny_unknown_fields` holds for every kind of key holder, as the description states
/// (`additionalProperties: false`): serde ignored extra fields of the unit variants.
#[tokio::test(flavor = "multi_thread")]
async fn no_key_holder_takes_unknown_fields() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    for holder in [
        json!({"kind": "administrator", "scopes": ["audit"]}),
        json!({"kind": "auditor", "id": scheme.earner.id}),
        json!({"kind": "partner", "id": scheme.earner.id, "admin": true}),
    ] {
        let body = json!({"label": "k", "holder": holder});
        let reply = api.post("/v1/api-keys", Some(admin), Some(&body)).await;
        reply.assert_problem_for(&holder.to_string(), 400, "malformed_json");
    }
    let holders = &api.get("/openapi.json", None).await.json["components"]["schemas"]["KeyHolder"];
    for variant in holders["oneOf"].as_array().expect("KeyHolder is a oneOf") {
        assert_eq!(variant["additionalProperties"], false, "{variant}");
    }
}

/// Whether `value` satisfies the parts of a JSON Schema the amount rule uses: `type` (integer,
/// null), `minimum`, `maximum`, `required` and `properties`.
fn satisfies(schema: &Value, value: &Value) -> bool {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_ok = types.is_empty()
        || types.iter().any(|t| match *t {
            "integer" => value.is_u64() || value.is_i64(),
            "null" => value.is_null(),
            "object" => value.is_object(),
            other => panic!("the amount rule has no type {other}"),
        });
    let n = value.as_f64();
    let min_ok = schema["minimum"]
        .as_f64()
        .is_none_or(|m| n.is_none_or(|n| n >= m));
    let max_ok = schema["maximum"]
        .as_f64()
        .is_none_or(|m| n.is_none_or(|n| n <= m));
    let object = value.as_object();
    let required_ok = schema["required"].as_array().is_none_or(|r| {
        r.iter()
            .all(|f| object.is_some_and(|o| o.contains_key(f.as_str().unwrap())))
    });
    let properties_ok = schema["properties"].as_object().is_none_or(|ps| {
        ps.iter().all(|(name, p)| {
            object
                .and_then(|o| o.get(name))
                .is_none_or(|v| satisfies(p, v))
        })
    });
    type_ok && min_ok && max_ok && required_ok && properties_ok
}

/// The description states the rule that combines `hours` and `minutes` (an `anyOf` joined to
/// each body with an amount): at and around every edge of it, the server accepts exactly the
/// amounts the description allows, and refuses the others with 400 `invalid_request`.
#[tokio::test(flavor = "multi_thread")]
async fn the_described_amount_rule_is_the_servers() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let schemas = api.get("/openapi.json", None).await.json["components"]["schemas"].clone();
    let rule_of = |name: &str| {
        schemas[name]["allOf"]
            .as_array()
            .and_then(|parts| {
                parts.iter().find(|p| {
                    p["description"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("The amount"))
                })
            })
            .unwrap_or_else(|| panic!("{name} has no amount rule"))
            .clone()
    };
    let rule = rule_of("NewAllocation");
    for name in ["NewEarn", "NewGift", "NewRedemption"] {
        assert_eq!(rule_of(name), rule, "{name}");
    }
    let described = |amount: &Map<String, Value>| {
        let amount = Value::Object(amount.clone());
        rule["anyOf"]
            .as_array()
            .expect("the rule is an anyOf")
            .iter()
            .any(|case| satisfies(case, &amount))
    };

    // Each field left out, null, or at and beside the edges of the rule.
    let edges = |values: &[u64]| -> Vec<Option<Value>> {
        [None, Some(Value::Null)]
            .into_iter()
            .chain(values.iter().map(|v| Some(json!(v))))
            .collect()
    };
    let hours = edges(&[0, 1, 999_999, 1_000_000, 1_000_001]);
    let minutes = edges(&[0, 1, 59, 60, 60_000_000, 60_000_001]);
    let mut accepted = 0;
    for h in &hours {
        for m in &minutes {
            let mut amount = Map::new();
            if let Some(h) = h {
                amount.insert("hours".into(), h.clone());
            }
            if let Some(m) = m {
                amount.insert("minutes".into(), m.clone());
            }
            let mut body = amount.clone();
            body.insert("partner_id".into(), json!(scheme.earner.id));
            let reply = api
                .post("/v1/allocations", Some(admin), Some(&Value::Object(body)))
                .await;
            let what = Value::Object(amount.clone()).to_string();
            if described(&amount) {
                reply.expect(201);
                accepted += 1;
            } else {
                reply.assert_problem_for(&what, 400, "invalid_request");
            }
        }
    }
    assert_eq!(accepted, 23, "the edges hold 23 valid amounts");
    // Batches state their size, spend codes their smallest cap.
    let items = &schemas["NewEarnBatch"]["properties"]["items"];
    assert_eq!(
        (&items["minItems"], &items["maxItems"]),
        (&json!(1), &json!(1000))
    );
    let cap = &schemas["NewSpendCode"]["properties"]["max_minutes"];
    assert_eq!(cap["minimum"], 1);
}
