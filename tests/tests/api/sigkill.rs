//! The service killed with SIGKILL, over and over, while partners, venues, members and the
//! administrator make every kind of write the API has: earns, batch earns, gifts, spend codes and
//! their redemptions, reversals, allocations, settlements, member registrations, account closes
//! and key rotations. After each kill the service must start again by itself; every write it acknowledged
//! (HTTP 201) is there, with its sequence number and idempotency key; every unanswered write,
//! sent again with its key, commits exactly once (now, or before the kill and is replayed); the
//! balances equal the sum of every movement; and the checkpoint verifies with the published key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use timecredits_testkit::rng::{clock_seed, Rng};
use timecredits_tests::client::{new_key, uuid, Api, Member, Partner};
use timecredits_tests::server::ChildServer;
use uuid::Uuid;

const CYCLES: usize = 25;
const WRITERS: usize = 12;
const MEMBERS: usize = 6;
/// What each member earns before the load, so that no gift, spend or reversal is refused.
const START_MINUTES: u64 = 100_000;

fn spawn(dir: &std::path::Path) -> ChildServer {
    ChildServer::spawn(env!("CARGO_BIN_EXE_server-child"), dir)
}

/// Credits moved by a write: (from account, to account, minutes).
type Moves = Vec<(Uuid, Uuid, u64)>;

/// One write request, as sent, and what it does to balances once committed.
#[derive(Clone, Debug)]
struct Write {
    path: String,
    token: String,
    key: String,
    body: Option<Value>,
    moves: Moves,
}

/// A write and its answer: the entries it committed, or none when the kill cut it off.
#[derive(Clone, Debug)]
struct Attempt {
    write: Write,
    entries: Option<Vec<(Uuid, u64)>>,
    /// The whole answer, for writes whose result a later write needs (a registration).
    answer: Option<Value>,
}

/// The programme the load runs in.
#[derive(Clone)]
struct Programme {
    admin: String,
    earner: Partner,
    venue: Partner,
    members: Vec<Member>,
}

impl Programme {
    async fn start(api: &Api, admin: &str) -> Programme {
        let earner = api.create_partner(admin, "Load Charity", &["earn"]).await;
        for _ in 0..10 {
            api.allocate(admin, earner.id, 60_000_000).await;
        }
        let venue = api.create_partner(admin, "Load Pool", &["spend"]).await;
        let mut members = Vec::new();
        for _ in 0..MEMBERS {
            let member = api.register_member(&earner.key).await;
            api.earn(&earner.key, member.id, START_MINUTES).await;
            members.push(member);
        }
        Programme {
            admin: admin.to_owned(),
            earner,
            venue,
            members,
        }
    }

    fn earn(&self, member: Uuid, minutes: u64) -> Value {
        json!({"member_id": member, "minutes": minutes, "activity": "load"})
    }
}

