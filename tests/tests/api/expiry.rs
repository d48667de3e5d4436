//! The expiry policy: a wallet unused for its period expires once, by an explicit entry, however
//! often the sweep runs; a wallet used later does not; the notice list announces it, a partner
//! seeing its own members only; with no policy nothing ever expires; the auditor's replay and
//! the reports count what expired.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use timecredits_audit::verify::{verify_file, VerifyOptions};
use timecredits_server::service::expiries::Policy;
use timecredits_testkit::ledger::TestClock;
use timecredits_tests::client::{uuid, Api, Scheme};
use uuid::Uuid;

const MONTHS: u32 = 12;
const NOTICE_DAYS: u32 = 30;

/// A scheme whose service expires wallets unused for [`MONTHS`] months, on a clock the test
/// moves.
async fn scheme_with_expiry(policy: Option<Policy>) -> (Scheme, TestClock) {
    let clock = TestClock::default();
    let ledger_clock = clock.clock();
    let scheme = Scheme::start_with(move |s| {
        s.expiry = policy;
        s.clock = ledger_clock;
    })
    .await;
    (scheme, clock)
}

fn policy() -> Option<Policy> {
    Some(Policy {
        months: MONTHS,
        notice_days: NOTICE_DAYS,
    })
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().expect("a time").parse().expect("RFC 3339")
}

/// Moves `clock` (the server's: the system's time plus the clock's offset, `offset` so far) to
/// `at`; returns the new offset.
fn move_to(clock: &TestClock, offset: &mut TimeDelta, at: DateTime<Utc>) {
    let step = at - (Utc::now() + *offset);
    assert!(step > TimeDelta::zero(), "the clock only moves forward");
    clock.advance(step);
    *offset += step;
}

/// The notice list as `token` sees it: (member, expires) pairs, all pages.
async fn upcoming(api: &Api, token: &str) -> Vec<(Uuid, DateTime<Utc>)> {
    let mut listed = Vec::new();
    let mut path = "/v1/expiries/upcoming?limit=1".to_owned();
    loop {
        let reply = api.get(&path, Some(token)).await;
        let page = reply.expect(200);
        assert_eq!(page["policy_active"], true);
        for m in page["members"].as_array().unwrap() {
            listed.push((uuid(&m["member_id"]), time(&m["expires"])));
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/expiries/upcoming?limit=1&cursor={cursor}"),
            None => return listed,
        }
    }
}

async fn sweep(api: &Api, admin: &str) -> Value {
    api.post("/v1/expiries/sweep", Some(admin), None)
        .await
        .expect(200)
        .clone()
}

