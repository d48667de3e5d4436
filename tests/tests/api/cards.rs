//! Member cards: a printed card and a PIN as a member's consent at a venue. The whole story at
//! the till, the lockout of a PIN guesser (across keys, partners and addresses, and across a
//! restart), the answers that must not tell a wrong number from a wrong PIN, blocked and
//! replaced cards, repeats, and other partners' cards.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use timecredits_tests::client::{new_key, Api, Reply, Scheme};
use uuid::Uuid;

/// Crockford's base32 alphabet.
const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// `number` with its character at `at` changed to the next one of the alphabet: a typo.
fn mistyped(number: &str, at: usize) -> String {
    let mut chars: Vec<char> = number.chars().filter(|c| *c != ' ').collect();
    let i = CROCKFORD.find(chars[at]).unwrap();
    chars[at] = CROCKFORD.chars().nth((i + 1) % 32).unwrap();
    chars.into_iter().collect()
}

/// A number of the right form (its check character matches) that is no member's card.
fn some_other_number(api_number: &str) -> String {
    // Numbers are derived from the server secret: the one made from all zeros is no card's,
    // short of a one in 2^55 coincidence that the assertion below would show.
    let other = timecredits_server::cards::CardNumber::from_bits(0).grouped();
    assert_ne!(other, api_number);
    other
}

/// A PIN other than `pin`.
fn wrong_pin(pin: &str) -> &'static str {
    if pin == "0000" {
        "1111"
    } else {
        "0000"
    }
}

/// A redemption of `body` with `venue_key`, sent from the source address `from`.
async fn redeem_from(api: &Api, from: IpAddr, venue_key: &str, body: &Value) -> Reply {
    let http = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let response = http
        .post(format!("{}/v1/redemptions", api.base()))
        .bearer_auth(venue_key)
        .header("Idempotency-Key", new_key())
        .json(body)
        .send()
        .await
        .expect("the server answers");
    Reply::read(response).await
}

