//! Crash test: a child process commits earns and expiries from several threads and reports each
//! acknowledgement; it is killed with SIGKILL at random moments, over and over. After each kill the
//! store must reopen, hold every acknowledged entry, equal a replay of its entries under the ledger
//! rules, and carry a latest checkpoint that verifies and commits to exactly those entries.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use timecredits_domain::rules::{self, AccountState, Original};
use timecredits_domain::{AccountId, Entry, EntryBody, MovementKind};
use timecredits_ledger::Ledger;
use timecredits_testkit::ledger::{config, ORIGIN};
use timecredits_testkit::rng::{clock_seed, Rng};
use timecredits_tlog::checkpoint::open_checkpoint;
use timecredits_tlog::merkle::{leaf_hash, root_of_leaves};
use timecredits_tlog::note::NoteVerifier;

const CYCLES: usize = 25;

/// Runs the child until it has acknowledged something and a random delay has passed, then kills
/// it with SIGKILL. Returns the acknowledged (seq, key) pairs.
fn run_and_kill(dir: &Path, rng: &mut Rng) -> Vec<(u64, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-child"))
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acks = Vec::new();
    let delay = Duration::from_millis(20 + rng.below(400));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready_at = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(line) if line == "READY" => ready_at = Some(Instant::now()),
            Ok(line) => {
                let mut parts = line.split(' ');
                assert_eq!(
                    parts.next(),
                    Some("ACK"),
                    "unexpected child output {line:?}"
                );
                let seq = parts.next().unwrap().parse().unwrap();
                acks.push((seq, parts.next().unwrap().to_owned()));
            }
            Err(_) => {}
        }
        if ready_at.is_some_and(|t| t.elapsed() >= delay && !acks.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "child made no progress");
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    reader.join().unwrap();
    // Acknowledgements printed before the kill but not yet read still count.
    while let Ok(line) = rx.try_recv() {
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (seq, key) = rest.split_once(' ').unwrap();
            acks.push((seq.parse().unwrap(), key.to_owned()));
        }
    }
    acks
}

/// Replays every entry under the ledger rules, as an auditor would, and returns the balances.
fn replay(entries: &[Entry]) -> HashMap<AccountId, AccountState> {
    let mut accounts: HashMap<AccountId, AccountState> = HashMap::new();
    let mut reversed: HashMap<u64, u64> = HashMap::new();
    let mut last_use = HashMap::new();
    for entry in entries {
        let ids = entry.body.accounts();
        let current: Vec<Option<&AccountState>> = ids.iter().map(|id| accounts.get(id)).collect();
        let original = match &entry.body {
            EntryBody::Move(m) => m.reverses.map(|seq| Original {
                seq,
                movement: match &entries[seq as usize].body {
                    EntryBody::Move(o) => Some(o.clone()),
                    _ => None,
                },
                reversed_by: reversed.get(&seq).copied(),
            }),
            _ => None,
        };
        let used = rules::last_use_needed(entry).and_then(|id| last_use.get(&id).copied());
        let changes = rules::apply(entry, &current, original.as_ref(), used)
            .unwrap_or_else(|v| panic!("entry {} breaks a rule: {v}", entry.seq));
        for id in &ids {
            last_use.insert(*id, entry.recorded);
        }
        if let Some(orig) = original {
            reversed.insert(orig.seq, entry.seq);
        }
        for state in changes {
            accounts.insert(state.id, state);
        }
    }
    accounts
}

/// Checks the store in `dir` against what was acknowledged and a replay of its entries; returns
/// its size and how many of its entries are expiries.
fn verify_store(dir: &Path, acknowledged: &HashMap<u64, String>) -> (u64, usize) {
    let ledger = Ledger::open(dir, config()).expect("the store reopens after SIGKILL");
    let size = ledger.size().unwrap();
    let mut entries = Vec::with_capacity(size as usize);
    let mut leaves = Vec::with_capacity(size as usize);
    for seq in 0..size {
        let bytes = ledger.entry_bytes(seq).unwrap().expect("entry present");
        leaves.push(leaf_hash(&bytes));
        entries.push(Entry::decode(&bytes).expect("entry decodes"));
    }
    for (seq, key) in acknowledged {
        let entry = entries
            .get(*seq as usize)
            .unwrap_or_else(|| panic!("acknowledged entry {seq} was lost"));
        assert_eq!(
            entry.key.as_str(),
            key,
            "entry {seq} is not the acknowledged one"
        );
    }
    for (id, state) in replay(&entries) {
        assert_eq!(
            ledger.account(id).unwrap().as_ref(),
            Some(&state),
            "account {id} differs from the replay"
        );
    }
    let verifier = NoteVerifier::parse(&ledger.verifier_key()).unwrap();
    let signed = ledger.checkpoint().unwrap();
    let (cp, _) =
        open_checkpoint(signed.note.as_bytes(), ORIGIN, &[verifier]).expect("checkpoint verifies");
    assert_eq!(cp.size, size);
    assert_eq!(cp.root, root_of_leaves(leaves));
    let expiries = entries
        .iter()
        .filter(|e| matches!(&e.body, EntryBody::Move(m) if m.kind == MovementKind::Expire))
        .count();
    (size, expiries)
}

#[test]
fn acknowledged_entries_survive_sigkill() {
    let mut rng = Rng::new(clock_seed("crash test"));
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = HashMap::new();
    let (mut last_size, mut expiries) = (0, 0);
    for cycle in 0..CYCLES {
        let acks = run_and_kill(dir.path(), &mut rng);
        assert!(!acks.is_empty());
        acknowledged.extend(acks);
        let size;
        (size, expiries) = verify_store(dir.path(), &acknowledged);
        assert!(
            size >= last_size,
            "cycle {cycle}: the log shrank from {last_size} to {size}"
        );
        last_size = size;
    }
    // The load held expiries as well as earns (the child's clock makes their period pass).
    assert!(expiries > 0, "no expiry was committed");
    println!(
        "{} entries acknowledged over {CYCLES} kills; final size {last_size}, {expiries} expiries",
        acknowledged.len()
    );
}
