//! `timecredits-audit report` on a real ledger's export: the report adds up to the ledger's own
//! state, and its CSV is byte for byte what the domain's report code computes over the ledger's
//! entries, which is what the service serves.

#![allow(clippy::unwrap_used)] // test code: a panic is how it fails

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use chrono::NaiveDate;
use timecredits_domain::report::{report, write_csv, Figure, Report, ReportSpec, Section};
use timecredits_domain::{AccountId, AccountKind, EntryBody, Intent, MovementKind};
use timecredits_ledger::{ExportRange, Ledger};
use timecredits_testkit::intents::{text, transfer_on};
use timecredits_testkit::ledger::{balance, entries, open, open_account, submit};
use timecredits_testkit::synthetic::{spread, History};
use uuid::Uuid;

/// A ledger of several partners, venues and members over four months, with every movement kind,
/// gifts, reversals of an earn (in its own month and in a later one), of a spend, a gift and an
/// allocation, a retirement and a closure.
struct Fixture {
    dir: tempfile::TempDir,
    ledger: Ledger,
    budgets: Vec<AccountId>,
    members: Vec<AccountId>,
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

impl Fixture {
    fn new() -> Fixture {
        use MovementKind::*;
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(&dir.path().join("data"));
        let admin = Uuid::now_v7();
        let programme = ledger.programme_account();
        let budgets: Vec<_> = (0..3)
            .map(|_| open_account(&ledger, AccountKind::Budget))
            .collect();
        let venues: Vec<_> = (0..2)
            .map(|_| open_account(&ledger, AccountKind::Venue))
            .collect();
        let members: Vec<_> = (0..6)
            .map(|_| open_account(&ledger, AccountKind::Member))
            .collect();
        let go = |intent: Intent| submit(&ledger, admin, intent).unwrap().entries[0].seq;
        let reverse = |seq: u64| {
            go(Intent::Reverse {
                entry: seq,
                reference: Some(text("correction")),
            })
        };
        for (i, budget) in budgets.iter().enumerate() {
            go(transfer_on(
                Allocate,
                programme,
                *budget,
                3000 * (i as u64 + 1),
                day("2026-08-03"),
                "",
            ));
        }
        let months = ["2026-08", "2026-09", "2026-10", "2026-11"];
        let activities = ["lunch club", "gardening, \"allotment\"", "befriending"];
        let mut n = 0u64;
        let mut earns = Vec::new();
        for month in months {
            for (m, member) in members.iter().enumerate().take(5) {
                n += 1;
                let on = day(&format!("{month}-{:02}", 1 + (n * 7) % 27));
                let b = (m + n as usize) % budgets.len();
                let activity = activities[(n as usize) % activities.len()];
                earns.push(go(transfer_on(
                    Earn,
                    budgets[b],
                    *member,
                    30 + 15 * (n % 5),
                    on,
                    activity,
                )));
                if m % 2 == 0 {
                    go(transfer_on(
                        Spend,
                        *member,
                        venues[m % 2],
                        30,
                        on,
                        "swimming",
                    ));
                }
            }
            let on = day(&format!("{month}-20"));
            go(transfer_on(Gift, members[1], members[2], 15, on, ""));
        }
        // Reversals: an earn, of its own month and a later one; a spend, a gift, an allocation.
        reverse(earns[7]);
        reverse(earns[0]);
        let spend = go(transfer_on(
            Spend,
            members[3],
            venues[1],
            15,
            day("2026-11-02"),
            "cinema",
        ));
        reverse(spend);
        let gift = go(transfer_on(
            Gift,
            members[3],
            members[5],
            15,
            day("2026-11-03"),
            "",
        ));
        reverse(gift);
        let allocation = go(transfer_on(
            Allocate,
            programme,
            budgets[0],
            600,
            day("2026-11-04"),
            "",
        ));
        reverse(allocation);
        go(transfer_on(
            Retire,
            venues[0],
            programme,
            60,
            day("2026-11-05"),
            "",
        ));
        go(Intent::Close {
            account: members[5],
        });
        Fixture {
            dir,
            ledger,
            budgets,
            members,
        }
    }