/// The parts of a refusal a venue sees, with the request's own id taken out.
fn answer(reply: &Reply) -> (u16, Value, Value, Value, Option<String>) {
    (
        reply.status,
        reply.json["code"].clone(),
        reply.json["title"].clone(),
        reply.json["detail"].clone(),
        reply.header("content-type").map(str::to_owned),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_card_and_pin_pay_at_the_till_and_the_balance_falls_exactly() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(600).await;
    let (number, pin) = api.issue_card(&scheme.earner.key, alice.id, None).await;
    // Three groups of four Crockford characters, and a generated PIN of four digits.
    let groups: Vec<&str> = number.split(' ').collect();
    assert!(
        groups.iter().all(|g| g.len() == 4) && groups.len() == 3,
        "{number}"
    );
    assert!(number.chars().all(|c| c == ' ' || CROCKFORD.contains(c)));
    assert!(
        pin.len() == 4 && pin.chars().all(|c| c.is_ascii_digit()),
        "{pin}"
    );

    // The printable card: the number and a QR code, never the PIN.
    let card = api
        .get(
            &format!("/v1/members/{}/card", alice.id),
            Some(&scheme.earner.key),
        )
        .await;
    assert_eq!(card.status, 200, "{}", card.text);
    assert!(card
        .header("content-type")
        .unwrap()
        .starts_with("image/svg+xml"));
    assert!(card.text.contains(&number));
    assert!(card.text.contains("Time credits"));
    assert!(!card.text.contains(&format!(">{pin}<")));

    let venue_before = api.balance(&scheme.venue.key, scheme.venue.venue()).await;
    // Typed at the till: lower case, no spaces.
    let typed = number.replace(' ', "").to_lowercase();
    let key = new_key();
    let till = scheme.venue.key.as_str();
    let redeem_keyed = |body: Value| {
        let key = key.clone();
        async move {
            api.post_keyed("/v1/redemptions", Some(till), &key, Some(&body))
                .await
        }
    };
    let body = Api::card_redemption(&typed, &pin, 90);
    let reply = redeem_keyed(body.clone()).await;
    let entry = reply.expect(201)["entry"].clone();
    assert_eq!(entry["kind"], json!("spend"));
    assert_eq!(entry["debit"], json!(alice.id));
    assert_eq!(entry["minutes"], json!(90));
    assert_eq!(api.balance(&alice.credential, alice.id).await, 510);
    assert_eq!(
        api.balance(&scheme.venue.key, scheme.venue.venue()).await,
        venue_before + 90
    );

    // A repeat gets the same entry; the same key with another PIN or another card is refused
    // whatever they are, and debits nothing.
    let again = redeem_keyed(body).await;
    assert!(again.replayed());
    assert_eq!(again.expect(201)["entry"]["id"], entry["id"]);
    let (other, other_pin) = (some_other_number(&number), wrong_pin(&pin));
    for (n, p) in [(typed.as_str(), other_pin), (other.as_str(), pin.as_str())] {
        redeem_keyed(Api::card_redemption(n, p, 90))
            .await
            .assert_problem(422, "idempotency_key_reused");
    }
    assert_eq!(api.balance(&alice.credential, alice.id).await, 510);

    // Typos are caught by the check character before anything is looked up, and are not
    // guesses: more of them than the key's guess limit leave the key free to redeem.
    for at in 0..12 {
        api.redeem_card(&scheme.venue.key, &mistyped(&number, at), &pin, 10)
            .await
            .assert_problem(400, "invalid_request");
    }
    for bad in [
        json!({"code": "7KQ2M9XD", "card_number": number, "pin": pin, "minutes": 1, "activity": "swim", "adults": 1, "children": 0}),
        json!({"card_number": number, "minutes": 1, "activity": "swim", "adults": 1, "children": 0}),
        Api::card_redemption(&number, "12", 1),
    ] {
        api.post("/v1/redemptions", Some(&scheme.venue.key), Some(&bad))
            .await
            .assert_problem(400, "invalid_request");
    }
    api.redeem_card(&scheme.venue.key, &number, &pin, 10)
        .await
        .expect(201);
    assert_eq!(api.balance(&alice.credential, alice.id).await, 500);
    // The member's spend codes still work beside the card.
    api.spend(&alice, &scheme.venue.key, 100).await;
    assert_eq!(api.balance(&alice.credential, alice.id).await, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pin_guesser_across_keys_partners_and_addresses_is_locked_out_even_after_a_restart() {
    let mut scheme = Scheme::start().await;
    let alice = scheme.member(600).await;
    let (number, pin) = scheme
        .api
        .issue_card(&scheme.earner.key, alice.id, Some("8642"))
        .await;
    let (api, admin) = (&scheme.api, scheme.admin.clone());
    let cinema = api.create_partner(&admin, "Cinema", &["spend"]).await;
    let (_, second_till) = api
        .create_key(&admin, json!({"kind": "partner", "id": scheme.venue.id}))
        .await;
    let tills = [
        scheme.venue.key.clone(),
        second_till,
        cinema.key.clone(),
        scheme.venue.key.clone(),
        cinema.key.clone(),
    ];
    // Five wrong PINs, each from another address, alternating keys and partners: no guess limit
    // is reached (at most two per key, three per partner, one per address), but the card's
    // own count is.
    for (i, till) in tills.iter().enumerate() {
        let from = IpAddr::from([127, 0, 0, 2 + i as u8]);
        let guess = format!("{:04}", 1000 + i);
        let body = Api::card_redemption(&number, &guess, 60);
        redeem_from(api, from, till, &body)
            .await
            .assert_problem(422, "card_invalid");
    }
    // Locked: even the right PIN is refused, and no PIN is tried any more.
    let from = IpAddr::from([127, 0, 0, 9]);
    let right = Api::card_redemption(&number, &pin, 60);
    redeem_from(api, from, &cinema.key, &right)
        .await
        .assert_problem(422, "card_locked");
    scheme.restart();
    let api = &scheme.api;
    api.redeem_card(&scheme.venue.key, &number, &pin, 60)
        .await
        .assert_problem(422, "card_locked");
    assert_eq!(api.balance(&alice.credential, alice.id).await, 600);
    let status = api
        .post(
            &format!("/v1/members/{}/card/pin", alice.id),
            Some(&scheme.earner.key),
            Some(&json!({"pin": "97531"})),
        )
        .await;
    let status = &status.expect(200)["status"];
    assert_eq!(
        (status["locked"].clone(), status["wrong_pins"].clone()),
        (Value::Null, json!(0))
    );
    assert!(status.get("pin").is_none());
    api.redeem_card(&scheme.venue.key, &number, &pin, 60)
        .await
        .assert_problem(422, "card_invalid");
    api.redeem_card(&scheme.venue.key, &number, "97531", 60)
        .await
        .expect(201);
    assert_eq!(api.balance(&alice.credential, alice.id).await, 540);
}

#[tokio::test(flavor = "multi_thread")]
async fn card_refusals_count_against_the_same_guess_limits_as_wrong_spend_codes() {
    let scheme = Scheme::start_with(|s| s.spend_codes.guesses.per_partner = 3).await;
    let api = &scheme.api;
    let alice = scheme.member(600).await;
    let (number, pin) = api.issue_card(&scheme.earner.key, alice.id, None).await;
    let (_, second_till) = api
        .create_key(
            &scheme.admin,
            json!({"kind": "partner", "id": scheme.venue.id}),
        )
        .await;
    let wrong_pin = wrong_pin(&pin);
    api.redeem_card(&scheme.venue.key, &number, wrong_pin, 60)
        .await
        .assert_problem(422, "card_invalid");
    api.redeem_card(&second_till, &some_other_number(&number), &pin, 60)
        .await
        .assert_problem(422, "card_invalid");
    api.redeem(&scheme.venue.key, "ZZZZZZZZ", 60)
        .await
        .assert_problem(422, "spend_code_invalid");
    // The partner's three refusals are used up, whichever way they were spent.
    let reply = api.redeem_card(&second_till, &number, &pin, 60).await;
    reply.assert_problem(429, "too_many_attempts");
    assert!(reply.header("retry-after").is_some());
    assert_eq!(api.balance(&alice.credential, alice.id).await, 600);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_number_and_a_wrong_pin_get_the_same_answer_in_similar_time() {
    let scheme = Scheme::start_with(|s| {
        let guesses = &mut s.spend_codes.guesses;
        (
            guesses.per_key,
            guesses.per_partner,
            guesses.per_address,
            guesses.global,
        ) = (1000, 1000, 1000, 1000);
        s.cards.pin_attempts = 10;
    })
    .await;
    let api = &scheme.api;
    let alice = scheme.member(600).await;
    let (number, pin) = api.issue_card(&scheme.earner.key, alice.id, None).await;
    let wrong_pin = wrong_pin(&pin);
    let other = some_other_number(&number);
    let (mut wrong_number_times, mut wrong_pin_times) = (Vec::new(), Vec::new());
    let mut answers = Vec::new();
    // Alternating, so that a slow moment of the machine falls on both alike.
    for _ in 0..8 {
        for (n, p, times) in [
            (other.as_str(), pin.as_str(), &mut wrong_number_times),
            (number.as_str(), wrong_pin, &mut wrong_pin_times),
        ] {
            let start = Instant::now();
            let reply = api.redeem_card(&scheme.venue.key, n, p, 60).await;
            times.push(start.elapsed());
            answers.push(answer(&reply));
        }
    }
    assert_eq!(answers[0].1, json!("card_invalid"));
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "the answers differ: {answers:?}"
    );
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (a, b) = (
        median(&mut wrong_number_times),
        median(&mut wrong_pin_times),
    );
    let (fast, slow) = (a.min(b), a.max(b));
    // Both refusals hash the PIN and write a durable record: within a factor of three (plus a
    // few milliseconds of scheduling noise), where a refusal without the write would be ten
    // times faster than one with it.
    assert!(
        slow <= 3 * fast + Duration::from_millis(5),
        "wrong number {a:?}, wrong PIN {b:?}"
    );
    assert_eq!(api.balance(&alice.credential, alice.id).await, 600);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_or_replaced_card_is_refused_at_once_and_leaving_blocks_it() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let earner = &scheme.earner.key;
    let venue = &scheme.venue.key;
    let alice = scheme.member(600).await;
    let (first, pin) = api.issue_card(earner, alice.id, Some("1470")).await;

    // A lost credential is replaced; the card is not touched by it, and works on.
    let reissued = api
        .post(
            &format!("/v1/members/{}/credential", alice.id),
            Some(earner),
            None,
        )
        .await;
    let credential = reissued.expect(201)["credential"]
        .as_str()
        .unwrap()
        .to_owned();
    api.get("/v1/me", Some(&alice.credential))
        .await
        .assert_problem(401, "unauthorized");
    api.redeem_card(venue, &first, &pin, 10).await.expect(201);

    // Blocked: refused at once, and told only to the right PIN.
    let block = format!("/v1/members/{}/card/block", alice.id);
    let blocked = api.post(&block, Some(earner), None).await;
    assert!(blocked.expect(200)["blocked"].is_string());
    api.redeem_card(venue, &first, &pin, 10)
        .await
        .assert_problem(422, "card_blocked");
    api.redeem_card(venue, &first, "0000", 10)
        .await
        .assert_problem(422, "card_invalid");

    // Replaced: a new number; the old one is no card any more.
    let (second, new_pin) = api.issue_card(earner, alice.id, None).await;
    assert_ne!(first, second);
    api.redeem_card(venue, &first, &pin, 10)
        .await
        .assert_problem(422, "card_invalid");
    api.redeem_card(venue, &second, &new_pin, 10)
        .await
        .expect(201);
    assert_eq!(api.balance(&credential, alice.id).await, 580);
    let card = api
        .get(&format!("/v1/members/{}/card", alice.id), Some(earner))
        .await;
    assert!(card.text.contains(&second) && !card.text.contains(&first));

    // Leaving blocks the card too.
    let leave = format!("/v1/members/{}/leave", alice.id);
    api.post(&leave, Some(earner), Some(&json!({"remaining": "retire"})))
        .await
        .expect(201);
    api.redeem_card(venue, &second, &new_pin, 1)
        .await
        .assert_problem(422, "card_blocked");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_partner_cannot_read_block_or_reissue_a_card_it_did_not_issue() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(600).await;
    let (number, pin) = api.issue_card(&scheme.earner.key, alice.id, None).await;
    let rival = api
        .create_partner(&scheme.admin, "Other Club", &["earn"])
        .await;
    let nobody = Uuid::now_v7();
    let card = |id: Uuid, action: &str| format!("/v1/members/{id}/card{action}");
    for (method, action, body) in [
        (Method::GET, "", None),
        (Method::POST, "", Some(json!({}))),
        (Method::POST, "/block", None),
        (Method::POST, "/pin", Some(json!({}))),
    ] {
        let mut details = Vec::new();
        for id in [alice.id, nobody] {
            let reply = api
                .call(
                    method.clone(),
                    &card(id, action),
                    Some(&rival.key),
                    Some(&new_key()),
                    body.as_ref(),
                )
                .await;
            reply.assert_problem(404, "card_not_found");
            let detail = reply.json["detail"].as_str().unwrap().to_owned();
            assert!(!detail.contains("does not exist"), "{detail}");
            details.push(detail.replace(&id.to_string(), "ID"));
        }
        assert_eq!(details[0], details[1], "{method} card{action}");
    }
    // Nothing changed: the card pays with its PIN, and an administrator may print it.
    api.redeem_card(&scheme.venue.key, &number, &pin, 60)
        .await
        .expect(201);
    let printed = api.get(&card(alice.id, ""), Some(&scheme.admin)).await;
    assert_eq!(printed.status, 200);
}
