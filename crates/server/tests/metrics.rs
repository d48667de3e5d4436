//! `/metrics`, request ids and the access log, read as a monitor and an operator would: every
//! figure the docs promise is there, `promtool check metrics` accepts the text, and each request
//! has one access-log line carrying its id.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

use common::{http, serve_json};

/// Series deploy/README.md documents, by name (the scrub's appear after the first scrub).
const DOCUMENTED: &[&str] = &[
    "timecredits_http_requests_total",
    "timecredits_http_request_duration_seconds_bucket",
    "timecredits_problems_total",
    "timecredits_ledger_entries",
    "timecredits_ledger_batch_requests_count",
    "timecredits_ledger_fsync_seconds_bucket",
    "timecredits_ledger_queued_requests",
    "timecredits_ledger_unapplied_entries",
    "timecredits_checkpoint_age_seconds",
    "timecredits_signing_key_age_seconds",
    "timecredits_writes_refused",
    "timecredits_data_dir_free_bytes",
    "timecredits_data_dir_size_bytes",
    "timecredits_journal_bytes",
    "timecredits_spend_codes_held",
    "timecredits_redemptions_remembered",
    "process_resident_memory_bytes",
];

#[test]
fn metrics_request_ids_and_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut service = serve_json(
        &["serve", "--listen", "127.0.0.1:0", "--log-format", "json"],
        &[("TIMECREDITS_DATA_DIR", data.to_str().unwrap())],
    );
    // A client's id is returned; a request without one (or with a hostile one) gets a new one.
    let (head, _) = http(
        &service.addr,
        "GET /healthz HTTP/1.1\r\nX-Request-Id: support-42\r\n",
    );
    assert!(head.contains("x-request-id: support-42"), "{head}");
    let (head, _) = http(
        &service.addr,
        "GET /v1/accounts/not-a-uuid HTTP/1.1\r\nX-Request-Id: <b>bad id</b>\r\n",
    );
    assert!(head.starts_with("http/1.1 4"), "{head}");
    let generated = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("a request id")
        .to_owned();
    assert_eq!(generated.len(), 36, "a new UUID: {generated}");
    let (_, _) = http(&service.addr, "GET /no/such/route/123 HTTP/1.1\r\n");

    let (head, text) = http(&service.addr, "GET /metrics HTTP/1.1\r\n");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    for name in DOCUMENTED {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    // Requests are counted by route pattern, never by raw path (no id becomes a label).
    assert!(text.contains(r#"route="/healthz",status="200"}"#), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(
        !text.contains("not-a-uuid") && !text.contains("/no/such"),
        "{text}"
    );
    assert!(
        text.contains(r#"timecredits_problems_total{code="not_found"} 1"#),
        "{text}"
    );
    assert!(text.contains("timecredits_ledger_entries 1"), "{text}");

    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut promtool) => {
            promtool
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let output = promtool.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "promtool check metrics refused the text:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Err(e) => eprintln!("SKIPPED promtool check metrics: promtool cannot run here ({e})"),
    }

    // One access-log line per request, with its id; never the query string.
    let mut ids = Vec::new();
    let mut line = String::new();
    while ids.len() < 4 {
        line.clear();
        assert!(
            service.log.read_line(&mut line).unwrap() > 0,
            "the log ended"
        );
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["target"] == "timecredits::access" {
            assert!(
                event["status"].is_u64() && event["micros"].is_u64(),
                "{line}"
            );
            ids.push(event["request_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids[0], "support-42");
    assert_eq!(ids[1], generated);
}