/// The `expire` entries in `member`'s history.
async fn expiries_of(api: &Api, admin: &str, member: Uuid) -> Vec<Value> {
    let reply = api
        .get(&format!("/v1/accounts/{member}/entries"), Some(admin))
        .await;
    reply.expect(200)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "expire")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unused_wallet_is_announced_then_expires_once_and_a_later_use_puts_it_off() {
    let (mut scheme, clock) = scheme_with_expiry(policy()).await;
    let mut offset = TimeDelta::zero();
    let admin = scheme.admin.clone();
    let old = scheme.member(90).await;
    // Used 5 seconds of the server's time later than `old`'s last use.
    clock.advance(TimeDelta::seconds(5));
    offset += TimeDelta::seconds(5);
    let late = scheme.member(45).await;
    let api = scheme.api.clone();
    // Another earn partner's member, and an empty wallet (nothing to expire).
    let other = api
        .create_partner(&admin, "Hillside Garden", &["earn"])
        .await;
    api.allocate(&admin, other.id, 600).await;
    let theirs = api.register_member(&other.key).await;
    let theirs_earn = api.earn(&other.key, theirs.id, 30).await;
    api.register_member(&scheme.earner.key).await;

    // Nothing is due or near yet.
    assert!(upcoming(&api, &admin).await.is_empty());
    assert_eq!(sweep(&api, &admin).await["expired"], 0);

    // Within the notice period: each wallet with credits is announced, with its last use's
    // moment plus the period; a partner sees its own members only.
    let old_use = time(
        &api.get(
            &format!("/v1/accounts/{}/entries?limit=1", old.id),
            Some(&admin),
        )
        .await
        .expect(200)["entries"][0]["recorded"],
    );
    let expires = old_use
        .checked_add_months(chrono::Months::new(MONTHS))
        .unwrap();
    move_to(
        &clock,
        &mut offset,
        expires - TimeDelta::days(NOTICE_DAYS.into()) + TimeDelta::hours(1),
    );
    let all = upcoming(&api, &admin).await;
    let ids: Vec<Uuid> = all.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 3, "{all:?}");
    for id in [old.id, late.id, theirs.id] {
        assert!(ids.contains(&id), "{id} missing from {all:?}");
    }
    assert_eq!(all.iter().find(|(id, _)| *id == old.id).unwrap().1, expires);
    let mut clubs: Vec<Uuid> = upcoming(&api, &scheme.earner.key)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    clubs.sort();
    let mut expected = vec![old.id, late.id];
    expected.sort();
    assert_eq!(clubs, expected);
    let theirs_listed = upcoming(&api, &other.key).await;
    assert_eq!(theirs_listed.len(), 1);
    assert_eq!(theirs_listed[0].0, theirs.id);
    assert_eq!(
        theirs_listed[0].1,
        time(&theirs_earn["recorded"])
            .checked_add_months(chrono::Months::new(MONTHS))
            .unwrap()
    );
    // The auditor sees them all; the venue and members see none.
    let auditor = api
        .create_key(&admin, serde_json::json!({"kind": "auditor"}))
        .await
        .1;
    assert_eq!(upcoming(&api, &auditor).await.len(), 3);
    api.get("/v1/expiries/upcoming", Some(&scheme.venue.key))
        .await
        .assert_problem(403, "forbidden");
    api.get("/v1/expiries/upcoming", Some(&old.credential))
        .await
        .assert_problem(403, "forbidden");
    // Not yet due: a sweep leaves them.
    assert_eq!(sweep(&api, &admin).await["expired"], 0);

    // Just past `old`'s moment: `old` expires, whole balance, `late` (used 5 s later) not.
    move_to(&clock, &mut offset, expires + TimeDelta::milliseconds(500));
    let swept = sweep(&api, &admin).await;
    assert_eq!(swept["expired"], 1, "{swept}");
    assert_eq!(swept["expired_minutes"], 90);
    let entry = &swept["entries"][0];
    assert_eq!(entry["kind"], "expire");
    assert_eq!(entry["expiry_months"], MONTHS);
    assert_eq!(api.balance(&admin, old.id).await, 0);
    assert_eq!(api.balance(&admin, late.id).await, 45);
    // Again, twice at once, and across a restart (which sweeps at start): nothing more.
    assert_eq!(sweep(&api, &admin).await["expired"], 0);
    let size = api.ledger_size().await;
    let (a, b) = tokio::join!(sweep(&api, &admin), sweep(&api, &admin));
    assert_eq!(
        (a["expired"].as_u64(), b["expired"].as_u64()),
        (Some(0), Some(0))
    );
    scheme.restart();
    let api = scheme.api.clone();
    assert_eq!(api.ledger_size().await, size);
    assert_eq!(expiries_of(&api, &admin, old.id).await.len(), 1);

    // `late` and `theirs` come due together: concurrent sweeps expire each once.
    move_to(&clock, &mut offset, expires + TimeDelta::days(1));
    let (a, b) = tokio::join!(sweep(&api, &admin), sweep(&api, &admin));
    let expired = a["expired"].as_u64().unwrap() + b["expired"].as_u64().unwrap();
    assert_eq!(expired, 2, "{a} {b}");
    for member in [late.id, theirs.id] {
        assert_eq!(expiries_of(&api, &admin, member).await.len(), 1);
        assert_eq!(api.balance(&admin, member).await, 0);
    }
    assert!(upcoming(&api, &admin).await.is_empty());

    // The auditor's replay verifies the export and counts what expired; so does the report.
    let size = api.ledger_size().await;
    let (_dir, path, trust) = crate::reports::exported(&api, &admin, size).await;
    let verified = verify_file(&path, &trust, &VerifyOptions::default()).unwrap();
    assert!(verified.is_valid(), "{:?}", verified.failure);
    assert_eq!(verified.summary.unwrap().moved.expired, 90 + 45 + 30);
    let report = api.get("/v1/reports/impact?format=csv", Some(&admin)).await;
    report.expect(200);
    let expired_minutes: i64 = report
        .text
        .lines()
        .filter(|line| line.contains(",expired_minutes,"))
        .map(|line| line.rsplit(',').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(expired_minutes, 90 + 45 + 30, "{}", report.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_policy_nothing_ever_expires() {
    let (mut scheme, clock) = scheme_with_expiry(None).await;
    let member = scheme.member(90).await;
    clock.advance(TimeDelta::days(3650));
    let api = scheme.api.clone();
    api.post("/v1/expiries/sweep", Some(&scheme.admin), None)
        .await
        .assert_problem(409, "expiry_policy_off");
    let page = api
        .get("/v1/expiries/upcoming", Some(&scheme.earner.key))
        .await;
    let page = page.expect(200);
    assert_eq!(page["policy_active"], false);
    assert_eq!(page["members"], serde_json::json!([]));
    let csv = api
        .get("/v1/expiries/upcoming?format=csv", Some(&scheme.admin))
        .await;
    csv.expect(200);
    assert_eq!(
        csv.text,
        "member_id,reference,balance_minutes,last_use_seq,last_use,expires\r\n"
    );
    scheme.restart();
    assert_eq!(scheme.api.balance(&scheme.admin, member.id).await, 90);
    assert!(expiries_of(&scheme.api, &scheme.admin, member.id)
        .await
        .is_empty());
}

/// The sweep at start: a wallet that came due while the service was stopped expires when it
/// starts again, with no one asking.
#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_at_start_expires_what_came_due() {
    let (mut scheme, clock) = scheme_with_expiry(policy()).await;
    let member = scheme.member(75).await;
    scheme.server.stop();
    clock.advance(TimeDelta::days(400));
    scheme.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while scheme.api.balance(&scheme.admin, member.id).await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the start's sweep expired nothing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let expired = expiries_of(&scheme.api, &scheme.admin, member.id).await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["minutes"], 75);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_administrator_sweeps() {
    let (scheme, _clock) = scheme_with_expiry(policy()).await;
    let api = &scheme.api;
    let member = scheme.member(30).await;
    for token in [&scheme.earner.key, &scheme.venue.key, &member.credential] {
        api.post("/v1/expiries/sweep", Some(token), None)
            .await
            .assert_problem(403, "forbidden");
    }
}