    fn export(&self) -> String {
        let path = self.dir.path().join("export.jsonl");
        let mut out = std::fs::File::create(&path).unwrap();
        let export = self.ledger.export(ExportRange::default()).unwrap();
        export.write_to(&self.ledger, &mut out).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// The CSV the service computes: the domain's report over the ledger's own entries.
    fn csv(&self, spec: &ReportSpec) -> String {
        let report = report(entries(&self.ledger), spec).unwrap();
        let mut out = Vec::new();
        write_csv(&report, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }
}

fn audit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_timecredits-audit"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Sums `figure` over the rows of `section`.
fn total(report: &Report, section: Section, figure: Figure) -> i64 {
    report
        .rows
        .iter()
        .filter(|r| r.section == section && r.figure == figure)
        .map(|r| r.value)
        .sum()
}

/// The stock `figure` of the last period.
fn at_end(report: &Report, section: Section, partner: Option<Uuid>, figure: Figure) -> i64 {
    report
        .rows
        .iter()
        .rfind(|r| r.section == section && r.partner == partner && r.figure == figure)
        .unwrap()
        .value
}

#[test]
fn the_audit_report_is_the_services_byte_for_byte() {
    let f = Fixture::new();
    let export = f.export();
    let key = f.ledger.verifier_key();
    let (code, stdout, stderr) = audit(&["report", "--key", &key, &export]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    assert_eq!(stdout, f.csv(&ReportSpec::default()));
    assert!(
        stdout.contains(",\"gardening, \"\"allotment\"\"\","),
        "{stdout}"
    );

    // The options reach the same spec.
    let owner = f
        .ledger
        .account(f.budgets[1])
        .unwrap()
        .unwrap()
        .owner
        .unwrap();
    let spec = ReportSpec {
        period: "week".parse().unwrap(),
        basis: "recorded".parse().unwrap(),
        zone: "Europe/London".parse().unwrap(),
        from: Some(day("2026-09-01")),
        to: Some(day("2026-12-31")),
        partner: Some(owner),
        activity: None,
    };
    let owner = owner.to_string();
    let args = [
        "report",
        "--key",
        &key,
        "--period",
        "week",
        "--date",
        "recorded",
        "--tz",
        "Europe/London",
        "--from",
        "2026-09-01",
        "--to",
        "2026-12-31",
        "--partner",
        &owner,
        &export,
    ];
    let (code, stdout, _) = audit(&args);
    assert_eq!(code, 0);
    assert_eq!(stdout, f.csv(&spec));
    assert!(stdout.lines().skip(1).all(|line| line.contains(&owner)));

    let (code, stdout, _) = audit(&["report", "--key", &key, "--format", "json", &export]);
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        rows.len(),
        f.csv(&ReportSpec::default()).lines().count() - 1
    );
}

#[test]
fn a_long_synthetic_history_reports_the_same_through_the_audit() {
    // 10,000 entries over about three and a half days (one every 30 seconds): every day has many
    // partners, members and reversals.
    let history: Vec<_> = spread(History::new(3).take(10_000), 30).collect();
    let signer = common::signer();
    let file = common::ExportFile::of_entries(&signer, &history);
    let key = signer.verifier().to_vkey();
    let spec = ReportSpec {
        period: "day".parse().unwrap(),
        ..ReportSpec::default()
    };
    let mut expected = Vec::new();
    write_csv(&report(&history, &spec).unwrap(), &mut expected).unwrap();
    let path = file.path.to_str().unwrap();
    let (code, stdout, stderr) = audit(&["report", "--key", &key, "--period", "day", path]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.as_bytes(), expected);
    assert!(stdout.lines().filter(|l| l.contains(",scheme,")).count() > 3 * 4);
}

#[test]
fn the_report_adds_up_to_the_ledger() {
    let f = Fixture::new();
    let entries = entries(&f.ledger);
    let r = report(&entries, &ReportSpec::default()).unwrap();

    // What members received by earns, less what reversals of earns took back, from the entries.
    let mut moves = HashMap::new();
    let mut earned = 0i64;
    for e in &entries {
        if let EntryBody::Move(m) = &e.body {
            let minutes = m.minutes.as_balance();
            match (m.kind, m.reverses.and_then(|s| moves.get(&s))) {
                (MovementKind::Earn, _) => earned += minutes,
                (MovementKind::Reverse, Some(MovementKind::Earn)) => earned -= minutes,
                _ => {}
            }
            moves.insert(e.seq, m.kind);
        }
    }
    let given = total(&r, Section::Earn, Figure::GivenMinutes);
    let reversed = total(&r, Section::Earn, Figure::ReversedMinutes);
    assert_eq!(given - reversed, earned);
    assert_eq!(total(&r, Section::Earn, Figure::NetMinutes), earned);
    assert_eq!(total(&r, Section::Budget, Figure::UsedMinutes), earned);
    assert!(reversed > 0, "the fixture reverses earns");

    // Stocks at the end are the ledger's own balances.
    let members: i64 = f.members.iter().map(|m| balance(&f.ledger, *m)).sum();
    assert_eq!(
        at_end(&r, Section::Scheme, None, Figure::CirculationMinutes),
        members
    );
    let programme = balance(&f.ledger, f.ledger.programme_account());
    assert_eq!(
        at_end(&r, Section::Scheme, None, Figure::IssuedMinutes),
        -programme
    );
    for budget in &f.budgets {
        let owner = f.ledger.account(*budget).unwrap().unwrap().owner;
        assert_eq!(
            at_end(&r, Section::Budget, owner, Figure::LeftMinutes),
            balance(&f.ledger, *budget)
        );
    }

    // Members new to the scheme: each member that ever earned, once.
    assert_eq!(total(&r, Section::Earn, Figure::MembersNew), 5);
    // Every reversal is counted once in the reversal section, and once where it belongs.
    let reversals = entries
        .iter()
        .filter(|e| matches!(&e.body, EntryBody::Move(m) if m.kind == MovementKind::Reverse))
        .count() as i64;
    assert_eq!(total(&r, Section::Reversal, Figure::Reversals), reversals);
    let gifts = total(&r, Section::Gift, Figure::Gifts);
    assert_eq!(gifts, 5);
    assert_eq!(total(&r, Section::Gift, Figure::ReversedMinutes), 15);
}

#[test]
fn an_export_that_does_not_verify_gives_no_report() {
    let f = Fixture::new();
    let export = f.export();
    let key = f.ledger.verifier_key();
    let text = std::fs::read_to_string(&export).unwrap();
    let tampered = Path::new(&export).with_file_name("tampered.jsonl");
    std::fs::write(
        &tampered,
        text.replacen("\"minutes\":30,", "\"minutes\":31,", 1),
    )
    .unwrap();
    let (code, stdout, _) = audit(&["report", "--key", &key, tampered.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.starts_with("INVALID: "), "{stdout}");
    assert!(!stdout.contains("period,section"), "{stdout}");

    // A partial export cannot be reported on: the accounts are opened before it.
    let partial = Path::new(&export).with_file_name("partial.jsonl");
    let mut out = std::fs::File::create(&partial).unwrap();
    let range = ExportRange {
        from: 3,
        size: None,
    };
    f.ledger
        .export(range)
        .unwrap()
        .write_to(&f.ledger, &mut out)
        .unwrap();
    let (code, stdout, stderr) = audit(&["report", "--key", &key, partial.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(stderr.contains("a report needs a full export"), "{stderr}");
}
