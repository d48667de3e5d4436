//! Many requests at once against one wallet: the ledger's balance check holds.

use timecredits_server::spend_codes::GuessLimits;
use timecredits_tests::client::{Reply, Scheme};

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_redemptions_of_fifty_credits_spend_exactly_fifty() {
    // 200 live codes for one member, 150 of them refused: no limit on either here (this is
    // about the ledger's balance check, not about throttling).
    let scheme = Scheme::start_with(|s| {
        s.spend_codes.max_live_per_member = 0;
        s.spend_codes.guesses = GuessLimits {
            per_key: 0,
            per_partner: 0,
            per_address: 0,
            global: 0,
            ..GuessLimits::default()
        };
    })
    .await;
    let api = &scheme.api;
    let alice = scheme.member(50 * 60).await;
    // Each redemption has a code of its own, so every one of them is a valid consent.
    let mut codes = Vec::new();
    for _ in 0..200 {
        codes.push(api.spend_code(&alice.credential, None).await);
    }
    let size = api.ledger_size().await;
    let tasks: Vec<_> = codes
        .into_iter()
        .map(|code| {
            let (api, key) = (api.clone(), scheme.venue.key.clone());
            tokio::spawn(async move { api.redeem(&key, &code, 60).await })
        })
        .collect();
    let mut replies: Vec<Reply> = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    let succeeded: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(
        succeeded.len(),
        50,
        "exactly 50 one-credit redemptions fit in 50 credits"
    );
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.assert_problem(422, "insufficient_credits");
    }
    let mut seqs: Vec<u64> = succeeded
        .iter()
        .map(|r| r.json["entry"]["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 50, "50 distinct entries");
    assert_eq!(api.balance(&alice.credential, alice.id).await, 0);
    assert_eq!(
        api.balance(&scheme.venue.key, scheme.venue.venue()).await,
        50 * 60
    );
    assert_eq!(api.ledger_size().await, size + 50);
}