/// Sends one write; `None` when the connection broke before a complete answer.
async fn send(api: &Api, write: &Write) -> Option<Value> {
    let mut request = api
        .request(Method::POST, &write.path)
        .bearer_auth(&write.token)
        .header("Idempotency-Key", &write.key);
    if let Some(body) = &write.body {
        request = request.json(body);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    assert_eq!(status, 201, "{} {}: {text}", write.path, write.key);
    Some(serde_json::from_str(&text).expect("a 201 answer is JSON"))
}

/// The entries (id, seq) of a committed write's answer.
fn entries_of(answer: &Value) -> Vec<(Uuid, u64)> {
    let one = |e: &Value| (uuid(&e["id"]), e["seq"].as_u64().expect("a seq"));
    match answer.get("entries") {
        Some(Value::Array(entries)) => entries.iter().map(one).collect(),
        _ => vec![one(&answer["entry"])],
    }
}

async fn attempt(api: &Api, write: Write) -> Attempt {
    let answer = send(api, &write).await;
    Attempt {
        entries: answer.as_ref().map(entries_of),
        answer,
        write,
    }
}

/// One writer's load until the server dies or `stop`: every kind of write, in random order.
async fn writer(api: Api, p: Programme, mut rng: Rng, rotate: bool, stop: Instant) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let mut earned: Vec<(Uuid, Uuid, u64)> = Vec::new(); // (entry, member, minutes)
    let member = |rng: &mut Rng| p.members[rng.below(MEMBERS as u64) as usize].clone();
    let budget = p.earner.budget();
    let mut first = true;
    while Instant::now() < stop {
        let minutes = 1 + rng.below(5);
        let write = |path: &str, token: &str, body: Option<Value>, moves: Moves| Write {
            path: path.to_owned(),
            token: token.to_owned(),
            key: new_key(),
            body,
            moves,
        };
        let done = if rotate && first {
            attempt(&api, write("/v1/key-rotations", &p.admin, None, vec![])).await
        } else {
            match rng.below(100) {
                0..=29 => {
                    let m = member(&mut rng);
                    let w = write(
                        "/v1/earn",
                        &p.earner.key,
                        Some(p.earn(m.id, minutes)),
                        vec![(budget, m.id, minutes)],
                    );
                    let done = attempt(&api, w).await;
                    if let Some(entries) = &done.entries {
                        earned.push((entries[0].0, m.id, minutes));
                    }
                    done
                }
                30..=49 => {
                    let from = rng.below(MEMBERS as u64) as usize;
                    let to = (from + 1 + rng.below(MEMBERS as u64 - 1) as usize) % MEMBERS;
                    let (from, to) = (&p.members[from], &p.members[to]);
                    let body = json!({"to_member_id": to.id, "minutes": minutes});
                    let moves = vec![(from.id, to.id, minutes)];
                    attempt(
                        &api,
                        write("/v1/gifts", &from.credential, Some(body), moves),
                    )
                    .await
                }
                50..=67 => {
                    let m = member(&mut rng);
                    let code = api
                        .request(Method::POST, "/v1/spend-codes")
                        .bearer_auth(&m.credential)
                        .header("Idempotency-Key", new_key())
                        .json(&json!({}))
                        .send()
                        .await;
                    let code = match code {
                        Ok(r) if r.status() == 201 => match r.json::<Value>().await {
                            Ok(v) => v["code"].as_str().expect("a code").to_owned(),
                            Err(_) => break,
                        },
                        // Codes made before a kill and never redeemed count against the
                        // member's five unused codes until they expire: try another write.
                        Ok(r) if r.status() == 429 => continue,
                        Ok(r) => panic!("spend code refused: {}", r.status()),
                        Err(_) => break,
                    };
                    let body = Api::redemption(&code, minutes);
                    let moves = vec![(m.id, p.venue.venue(), minutes)];
                    attempt(
                        &api,
                        write("/v1/redemptions", &p.venue.key, Some(body), moves),
                    )
                    .await
                }
                68..=77 if !earned.is_empty() => {
                    let (entry, m, minutes) = earned.swap_remove(0);
                    let path = format!("/v1/entries/{entry}/reversal");
                    let body = json!({"reference": "recorded twice"});
                    let moves = vec![(m, budget, minutes)];
                    attempt(&api, write(&path, &p.earner.key, Some(body), moves)).await
                }
                78..=87 => {
                    let items: Vec<(Uuid, u64)> =
                        (0..3).map(|i| (member(&mut rng).id, minutes + i)).collect();
                    let body = json!({"items": items.iter().map(|(m, n)| p.earn(*m, *n)).collect::<Vec<_>>()});
                    let moves = items.iter().map(|(m, n)| (budget, *m, *n)).collect();
                    attempt(
                        &api,
                        write("/v1/earn/batch", &p.earner.key, Some(body), moves),
                    )
                    .await
                }
                88..=89 => {
                    let body = json!({"partner_id": p.earner.id, "minutes": minutes});
                    // The nil id stands for the programme account, read once at the start.
                    let moves = vec![(Uuid::nil(), budget, minutes)];
                    attempt(&api, write("/v1/allocations", &p.admin, Some(body), moves)).await
                }
                90..=91 => {
                    // The earn partner hands a little budget back: a settlement (`retire`).
                    let body =
                        json!({"partner_id": p.earner.id, "account": "budget", "minutes": minutes});
                    let moves = vec![(budget, Uuid::nil(), minutes)];
                    attempt(
                        &api,
                        write("/v1/settlements", &p.earner.key, Some(body), moves),
                    )
                    .await
                }
                _ => {
                    // A member who joins and leaves at once: a registration, then a close.
                    let joined =
                        attempt(&api, write("/v1/members", &p.earner.key, None, vec![])).await;
                    let Some(answer) = joined.answer.clone() else {
                        attempts.push(joined);
                        break;
                    };
                    attempts.push(joined);
                    let path = format!("/v1/accounts/{}/close", uuid(&answer["member_id"]));
                    attempt(&api, write(&path, &p.admin, None, vec![])).await
                }
            }
        };
        first = false;
        let cut = done.entries.is_none();
        attempts.push(done);
        if cut {
            break; // the server is gone
        }
    }
    attempts
}

