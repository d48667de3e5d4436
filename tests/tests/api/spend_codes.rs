//! Spend codes: the member's consent to a spend. Their format and lifetime, single use, the cap,
//! and the throttling of wrong codes per API key.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use timecredits_tests::client::Scheme;

/// Crockford's base32 alphabet.
const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[tokio::test(flavor = "multi_thread")]
async fn a_code_is_eight_crockford_characters_valid_for_fifteen_minutes() {
    let scheme = Scheme::start().await;
    let alice = scheme.member(600).await;
    let mut codes = Vec::new();
    for cap in [None, Some(90)] {
        let before = Utc::now();
        let body = json!({"max_minutes": cap});
        let reply = scheme
            .api
            .post("/v1/spend-codes", Some(&alice.credential), Some(&body))
            .await;
        let after = Utc::now();
        let created = reply.expect(201);
        let code = created["code"].as_str().unwrap();
        assert_eq!(code.len(), 8, "{code}");
        assert!(code.chars().all(|c| CROCKFORD.contains(c)), "{code}");
        let expires: DateTime<Utc> = created["expires_at"].as_str().unwrap().parse().unwrap();
        // Expiry itself is in `an_expired_code_is_refused_and_debits_nothing`. Here: it is 15
        // minutes after issue.
        assert!(
            expires >= before + Duration::minutes(15) - Duration::seconds(1)
                && expires <= after + Duration::minutes(15) + Duration::seconds(1),
            "issued between {before} and {after}, expires {expires}"
        );
        assert_eq!(created["max_minutes"], json!(cap));
        codes.push(code.to_owned());
    }
    assert_ne!(codes[0], codes[1]);
    // Typing slips do not matter: case, spaces and hyphens.
    let typed = format!(" {}-{} ", codes[0][..4].to_lowercase(), &codes[0][4..]);
    scheme
        .api
        .redeem(&scheme.venue.key, &typed, 60)
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_code_is_refused_and_debits_nothing() {
    let ttl = Duration::seconds(1);
    let scheme = Scheme::start_with(|settings| settings.spend_code_ttl = ttl).await;
    let alice = scheme.member(600).await;
    let reply = scheme
        .api
        .post("/v1/spend-codes", Some(&alice.credential), Some(&json!({})))
        .await;
    let created = reply.expect(201);
    let code = created["code"].as_str().unwrap().to_owned();
    let expires: DateTime<Utc> = created["expires_at"].as_str().unwrap().parse().unwrap();
    // Wait until the code has expired by the server's clock (whole seconds in `expires_at`).
    let wait = (expires - Utc::now() + Duration::milliseconds(100)).max(Duration::zero());
    tokio::time::sleep(wait.to_std().unwrap()).await;
    scheme
        .api
        .redeem(&scheme.venue.key, &code, 60)
        .await
        .assert_problem(422, "spend_code_expired");
    assert_eq!(scheme.api.balance(&alice.credential, alice.id).await, 600);
    // A fresh code still works.
    scheme.api.spend(&alice, &scheme.venue.key, 60).await;
    assert_eq!(scheme.api.balance(&alice.credential, alice.id).await, 540);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_debits_only_its_member_once_and_within_its_cap() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let (alice, bob) = (scheme.member(600).await, scheme.member(600).await);
    let other_venue = api
        .create_partner(&scheme.admin, "Cinema", &["spend"])
        .await;

    let code = api.spend_code(&alice.credential, Some(120)).await;
    // Above the cap: refused, and the code stays usable.
    api.redeem(&scheme.venue.key, &code, 121)
        .await
        .assert_problem(422, "spend_code_amount_exceeded");
    let entry = api.redeem(&scheme.venue.key, &code, 120).await;
    assert_eq!(entry.expect(201)["entry"]["debit"], json!(alice.id));
    assert_eq!(api.balance(&alice.credential, alice.id).await, 480);
    assert_eq!(api.balance(&bob.credential, bob.id).await, 600);
    // Used: by the same venue or another, with a new request.
    for venue in [&scheme.venue, &other_venue] {
        api.redeem(&venue.key, &code, 1)
            .await
            .assert_problem(422, "spend_code_used");
    }
    assert_eq!(api.balance(&alice.credential, alice.id).await, 480);

    // A refused spend (too few credits) leaves the code usable once the member has them.
    let code = api.spend_code(&bob.credential, None).await;
    api.redeem(&other_venue.key, &code, 700)
        .await
        .assert_problem(422, "insufficient_credits");
    api.earn(&scheme.earner.key, bob.id, 100).await;
    api.redeem(&other_venue.key, &code, 700).await.expect(201);
    assert_eq!(api.balance(&bob.credential, bob.id).await, 0);
    assert_eq!(
        api.balance(&other_venue.key, other_venue.venue()).await,
        700
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_codes_are_throttled_per_api_key() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(600).await;
    let (_, second_till) = api
        .create_key(
            &scheme.admin,
            json!({"kind": "partner", "id": scheme.venue.id}),
        )
        .await;
    let code = api.spend_code(&alice.credential, None).await;
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for attempt in 1..=5 {
        let reply = api.redeem(&scheme.venue.key, wrong, 60).await;
        assert_eq!(reply.status, 422, "wrong code {attempt}: {}", reply.text);
        reply.assert_problem(422, "spend_code_invalid");
    }
    // The sixth attempt in the minute is refused, even with the right code.
    for guess in [wrong, code.as_str()] {
        let reply = api.redeem(&scheme.venue.key, guess, 60).await;
        reply.assert_problem(429, "too_many_attempts");
        let retry: u64 = reply
            .header("retry-after")
            .expect("a Retry-After header")
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    assert_eq!(api.balance(&alice.credential, alice.id).await, 600);
    // Another key, even of the same venue, is not throttled.
    let reply = api.redeem(&second_till, &code, 60).await;
    assert_eq!(reply.expect(201)["entry"]["debit"], json!(alice.id));
    api.redeem(&second_till, wrong, 60)
        .await
        .assert_problem(422, "spend_code_invalid");
}
