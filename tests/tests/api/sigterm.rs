//! The service stopped with SIGTERM under concurrent load: every request it received gets an HTTP
//! answer (201, or 503 `shutting_down` for those that arrived during the drain), none gets a
//! dropped connection, the process exits with status 0 after sealing its last checkpoint, and
//! every acknowledged earn is there after a restart.

use std::time::{Duration, Instant};

use serde_json::json;
use timecredits_tests::client::{new_key, Api};
use timecredits_tests::server::ChildServer;
use uuid::Uuid;

const WRITERS: usize = 24;

fn spawn(dir: &std::path::Path) -> ChildServer {
    ChildServer::spawn(env!("CARGO_BIN_EXE_server-child"), dir)
}

/// What one writer saw.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<Uuid>,
    shutting_down: usize,
    /// Requests sent on a connection that then broke without an answer.
    dropped: Vec<String>,
}

/// Earns until the server refuses connections; honours `Retry-After` on `shutting_down`.
async fn writer(api: Api, key: String, member: Uuid, deadline: Instant) -> Seen {
    let mut seen = Seen::default();
    while Instant::now() < deadline {
        let at = Instant::now();
        let sent = api
            .request(reqwest::Method::POST, "/v1/earn")
            .bearer_auth(&key)
            .header("Idempotency-Key", new_key())
            .json(&json!({"member_id": member, "minutes": 1, "activity": "load"}))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            // Never received: the listener is closed.
            Err(e) if e.is_connect() => break,
            Err(e) => {
                seen.dropped.push(format!(
                    "sent {:?} before the deadline, failed after {:?}: {e:?}",
                    deadline - at,
                    at.elapsed()
                ));
                continue;
            }
        };
        let status = response.status().as_u16();
        let body: serde_json::Value = match response.json().await {
            Ok(body) => body,
            Err(e) => {
                seen.dropped.push(format!("body of a {status}: {e:?}"));
                continue;
            }
        };
        match (status, body["code"].as_str()) {
            (201, _) => seen
                .acknowledged
                .push(body["entry"]["id"].as_str().unwrap().parse().unwrap()),
            (503, Some("shutting_down")) => {
                seen.shutting_down += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_answers_every_request_received_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path());
    let api = Api::new(server.base());
    let admin = server.admin_key().to_owned();
    let partner = api.create_partner(&admin, "Load Charity", &["earn"]).await;
    api.allocate(&admin, partner.id, 1_000_000).await;
    let member = api.register_member(&partner.key).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            // A client each: its own connections, as separate callers have.
            let api = Api::new(server.base());
            tokio::spawn(writer(api, partner.key.clone(), member.id, deadline))
        })
        .collect();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        server.terminate(Duration::from_secs(20))
    });
    let mut acknowledged = Vec::new();
    let (mut shutting_down, mut dropped) = (0, Vec::new());
    for w in writers {
        let seen = w.await.unwrap();
        acknowledged.extend(seen.acknowledged);
        shutting_down += seen.shutting_down;
        dropped.extend(seen.dropped);
    }
    let status = stopper
        .join()
        .unwrap()
        .expect("the server stops within 20 s");
    assert!(status.success(), "exit status {status:?}");
    assert!(dropped.is_empty(), "{} dropped: {dropped:?}", dropped.len());
    assert!(!acknowledged.is_empty(), "the load was served");
    eprintln!(
        "{} acknowledged, {shutting_down} answered shutting_down",
        acknowledged.len()
    );

    // The stop sealed the last checkpoint: the signed tree on disk is the whole ledger.
    let signed = std::fs::read_to_string(dir.path().join(timecredits_ledger::layout::SIGNED_TREE))
        .expect("the stop recorded the signed tree");
    let sealed: u64 = signed.lines().nth(1).unwrap().parse().unwrap();

    let restarted = spawn(dir.path());
    let api = Api::new(restarted.base());
    assert_eq!(
        api.ledger_size().await,
        sealed,
        "the sealed checkpoint is the last one"
    );
    for id in acknowledged {
        api.get(&format!("/v1/entries/{id}"), Some(&admin))
            .await
            .expect(200);
    }
}
