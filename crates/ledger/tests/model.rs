//! Model-based property test: random operations, restarts included, against a simple in-memory
//! model of balances. After every operation the ledger must agree with the model on what was
//! accepted and on every balance; balances must sum to zero, no floor may be broken, repeated
//! requests must change nothing, and the signed root must equal one recomputed from all entries.
//! Time passes too (a test clock), so that expiries (`expire`, 12 months) are sometimes due.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use timecredits_domain::{rules, AccountId, AccountKind, Entry, Intent, MovementKind};
use timecredits_ledger::{Ledger, Request};
use timecredits_testkit::intents::{fresh, transfer};
use timecredits_testkit::ledger::{balance, open_account, TestClock, ORIGIN};
use timecredits_tlog::checkpoint::open_checkpoint;
use timecredits_tlog::merkle::{leaf_hash, root_of_leaves};
use timecredits_tlog::note::NoteVerifier;
use uuid::Uuid;

const BUDGETS: usize = 2;
const VENUES: usize = 2;
const MEMBERS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Allocate {
        budget: usize,
        minutes: u64,
    },
    Earn {
        budget: usize,
        member: usize,
        minutes: u64,
    },
    Spend {
        member: usize,
        venue: usize,
        minutes: u64,
    },
    Gift {
        from: usize,
        to: usize,
        minutes: u64,
    },
    /// Retire credits from the n-th account that may retire: budgets, then venues, then members.
    Retire {
        from: usize,
        minutes: u64,
    },
    /// A member leaves: their whole balance retired and their wallet closed, in one request.
    Leave {
        member: usize,
    },
    /// Reverse the n-th movement committed so far (modulo their number).
    Reverse {
        nth: usize,
    },
    /// Earn for several members in one atomic request.
    GroupEarn {
        budget: usize,
        minutes: Vec<u64>,
    },
    /// Expire a member's whole balance (a policy of 12 months, as `transfer` gives).
    Expire {
        member: usize,
    },
    /// The clock moves forward this many days.
    Pass {
        days: i64,
    },
    /// Submit an earlier request again with its key.
    Repeat {
        nth: usize,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let minutes = 1u64..300;
    prop_oneof![
        // Credits in wallets, for expiries to take.
        3 => (0..BUDGETS, minutes.clone())
            .prop_map(|(budget, minutes)| Op::Allocate { budget, minutes }),
        3 => (0..BUDGETS, 0..MEMBERS, minutes.clone()).prop_map(|(budget, member, minutes)| Op::Earn {
            budget,
            member,
            minutes
        }),
        1 => (0..MEMBERS, 0..VENUES, minutes.clone()).prop_map(|(member, venue, minutes)| Op::Spend {
            member,
            venue,
            minutes
        }),
        1 => (0..MEMBERS, 0..MEMBERS, minutes.clone()).prop_map(|(from, to, minutes)| Op::Gift {
            from,
            to,
            minutes
        }),
        1 => (0..BUDGETS + VENUES + MEMBERS, minutes.clone())
            .prop_map(|(from, minutes)| Op::Retire { from, minutes }),
        1 => (0..MEMBERS).prop_map(|member| Op::Leave { member }),
        1 => any::<usize>().prop_map(|nth| Op::Reverse { nth }),
        1 => (0..BUDGETS, proptest::collection::vec(minutes, 1..=MEMBERS))
            .prop_map(|(budget, minutes)| Op::GroupEarn { budget, minutes }),
        1 => any::<usize>().prop_map(|nth| Op::Repeat { nth }),
        // Often enough, and far enough, that some wallets come due (and some are used first).
        3 => (0..MEMBERS).prop_map(|member| Op::Expire { member }),
        2 => (0i64..800).prop_map(|days| Op::Pass { days }),
        1 => Just(Op::Restart),
    ]
}

/// A committed movement as the model remembers it.
struct ModelMove {
    seq: u64,
    debit: AccountId,
    credit: AccountId,
    minutes: i64,
    reversible: bool,
}

struct Model {
    balances: HashMap<AccountId, i64>,
    programme: AccountId,
    closed: HashSet<AccountId>,
    moves: Vec<ModelMove>,
    /// When an entry last named each account.
    last_use: HashMap<AccountId, DateTime<Utc>>,
}

impl Model {
    fn floor_ok(&self, balances: &HashMap<AccountId, i64>) -> bool {
        balances
            .iter()
            .all(|(a, b)| *a == self.programme || *b >= 0)
    }

    /// Remembers a committed movement, reversible.
    fn moved(&mut self, seq: u64, debit: AccountId, credit: AccountId, minutes: i64) {
        self.moves.push(ModelMove {
            seq,
            debit,
            credit,
            minutes,
            reversible: true,
        });
    }

    /// Notes the accounts `entries` touch as used when they were recorded.
    fn touch(&mut self, entries: &[Entry]) {
        for entry in entries {
            for account in entry.body.accounts() {
                self.last_use.insert(account, entry.recorded);
            }
        }
    }

