//! A backup taken while the service runs under load: writers earn credits over HTTP against a
//! server child process while `timecredits_server::backup::create` copies its data directory
//! from this (another) process. The backup is restored into a new directory and served: every
//! member's balance is the sum of the earns committed below the backup's tree size, its
//! checkpoint is of that size, and the live ledger's later checkpoint is consistent with it
//! (checked with the auditor's `check_consistency`).

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use timecredits_audit::{proofs::check_consistency, Trust};
use timecredits_testkit::rng::Rng;
use timecredits_tests::client::{proof_hashes, uuid, Api};
use timecredits_tests::server::ChildServer;
use timecredits_tlog::merkle::Hash;
use uuid::Uuid;

const WRITERS: u64 = 6;
const MEMBERS: usize = 4;

fn spawn(dir: &std::path::Path) -> ChildServer {
    ChildServer::spawn(env!("CARGO_BIN_EXE_server-child"), dir)
}

/// The signed checkpoint's note and its tree size.
async fn checkpoint(api: &Api) -> (String, u64) {
    let reply = api.get("/v1/ledger/checkpoint", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let size = reply.text.lines().nth(1).unwrap().parse().unwrap();
    (reply.text, size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_the_balances_and_tree_of_its_cut() {
    let live_dir = tempfile::tempdir().unwrap();
    let live = spawn(live_dir.path());
    let api = Api::new(live.base());
    let admin = live.admin_key().to_owned();
    let earner = api.create_partner(&admin, "Backup Club", &["earn"]).await;
    api.allocate(&admin, earner.id, 60_000_000).await;
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        members.push(api.register_member(&earner.key).await.id);
    }

    // Earns from several writers until told to stop: (seq, member, minutes) of each one.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (api, key, members, stop) = (
            api.clone(),
            earner.key.clone(),
            members.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (writer + 1));
            let mut earned: Vec<(u64, Uuid, i64)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let member = members[rng.below(MEMBERS as u64) as usize];
                let minutes = 1 + rng.below(120);
                let entry = api.earn(&key, member, minutes).await;
                earned.push((entry["seq"].as_u64().unwrap(), member, minutes as i64));
            }
            earned
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let archive_dir = tempfile::tempdir().unwrap();
    let archive = archive_dir.path().join("backup.tar.gz");
    let (from, to) = (live_dir.path().to_owned(), archive.clone());
    let backup = tokio::task::spawn_blocking(move || {
        timecredits_server::backup::create(&from, &to).unwrap()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    let mut earned = Vec::new();
    for writer in writers {
        earned.extend(writer.await.unwrap());
    }
    let cut = backup.manifest.entries;
    let before = earned.iter().filter(|(seq, _, _)| *seq < cut).count();
    assert!(
        before > 0 && before < earned.len(),
        "the backup ({cut} entries) was taken while earns were committed: {before} of {} before it",
        earned.len()
    );

    let restored_parent = tempfile::tempdir().unwrap();
    let restored_dir = restored_parent.path().join("data");
    let (from, into) = (archive.clone(), restored_dir.clone());
    let restored = tokio::task::spawn_blocking(move || {
        timecredits_server::backup::restore(&from, &into).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(restored.size, cut);
    let copy = spawn(&restored_dir);
    let copy_api = Api::new(copy.base());
    for member in &members {
        let expected: i64 = earned
            .iter()
            .filter(|(seq, m, _)| *seq < cut && m == member)
            .map(|(_, _, minutes)| minutes)
            .sum();
        assert_eq!(
            copy_api.balance(copy.admin_key(), *member).await,
            expected,
            "member {member}: the earns below the cut, no more, no less"
        );
    }

    // The copy's checkpoint is of the cut; the live ledger's later one extends it.
    let (copy_note, copy_size) = checkpoint(&copy_api).await;
    assert_eq!(copy_size, cut);
    let (live_note, live_size) = checkpoint(&api).await;
    assert!(live_size > cut);
    let key = api.get("/v1/ledger/key", None).await;
    let vkey = key.json["verifier_key"].as_str().unwrap().to_owned();
    let proof = api
        .get(
            &format!("/v1/ledger/consistency?from={cut}&to={live_size}"),
            None,
        )
        .await;
    assert_eq!(proof.status, 200, "{}", proof.text);
    let hashes: Vec<Hash> = proof_hashes(&proof.json["proof"]);
    let trust = Trust::new(&[vkey], None).unwrap();
    let old = trust.open(&copy_note).unwrap();
    let new = trust.open(&live_note).unwrap();
    check_consistency(&old, &new, &hashes)
        .unwrap()
        .expect("the live tree extends the restored one");
    // The registry came along: the restored service knows the partner and its members.
    let partner = copy_api
        .get(
            &format!("/v1/partners/{}", earner.id),
            Some(copy.admin_key()),
        )
        .await;
    assert_eq!(uuid(&partner.json["id"]), earner.id, "{}", partner.text);
}