/// Checks an acknowledged write's entries after the restart.
async fn assert_kept(api: &Api, admin: &str, a: &Attempt, cycle: usize) {
    for (id, seq) in a.entries.as_ref().expect("acknowledged") {
        let reply = api.get(&format!("/v1/entries/{id}"), Some(admin)).await;
        assert_eq!(
            reply.status, 200,
            "cycle {cycle}: acknowledged entry {seq} of {} was lost: {}",
            a.write.path, reply.text
        );
        assert_eq!(
            (reply.json["seq"].as_u64(), reply.json["key"].as_str()),
            (Some(*seq), Some(a.write.key.as_str())),
            "cycle {cycle}: entry {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_write_survives_sigkill_and_retries_commit_once() {
    let seed = clock_seed("sigkill test");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path());
    let api = Api::new(server.base());
    let admin = server.admin_key().to_owned();
    let programme = Programme::start(&api, &admin).await;
    // The programme's issuance account, which allocations debit.
    let programme_account = uuid(&api.allocate(&admin, programme.earner.id, 1).await["debit"]);
    let mut expected: HashMap<Uuid, i64> = HashMap::new();
    let mut size = api.ledger_size().await;
    for account in [programme.earner.budget(), programme.venue.venue()]
        .into_iter()
        .chain(programme.members.iter().map(|m| m.id))
    {
        expected.insert(account, api.balance(&admin, account).await);
    }
    let mut server = Some(server);
    let (mut acknowledged, mut retried, mut replayed) = (0, 0, 0);
    for cycle in 0..CYCLES {
        let running = server.take().unwrap();
        let api = Api::new(running.base());
        // Kill at a different moment each cycle, while the writers are busy.
        let run_for = Duration::from_millis(150 + rng.below(350));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(run_for);
            running.kill();
        });
        let stop = Instant::now() + Duration::from_secs(30);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let seeded = Rng::new(rng.next_u64());
                tokio::spawn(writer(api.clone(), programme.clone(), seeded, w == 0, stop))
            })
            .collect();
        let mut attempts = Vec::new();
        for w in writers {
            attempts.extend(w.await.unwrap());
        }
        killer.join().unwrap();

        let restarted = spawn(dir.path());
        let api = Api::new(restarted.base());
        for a in attempts.iter_mut() {
            if a.entries.is_some() {
                acknowledged += 1;
                assert_kept(&api, &admin, a, cycle).await;
                continue;
            }
            // Sent again with its key: it commits now, or its commit before the kill is
            // replayed; never twice.
            let reply = api
                .call(
                    Method::POST,
                    &a.write.path,
                    Some(&a.write.token),
                    Some(&a.write.key),
                    a.write.body.as_ref(),
                )
                .await;
            retried += 1;
            replayed += usize::from(reply.replayed());
            a.entries = Some(entries_of(reply.expect(201)));
        }
        for a in &attempts {
            size += a.entries.as_ref().map_or(0, Vec::len) as u64;
            // The nil id stands for the programme account (allocations' debit, settlements'
            // credit).
            let account = |id: &Uuid| if id.is_nil() { programme_account } else { *id };
            for (from, to, minutes) in &a.write.moves {
                *expected.entry(account(from)).or_default() -= *minutes as i64;
                *expected.entry(account(to)).or_default() += *minutes as i64;
            }
        }
        for (account, balance) in &expected {
            if *account == programme_account {
                continue; // the programme's issuance account is not an API account
            }
            assert_eq!(
                api.balance(&admin, *account).await,
                *balance,
                "cycle {cycle}: account {account} (seed {seed})"
            );
        }
        assert_eq!(api.ledger_size().await, size, "cycle {cycle}: ledger size");
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
        assert_eq!(cp.size, size, "cycle {cycle}: checkpoint size");
        server = Some(restarted);
    }
    println!(
        "{acknowledged} writes acknowledged over {CYCLES} kills; {retried} unanswered and sent \
         again, {replayed} of them committed before the kill (seed {seed})"
    );
}