    /// Whether the rules allow an expiry of `wallet` recorded at `at` (12 months).
    fn expiry_due(&self, wallet: AccountId, at: DateTime<Utc>) -> bool {
        rules::unused_since(at, 12).is_some_and(|since| self.last_use[&wallet] <= since)
    }

    /// Applies movements (debit, credit, minutes) atomically if no floor breaks and no account
    /// is closed.
    fn try_apply(&mut self, moves: &[(AccountId, AccountId, i64)]) -> bool {
        let mut next = self.balances.clone();
        for (debit, credit, minutes) in moves {
            if debit == credit || self.closed.contains(debit) || self.closed.contains(credit) {
                return false;
            }
            *next.get_mut(debit).unwrap() -= minutes;
            *next.get_mut(credit).unwrap() += minutes;
        }
        if !self.floor_ok(&next) {
            return false;
        }
        self.balances = next;
        true
    }
}

struct World {
    dir: tempfile::TempDir,
    ledger: Option<Ledger>,
    budgets: Vec<AccountId>,
    venues: Vec<AccountId>,
    members: Vec<AccountId>,
    actor: Uuid,
    sent: Vec<(Request, Vec<u64>)>,
    clock: TestClock,
}

impl World {
    fn ledger(&self) -> &Ledger {
        self.ledger.as_ref().unwrap()
    }
}

