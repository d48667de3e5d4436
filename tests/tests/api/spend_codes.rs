//! Spend codes: the member's consent to a spend. Their format and lifetime, single use, the cap,
//! the limit of live codes per member, the throttling of refused redemptions (per API key,
//! partner and source address), and what a venue may learn from a refusal.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use timecredits_tests::client::{new_key, Api, Scheme};

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
    let scheme = Scheme::start_with(|settings| settings.spend_codes.ttl = ttl).await;
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

/// The oracle an outside review found: a used `Idempotency-Key` re-sent with another code must get
/// the same answer whether that code is live or unknown, must not touch the live code, and counts
/// against the guess limits like any other refusal.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_answers_the_same_for_a_live_code_and_an_unknown_one() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let (alice, bob) = (scheme.member(600).await, scheme.member(600).await);
    let venue = &scheme.venue.key;
    let key = new_key();
    let code = api.spend_code(&alice.credential, None).await;
    let first = Api::redemption(&code, 60);
    let made = api
        .post_keyed("/v1/redemptions", Some(venue), &key, Some(&first))
        .await;
    made.expect(201);
    // The same request again: the same answer, as a replay.
    let again = api
        .post_keyed("/v1/redemptions", Some(venue), &key, Some(&first))
        .await;
    assert_eq!((again.status, &again.json), (201, &made.json));
    assert!(again.replayed());

    let live = api.spend_code(&bob.credential, None).await;
    let unknown = if live == "ZZZZZZZZ" {
        "YYYYYYYY"
    } else {
        "ZZZZZZZZ"
    };
    let probe = |code: &str| {
        let body = Api::redemption(code, 60);
        let key = key.clone();
        async move {
            api.post_keyed("/v1/redemptions", Some(venue), &key, Some(&body))
                .await
        }
    };
    let on_live = probe(&live).await;
    let on_unknown = probe(unknown).await;
    on_live.assert_problem(422, "idempotency_key_reused");
    assert_eq!(
        (on_live.status, &on_live.text),
        (on_unknown.status, &on_unknown.text),
        "the answer depends on whether the code exists"
    );
    // The probes counted: three more refusals use up the key's five, and the next is 429.
    for _ in 0..3 {
        probe(unknown)
            .await
            .assert_problem(422, "idempotency_key_reused");
    }
    probe(&live).await.assert_problem(429, "too_many_attempts");
    // Bob's code was not touched: another till redeems it.
    let (_, till) = api
        .create_key(
            &scheme.admin,
            json!({"kind": "partner", "id": scheme.venue.id}),
        )
        .await;
    api.redeem(&till, &live, 60).await.expect(201);
    assert_eq!(api.balance(&bob.credential, bob.id).await, 540);
    assert_eq!(api.balance(&alice.credential, alice.id).await, 540);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_venue_switching_keys_or_partners_is_still_throttled() {
    let scheme = Scheme::start_with(|settings| {
        settings.spend_codes.guesses.per_partner = 3;
        settings.spend_codes.guesses.per_address = 5;
    })
    .await;
    let api = &scheme.api;
    let alice = scheme.member(600).await;
    let code = api.spend_code(&alice.credential, None).await;
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let mut tills = Vec::new();
    for _ in 0..4 {
        let (_, till) = api
            .create_key(
                &scheme.admin,
                json!({"kind": "partner", "id": scheme.venue.id}),
            )
            .await;
        tills.push(till);
    }
    // One wrong code from each of three keys uses up the partner's allowance...
    for till in &tills[..3] {
        api.redeem(till, wrong, 60)
            .await
            .assert_problem(422, "spend_code_invalid");
    }
    // ... so a fourth key of the same partner is refused, even with the right code.
    let reply = api.redeem(&tills[3], &code, 60).await;
    reply.assert_problem(429, "too_many_attempts");
    assert!(reply.header("retry-after").is_some());
    // Another partner from the same address has two left before the address's limit.
    let other = api
        .create_partner(&scheme.admin, "Cinema", &["spend"])
        .await;
    for _ in 0..2 {
        api.redeem(&other.key, wrong, 60)
            .await
            .assert_problem(422, "spend_code_invalid");
    }
    api.redeem(&other.key, &code, 60)
        .await
        .assert_problem(429, "too_many_attempts");
    assert_eq!(api.balance(&alice.credential, alice.id).await, 600);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_holds_at_most_five_live_codes() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(600).await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(api.spend_code(&alice.credential, None).await);
    }
    let reply = api
        .post("/v1/spend-codes", Some(&alice.credential), Some(&json!({})))
        .await;
    reply.assert_problem(429, "too_many_spend_codes");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    // Another member is not affected, and a used code frees a place.
    let bob = scheme.member(0).await;
    api.spend_code(&bob.credential, None).await;
    api.redeem(&scheme.venue.key, &codes[0], 1)
        .await
        .expect(201);
    api.spend_code(&alice.credential, None).await;
}

