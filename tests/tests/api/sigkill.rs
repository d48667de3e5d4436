//! The service killed with SIGKILL while partners issue credits: after a restart every earn it
//! acknowledged (HTTP 201) is there, retries of the unanswered ones commit exactly once, and the
//! balances add up.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use timecredits_tests::client::{new_key, Api, Partner};
use timecredits_tests::server::ChildServer;
use uuid::Uuid;

const CYCLES: usize = 3;
const WRITERS: usize = 16;
const ALLOCATED: u64 = 1_000_000;

fn spawn(dir: &std::path::Path) -> ChildServer {
    ChildServer::spawn(env!("CARGO_BIN_EXE_server-child"), dir)
}

/// An earn request: its idempotency key, its amount, and its entry id once acknowledged.
#[derive(Clone, Debug)]
struct Attempt {
    key: String,
    minutes: u64,
    acknowledged: Option<(Uuid, u64)>,
}

/// Sends earns from several writers until `stop`; returns every attempt.
async fn load(api: &Api, partner_key: &str, member: Uuid, stop: Instant) -> Vec<Attempt> {
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (api, key) = (api.clone(), partner_key.to_owned());
            tokio::spawn(async move {
                let mut attempts = Vec::new();
                let mut n = 0u64;
                while Instant::now() < stop {
                    n += 1;
                    let minutes = 1 + (w as u64 + n) % 7;
                    let attempt_key = new_key();
                    let body = json!({"member_id": member, "minutes": minutes, "activity": "load"});
                    let sent = api
                        .request(reqwest::Method::POST, "/v1/earn")
                        .bearer_auth(&key)
                        .header("Idempotency-Key", &attempt_key)
                        .json(&body)
                        .send()
                        .await;
                    let acknowledged = match sent {
                        Ok(response) if response.status() == 201 => {
                            let body: serde_json::Value = match response.json().await {
                                Ok(b) => b,
                                Err(_) => json!(null), // killed while answering
                            };
                            body["entry"]["id"].as_str().map(|id| {
                                (id.parse().unwrap(), body["entry"]["seq"].as_u64().unwrap())
                            })
                        }
                        Ok(response) => panic!("earn refused: {}", response.status()),
                        Err(_) => None,
                    };
                    let failed = acknowledged.is_none();
                    attempts.push(Attempt {
                        key: attempt_key,
                        minutes,
                        acknowledged,
                    });
                    if failed {
                        break; // the server is gone
                    }
                }
                attempts
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_earns_survive_sigkill_and_retries_commit_once() {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_millis() as u64;
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path());
    let api = Api::new(server.base());
    let admin = server.admin_key().to_owned();
    let partner: Partner = api.create_partner(&admin, "Load Charity", &["earn"]).await;
    api.allocate(&admin, partner.id, ALLOCATED).await;
    let member = api.register_member(&partner.key).await;
    let mut server = Some(server);
    let mut issued = 0u64;
    let mut acknowledged: HashMap<Uuid, u64> = HashMap::new();
    for cycle in 0..CYCLES {
        let running = server.take().unwrap();
        let api = Api::new(running.base());
        // Kill at a different moment each cycle, while the writers are busy.
        let run_for = Duration::from_millis(150 + (seed + 97 * cycle as u64) % 250);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(run_for);
            running.kill();
        });
        let attempts = load(
            &api,
            &partner.key,
            member.id,
            Instant::now() + Duration::from_secs(30),
        )
        .await;
        killer.join().unwrap();
        assert!(
            attempts.iter().any(|a| a.acknowledged.is_some()),
            "cycle {cycle}: nothing was acknowledged"
        );

        let restarted = spawn(dir.path());
        let api = Api::new(restarted.base());
        for attempt in &attempts {
            if let Some((id, seq)) = attempt.acknowledged {
                let reply = api.get(&format!("/v1/entries/{id}"), Some(&admin)).await;
                assert_eq!(
                    reply.status, 200,
                    "cycle {cycle}: acknowledged entry {seq} was lost: {}",
                    reply.text
                );
                assert_eq!(
                    (reply.json["seq"].as_u64(), reply.json["key"].as_str()),
                    (Some(seq), Some(attempt.key.as_str()))
                );
                acknowledged.insert(id, attempt.minutes);
            }
        }
        // The unanswered requests are retried with their keys: each commits now or is
        // answered from the commit that happened before the kill, never twice.
        let mut replayed = 0;
        for attempt in attempts.iter().filter(|a| a.acknowledged.is_none()) {
            let body =
                json!({"member_id": member.id, "minutes": attempt.minutes, "activity": "load"});
            let reply = api
                .post_keyed("/v1/earn", Some(&partner.key), &attempt.key, Some(&body))
                .await;
            replayed += usize::from(reply.replayed());
            let entry = &reply.expect(201)["entry"];
            acknowledged.insert(
                entry["id"].as_str().unwrap().parse().unwrap(),
                attempt.minutes,
            );
        }
        let unanswered = attempts.iter().filter(|a| a.acknowledged.is_none()).count();
        println!(
            "cycle {cycle}: {} earns acknowledged; {unanswered} unanswered, retried, {replayed} of them \
             committed before the kill",
            attempts.len() - unanswered
        );
        issued += attempts.iter().map(|a| a.minutes).sum::<u64>();
        let balance = api.balance(&admin, member.id).await;
        assert_eq!(
            balance, issued as i64,
            "cycle {cycle}: every request committed exactly once"
        );
        assert_eq!(acknowledged.values().sum::<u64>(), issued);
        assert_eq!(
            api.balance(&admin, partner.budget()).await,
            (ALLOCATED - issued) as i64
        );
        let size = api.ledger_size().await;
        // Genesis, the budget, its allocation, the member's wallet, and the earns.
        assert_eq!(size, 4 + acknowledged.len() as u64, "cycle {cycle}");
        let checkpoint = api.get("/v1/ledger/checkpoint", None).await;
        let key = api.get("/v1/ledger/key", None).await;
        let verifier =
            timecredits_tlog::note::NoteVerifier::parse(key.json["verifier_key"].as_str().unwrap())
                .unwrap();
        let (cp, _) = timecredits_tlog::checkpoint::open_checkpoint(
            checkpoint.text.as_bytes(),
            key.json["origin"].as_str().unwrap(),
            &[verifier],
        )
        .expect("the checkpoint verifies after a kill");
        assert_eq!(cp.size, size);
        server = Some(restarted);
    }
    println!(
        "{} earns over {CYCLES} kills (seed {seed})",
        acknowledged.len()
    );
}
