//! Impact reports: what the service computes is what an auditor re-derives from a signed export
//! of the same ledger size, byte for byte; partners read their own rows only.

use timecredits_audit::report::{report_file, Derived};
use timecredits_audit::trust::Trust;
use timecredits_domain::report::{write_csv, ReportSpec};
use timecredits_tests::client::{Api, Scheme};

/// The ledger's export of `size` entries, in a file of a new temporary directory (kept while
/// the directory lives), with the trust an auditor gives the service's key.
pub(crate) async fn exported(
    api: &Api,
    admin: &str,
    size: u64,
) -> (tempfile::TempDir, std::path::PathBuf, Trust) {
    let export = api
        .get(&format!("/v1/ledger/export?size={size}"), Some(admin))
        .await;
    export.expect(200);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.jsonl");
    std::fs::write(&path, &export.text).unwrap();
    let key = api.get("/v1/ledger/key", None).await;
    let trust = Trust::new(&[key.expect(200)["verifier_key"].as_str().unwrap()], None).unwrap();
    (dir, path, trust)
}

#[tokio::test]
async fn the_service_report_is_the_auditors_report_of_an_export_of_the_same_size() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(180).await;
    let bob = scheme.member(45).await;
    api.spend(&alice, &scheme.venue.key, 60).await;
    api.gift(&alice, bob.id, 30).await.expect(201);
    let earn = api.earn(&scheme.earner.key, bob.id, 15).await;
    api.reverse(&scheme.earner.key, earn["id"].as_str().unwrap())
        .await
        .expect(201);

    let query = "/v1/reports/impact?period=day&format=csv";
    let service = api.get(query, Some(&scheme.admin)).await;
    service.expect(200);
    assert_eq!(
        service.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    let size: u64 = service.header("ledger-size").unwrap().parse().unwrap();
    assert!(service.text.contains("earn,"), "{}", service.text);

    let (_dir, path, trust) = exported(api, &scheme.admin, size).await;
    let spec = ReportSpec {
        period: "day".parse().unwrap(),
        ..ReportSpec::default()
    };
    let Derived::Report(derived) = report_file(&path, &trust, &spec, None).unwrap() else {
        panic!("the export does not verify");
    };
    let mut auditors = Vec::new();
    write_csv(&derived, &mut auditors).unwrap();
    assert_eq!(String::from_utf8(auditors).unwrap(), service.text);
}

#[tokio::test]
async fn partners_read_their_own_rows_and_members_none() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let alice = scheme.member(120).await;
    api.spend(&alice, &scheme.venue.key, 60).await;

    let all = api.get("/v1/reports/impact", Some(&scheme.admin)).await;
    let rows = all.expect(200).as_array().unwrap().clone();
    assert!(rows.iter().any(|r| r["section"] == "scheme"), "{rows:?}");

    // The club's key gets its own rows only, whether it names itself or not.
    let own = api
        .get("/v1/reports/impact", Some(&scheme.earner.key))
        .await;
    let own_rows = own.expect(200).as_array().unwrap().clone();
    assert!(!own_rows.is_empty());
    let earner = scheme.earner.id.to_string();
    assert!(
        own_rows.iter().all(|r| r["partner"] == earner.as_str()),
        "{own_rows:?}"
    );
    let other = format!("/v1/reports/impact?partner={}", scheme.venue.id);
    api.get(&other, Some(&scheme.earner.key))
        .await
        .assert_problem(403, "forbidden");

    api.get("/v1/reports/impact", Some(&alice.credential))
        .await
        .assert_problem(403, "forbidden");
    api.get("/v1/reports/impact", None)
        .await
        .assert_problem(401, "unauthorized");
    for bad in [
        "period=fortnight",
        "format=xlsx",
        "tz=Mars/Base",
        "from=2026-02-01&to=2026-01-01",
    ] {
        api.get(&format!("/v1/reports/impact?{bad}"), Some(&scheme.admin))
            .await
            .assert_problem(400, "invalid_query");
    }
}