fn check(world: &World, model: &Model) -> Result<(), TestCaseError> {
    let ledger = world.ledger();
    let mut sum = 0;
    for (account, expected) in &model.balances {
        let actual = balance(ledger, *account);
        prop_assert_eq!(actual, *expected, "balance of {}", account);
        sum += actual;
    }
    prop_assert_eq!(sum, 0);
    let n = ledger.size().unwrap();
    let leaves = (0..n).map(|i| leaf_hash(&ledger.entry_bytes(i).unwrap().unwrap()));
    let verifier = NoteVerifier::parse(&ledger.verifier_key()).unwrap();
    let signed = ledger.checkpoint().unwrap();
    let (cp, _) = open_checkpoint(signed.note.as_bytes(), ORIGIN, &[verifier]).unwrap();
    prop_assert_eq!(cp.size, n);
    prop_assert_eq!(cp.root, root_of_leaves(leaves));
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::default();
    let ledger = Ledger::open(dir.path(), clock.config()).unwrap();
    let budgets: Vec<_> = (0..BUDGETS)
        .map(|_| open_account(&ledger, AccountKind::Budget))
        .collect();
    let venues: Vec<_> = (0..VENUES)
        .map(|_| open_account(&ledger, AccountKind::Venue))
        .collect();
    let members: Vec<_> = (0..MEMBERS)
        .map(|_| open_account(&ledger, AccountKind::Member))
        .collect();
    let programme = ledger.programme_account();
    let mut model = Model {
        balances: HashMap::new(),
        programme,
        closed: HashSet::new(),
        moves: Vec::new(),
        last_use: HashMap::new(),
    };
    for a in budgets
        .iter()
        .chain(&venues)
        .chain(&members)
        .chain([&programme])
    {
        model.balances.insert(*a, 0);
        let opened = ledger.account(*a).unwrap().unwrap().opened;
        model.touch(&[ledger.entry(opened).unwrap().unwrap()]);
    }
    let mut world = World {
        dir,
        ledger: Some(ledger),
        budgets,
        venues,
        members,
        actor: Uuid::now_v7(),
        sent: Vec::new(),
        clock,
    };

    for op in ops {
        let (b, v, m) = (&world.budgets, &world.venues, &world.members);
        let moves: Vec<(MovementKind, AccountId, AccountId, u64)> = match &op {
            Op::Allocate { budget, minutes } => {
                vec![(MovementKind::Allocate, programme, b[*budget], *minutes)]
            }
            Op::Earn {
                budget,
                member,
                minutes,
            } => vec![(MovementKind::Earn, b[*budget], m[*member], *minutes)],
            Op::Spend {
                member,
                venue,
                minutes,
            } => vec![(MovementKind::Spend, m[*member], v[*venue], *minutes)],
            Op::Gift { from, to, minutes } => {
                vec![(MovementKind::Gift, m[*from], m[*to], *minutes)]
            }
            Op::Retire { from, minutes } => {
                let sources: Vec<_> = b.iter().chain(v).chain(m).collect();
                vec![(MovementKind::Retire, *sources[*from], programme, *minutes)]
            }
            Op::GroupEarn { budget, minutes } => minutes
                .iter()
                .enumerate()
                .map(|(i, minutes)| (MovementKind::Earn, b[*budget], m[i], *minutes))
                .collect(),
            Op::Reverse { .. }
            | Op::Repeat { .. }
            | Op::Restart
            | Op::Leave { .. }
            | Op::Expire { .. }
            | Op::Pass { .. } => vec![],
        };
        match op {
            Op::Restart => {
                drop(world.ledger.take());
                world.ledger = Some(Ledger::open(world.dir.path(), world.clock.config()).unwrap());
            }
            Op::Pass { days } => world.clock.advance(TimeDelta::days(days)),
            Op::Expire { member } => {
                let wallet = world.members[member];
                let held = model.balances[&wallet];
                if held <= 0 {
                    continue;
                }
                let intent = transfer(MovementKind::Expire, wallet, programme, held as u64);
                let request = Request::single(world.actor, fresh(), intent);
                // The entry's time is read by the ledger between these two.
                let now = || world.clock.clock().now();
                let before = now();
                let result = world.ledger().submit_blocking(request.clone());
                let after = now();
                let (due_before, due_after) = (
                    model.expiry_due(wallet, before),
                    model.expiry_due(wallet, after),
                );
                if due_before == due_after {
                    prop_assert_eq!(result.is_ok(), due_before, "{:?}: {:?}", op, result);
                }
                if let Ok(c) = result {
                    prop_assert!(model.expiry_due(wallet, c.entries[0].recorded));
                    prop_assert!(model.try_apply(&[(wallet, programme, held)]));
                    model.moved(c.entries[0].seq, wallet, programme, held);
                    model.touch(&c.entries);
                    world.sent.push((request, vec![c.entries[0].seq]));
                }
            }
            Op::Repeat { nth } => {
                if world.sent.is_empty() {
                    continue;
                }
                let (request, seqs) = world.sent[nth % world.sent.len()].clone();
                let size = world.ledger().size().unwrap();
                let again = world.ledger().submit_blocking(request).unwrap();
                prop_assert!(again.replayed);
                prop_assert_eq!(
                    again.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
                    seqs
                );
                prop_assert_eq!(world.ledger().size().unwrap(), size);
            }
            Op::Leave { member } => {
                let wallet = world.members[member];
                let left = model.balances[&wallet];
                let mut intents = Vec::new();
                if left > 0 {
                    intents.push(transfer(
                        MovementKind::Retire,
                        wallet,
                        programme,
                        left as u64,
                    ));
                }
                intents.push(Intent::Close { account: wallet });
                let request = Request {
                    actor: world.actor,
                    key: fresh(),
                    intents,
                };
                let result = world.ledger().submit_blocking(request.clone());
                let expected = !model.closed.contains(&wallet);
                prop_assert_eq!(result.is_ok(), expected, "{:?}: {:?}", op, result);
                if let Ok(c) = result {
                    if left > 0 {
                        model.try_apply(&[(wallet, programme, left)]);
                        model.moved(c.entries[0].seq, wallet, programme, left);
                    }
                    model.closed.insert(wallet);
                    model.touch(&c.entries);
                    world
                        .sent
                        .push((request, c.entries.iter().map(|e| e.seq).collect()));
                }
            }
            Op::Reverse { nth } => {
                if model.moves.is_empty() {
                    continue;
                }
                let i = nth % model.moves.len();
                let target = &model.moves[i];
                let (seq, debit, credit, minutes, reversible) = (
                    target.seq,
                    target.debit,
                    target.credit,
                    target.minutes,
                    target.reversible,
                );
                let request = Request::single(
                    world.actor,
                    fresh(),
                    Intent::Reverse {
                        entry: seq,
                        reference: None,
                    },
                );
                let result = world.ledger().submit_blocking(request.clone());
                let expected = reversible && model.try_apply(&[(credit, debit, minutes)]);
                prop_assert_eq!(result.is_ok(), expected, "reverse {}: {:?}", seq, result);
                if let Ok(c) = result {
                    model.moves[i].reversible = false;
                    model.touch(&c.entries);
                    model.moves.push(ModelMove {
                        seq: c.entries[0].seq,
                        debit: credit,
                        credit: debit,
                        minutes,
                        reversible: false,
                    });
                    world.sent.push((request, vec![c.entries[0].seq]));
                }
            }
            _ => {
                let request = Request {
                    actor: world.actor,
                    key: fresh(),
                    intents: moves
                        .iter()
                        .map(|(k, d, c, mins)| transfer(*k, *d, *c, *mins))
                        .collect(),
                };
                let result = world.ledger().submit_blocking(request.clone());
                let triples: Vec<_> = moves
                    .iter()
                    .map(|(_, d, c, mins)| (*d, *c, *mins as i64))
                    .collect();
                let expected = model.try_apply(&triples);
                prop_assert_eq!(result.is_ok(), expected, "{:?}: {:?}", op, result);
                if let Ok(c) = result {
                    for (entry, (_, d, cr, mins)) in c.entries.iter().zip(&moves) {
                        model.moved(entry.seq, *d, *cr, *mins as i64);
                    }
                    model.touch(&c.entries);
                    world
                        .sent
                        .push((request, c.entries.iter().map(|e| e.seq).collect()));
                }
            }
        }
        check(&world, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn the_ledger_agrees_with_a_simple_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