/// A venue learns that a code cannot pay for the amount, not the member's wallet id, balance
/// or the cap the member set.
#[tokio::test(flavor = "multi_thread")]
async fn a_venue_learns_only_that_a_code_cannot_pay() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(617).await;
    let capped = api.spend_code(&alice.credential, Some(83)).await;
    let reply = api.redeem(&scheme.venue.key, &capped, 84).await;
    reply.assert_problem(422, "spend_code_amount_exceeded");
    let poor = api.spend_code(&alice.credential, None).await;
    let broke = api.redeem(&scheme.venue.key, &poor, 700).await;
    broke.assert_problem(422, "insufficient_credits");
    for reply in [&reply, &broke] {
        for secret in [alice.id.to_string(), "617".into(), "83".into()] {
            assert!(
                !reply.text.contains(&secret),
                "the venue learns {secret}: {}",
                reply.text
            );
        }
    }
    // Both codes stay usable within what they can pay.
    api.redeem(&scheme.venue.key, &capped, 83).await.expect(201);
    api.redeem(&scheme.venue.key, &poor, 534).await.expect(201);
    assert_eq!(api.balance(&alice.credential, alice.id).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_made_before_the_credential_was_revoked_or_reissued_no_longer_pays() {
    let scheme = Scheme::start().await;
    let (api, partner, venue) = (&scheme.api, &scheme.earner.key, &scheme.venue.key);
    let alice = scheme.member(120).await;
    let shown = api.spend_code(&alice.credential, None).await;
    // Alice reports her phone lost: her partner revokes the credential. The code the phone
    // showed no longer pays, however many times it is tried.
    let revoke = format!("/v1/members/{}/credential/revoke", alice.id);
    api.post(&revoke, Some(partner), None).await.expect(200);
    for _ in 0..2 {
        api.redeem(venue, &shown, 30)
            .await
            .assert_problem(422, "spend_code_revoked");
    }
    // A new credential: the old code stays void; a code made with the new one pays.
    let reissue = format!("/v1/members/{}/credential", alice.id);
    let reissued = api.post(&reissue, Some(partner), None).await;
    let credential = reissued.expect(201)["credential"]
        .as_str()
        .unwrap()
        .to_owned();
    let credential = credential.as_str();
    api.redeem(venue, &shown, 30)
        .await
        .assert_problem(422, "spend_code_revoked");
    let fresh = api.spend_code(credential, None).await;
    api.redeem(venue, &fresh, 30).await.expect(201);
    assert_eq!(api.balance(credential, alice.id).await, 90);

    // A reissue alone (no revocation first) voids the codes made before it too.
    let bob = scheme.member(60).await;
    let shown = api.spend_code(&bob.credential, None).await;
    let reissue = format!("/v1/members/{}/credential", bob.id);
    api.post(&reissue, Some(partner), None).await.expect(201);
    api.redeem(venue, &shown, 60)
        .await
        .assert_problem(422, "spend_code_revoked");
    assert_eq!(api.balance(partner, bob.id).await, 60);
}
