//! A bit flipped in the middle of the journal while the service was stopped: the background
//! scrub finds it right after the start, the service stops taking writes (nothing is appended
//! after known damage) and says why in `/readyz`, and an export that meets the damaged record
//! ends with a line that says it is incomplete instead of a silent cut.

use std::time::{Duration, Instant};

use timecredits_ledger::layout;
use timecredits_tests::client::Scheme;

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_bit_is_found_by_the_scrub_and_stops_writes_and_exports_say_so() {
    let mut scheme = Scheme::start().await;
    let member = scheme.member(60).await;
    for _ in 0..5 {
        scheme.api.earn(&scheme.earner.key, member.id, 10).await;
    }
    scheme.server.stop();
    let journal = scheme.server.data_dir().join(layout::JOURNAL);
    let mut bytes = std::fs::read(&journal).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&journal, bytes).unwrap();
    scheme.restart();
    let api = &scheme.api;

    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let ready = api.get("/readyz", None).await;
        if ready.status != 200 || Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ready.assert_problem(503, "unavailable");
    assert!(ready.text.contains("scrub found damage"), "{}", ready.text);

    let refused = api.earn_reply(&scheme.earner.key, member.id, 10).await;
    refused.assert_problem(503, "unavailable");

    let export = api.get("/v1/ledger/export", Some(&scheme.admin)).await;
    assert_eq!(export.status, 200);
    let last = export.text.lines().last().expect("some lines");
    let why = timecredits_domain::export::interruption(last.as_bytes())
        .unwrap_or_else(|| panic!("the export ends with {last:?}"));
    assert!(why.contains("checksum"), "{why}");
}
