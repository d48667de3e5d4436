//! An account's history: newest first, cursor pagination without gaps or repeats, and filters by
//! kind and effective date.

use chrono::{Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use timecredits_tests::client::{Api, Scheme};
use uuid::Uuid;

/// Every page of `query`, following cursors; checks each page's `has_more` and `next_cursor`.
async fn all_pages(api: &Api, token: &str, account: Uuid, query: String) -> (Vec<Value>, usize) {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/v1/accounts/{account}/entries?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let reply = api.get(&path, Some(token)).await;
        let page = reply.expect(200);
        pages += 1;
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        let has_more = page["has_more"].as_bool().expect("has_more");
        assert_eq!(
            has_more,
            page.get("next_cursor").is_some(),
            "{}",
            reply.text
        );
        if !has_more {
            return (entries, pages);
        }
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
        assert!(pages < 1000, "pagination does not end");
    }
}

fn seqs(entries: &[Value]) -> Vec<u64> {
    entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

fn effective(entry: &Value) -> NaiveDate {
    entry["effective"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_history_pages_newest_first_without_gaps_or_repeats() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(0).await;
    let bob = scheme.member(0).await;
    let today = Utc::now().date_naive();
    // 30 earns, one per day over the last 30 days, in one batch; then a few other movements.
    let items: Vec<Value> = (0..30)
        .map(|i| {
            json!({"member_id": alice.id, "minutes": 60 + i, "activity": "a",
                "date_given": today - Duration::days(29 - i)})
        })
        .collect();
    api.post(
        "/v1/earn/batch",
        Some(&scheme.earner.key),
        Some(&json!({ "items": items })),
    )
    .await
    .expect(201);
    api.gift(&alice, bob.id, 30).await.expect(201);
    api.spend(&alice, &scheme.venue.key, 45).await;
    api.earn(&scheme.earner.key, alice.id, 5).await;
    let total = 1 + 30 + 3;

    let alices = |query: &str| all_pages(api, &alice.credential, alice.id, query.to_owned());
    let (everything, pages) = alices("limit=500").await;
    assert_eq!((everything.len(), pages), (total, 1));
    let all = seqs(&everything);
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    let kinds: Vec<&str> = everything
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(&kinds[..4], ["earn", "spend", "gift", "earn"]);
    assert_eq!(kinds[total - 1], "open");
    let (default, _) = alices("").await;
    assert_eq!(seqs(&default), all, "the default page size is 50");

    for limit in [1, 7, 17, 34, 35] {
        let (paged, pages) = alices(&format!("limit={limit}")).await;
        assert_eq!(
            seqs(&paged),
            all,
            "limit {limit}: every entry once, in order"
        );
        assert_eq!(pages, total.div_ceil(limit), "limit {limit}");
    }
    let first = api
        .get(
            &format!("/v1/accounts/{}/entries?limit=7", alice.id),
            Some(&alice.credential),
        )
        .await;
    assert_eq!(first.expect(200)["entries"].as_array().unwrap().len(), 7);
    assert_eq!(first.json["has_more"], true);

    // Kind filters, alone and paged.
    let (earns, _) = alices("kind=earn&limit=4").await;
    assert_eq!(earns.len(), 31);
    assert!(earns.iter().all(|e| e["kind"] == "earn"));
    assert_eq!(
        seqs(&earns),
        all.iter()
            .copied()
            .filter(|s| earns.iter().any(|e| e["seq"] == *s))
            .collect::<Vec<_>>()
    );
    let (moves, _) = alices("kind=gift,spend").await;
    let kinds: Vec<&str> = moves.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["spend", "gift"]);

    // Date filters: on the effective date, inclusive at both ends.
    let (from, to) = (today - Duration::days(9), today - Duration::days(5));
    let (range, _) = alices(&format!("from={from}&to={to}&limit=2")).await;
    assert_eq!(range.len(), 5, "{range:?}");
    assert!(range.iter().all(|e| (from..=to).contains(&effective(e))));
    assert_eq!(effective(&range[0]), to);
    assert_eq!(effective(&range[4]), from);
    let (older, _) = alices(&format!("to={}", today - Duration::days(20))).await;
    assert_eq!(older.len(), 10);
    assert!(older
        .iter()
        .all(|e| effective(e) <= today - Duration::days(20)));
    let (recent, _) = alices(&format!("kind=earn&from={today}")).await;
    assert_eq!(recent.len(), 2, "today's batch item and the last earn");
    let (none, _) = alices("from=2000-01-01&to=2000-12-31").await;
    assert!(none.is_empty());

    // Another account's history holds only its own entries.
    let (bobs, _) = all_pages(api, &bob.credential, bob.id, String::new()).await;
    let kinds: Vec<&str> = bobs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["gift", "open"]);
}
