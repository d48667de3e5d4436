//! Limits, from outside, on loopback with small limits and bounded loops: request rates per
//! credential and per address (429 `rate_limited` with `Retry-After`), the body read timeout
//! (slow-loris), the connection cap, the batch body limit that fits 1,000 maximal items, and
//! the POSTs that take no body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use timecredits_tests::client::{new_key, Api, Reply, Scheme};
use timecredits_tests::server::TestServer;

/// Sends `count` GETs of `path` one after the other and returns the first refusal, if any.
async fn first_refusal(api: &Api, path: &str, token: Option<&str>, count: usize) -> Option<Reply> {
    for _ in 0..count {
        let reply = api.get(path, token).await;
        if reply.status != 200 {
            return Some(reply);
        }
    }
    None
}

#[track_caller]
fn assert_rate_limited(reply: &Reply) -> u64 {
    reply.assert_problem(429, "rate_limited");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    let retry_after: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {:?}", reply.headers));
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    retry_after
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let scheme = Scheme::start_with(|s| {
        s.limits.per_key_per_second = 5;
        s.limits.per_key_burst = 5;
    })
    .await;
    let api = &scheme.api;
    // The setup's own requests used the administrator's bucket: it refills in a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = first_refusal(api, "/v1/me", Some(&scheme.admin), 20)
        .await
        .expect("the sixth request in a second is refused");
    let retry_after = assert_rate_limited(&refused);
    // Another credential has its own bucket.
    api.get("/v1/me", Some(&scheme.earner.key))
        .await
        .expect(200);
    // After the delay, the credential is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    api.get("/v1/me", Some(&scheme.admin)).await.expect(200);
    // An unknown credential is counted too, so guessing is throttled as well.
    let refused = first_refusal(api, "/v1/me", Some("tck_guess"), 20)
        .await
        .unwrap();
    refused.assert_problem(401, "unauthorized");
    let mut last = refused;
    for _ in 0..20 {
        last = api.get("/v1/me", Some("tck_guess")).await;
        if last.status == 429 {
            break;
        }
    }
    assert_rate_limited(&last);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_over_its_rate_gets_429_but_health_checks_are_never_limited() {
    let server = TestServer::start_with(|s| {
        s.limits.per_address_per_second = 5;
        s.limits.per_address_burst = 5;
    });
    let api = Api::new(server.base());
    assert!(first_refusal(&api, "/healthz", None, 20).await.is_none());
    let refused = first_refusal(&api, "/v1/ledger/checkpoint", None, 20)
        .await
        .expect("the sixth request in a second is refused");
    assert_rate_limited(&refused);
    assert!(first_refusal(&api, "/healthz", None, 5).await.is_none());
}

/// A raw connection to `base` (`http://host:port`), reading with a timeout.
fn connect(base: &str, timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect(base.strip_prefix("http://").unwrap()).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream
}

/// Reads what arrives until the peer closes or the read times out.
fn read_some(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && !answer.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_trickled_slower_than_the_timeout_is_cut_off() {
    let scheme = Scheme::start_with(|s| s.limits.body_timeout = Duration::from_secs(1)).await;
    let member = scheme.member(0).await;
    let base = scheme.api.base().to_owned();
    let key = scheme.earner.key.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = connect(&base, Duration::from_secs(5));
        let body =
            json!({"member_id": member.id, "minutes": 1, "activity": "trickled"}).to_string();
        let head = format!(
            "POST /v1/earn HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Idempotency-Key: slow-1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let started = Instant::now();
        // A byte every 300 ms: the whole body would take far longer than the timeout.
        for byte in body.as_bytes().iter().take(10) {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let answer = read_some(&mut stream);
        (answer, started.elapsed())
    })
    .await
    .unwrap();
    let (answer, elapsed) = answer;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // Nothing was recorded.
    let history = scheme
        .api
        .get(
            &format!("/v1/accounts/{}/entries", member.id),
            Some(&scheme.admin),
        )
        .await;
    assert_eq!(
        history.expect(200)["entries"].as_array().unwrap().len(),
        1,
        "only its open entry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let server = TestServer::start_with(|s| {
        s.workers = 1;
        s.limits.max_connections = 2;
    });
    let base = server.base().to_owned();
    tokio::task::spawn_blocking(move || {
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut open: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut stream = connect(&base, Duration::from_secs(2));
                stream.write_all(request).unwrap();
                assert!(read_some(&mut stream).starts_with("HTTP/1.1 200"));
                stream
            })
            .collect();
        // A third connection is not served while two are open...
        let mut third = connect(&base, Duration::from_millis(700));
        third.write_all(request).unwrap();
        assert_eq!(read_some(&mut third), "", "served beyond the cap");
        // ...and is once one of them closes.
        drop(open.pop());
        third
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let answer = read_some(&mut third);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_1000_items_of_maximal_size_fits() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let member = scheme.member(0).await;
    let today = chrono::Utc::now().date_naive().to_string();
    // 200 bytes of UTF-8 in each text (4-byte characters), the longest a text may be.
    let text = "\u{1F600}".repeat(50);
    let item = |hours: u64, minutes: u64| {
        json!({"member_id": member.id, "hours": hours, "minutes": minutes, "activity": text,
               "date_given": today, "reference": text})
    };
    let maximal = json!({"items": vec![item(999_999, 59); 1000]});
    let bytes = maximal.to_string().len();
    assert!(
        bytes > 4 * 64 * 1024,
        "{bytes} bytes: far over the 64 KiB of other routes"
    );
    // Read whole and judged on its content (the largest amount a movement may have): the
    // budget does not cover it.
    let reply = api
        .post("/v1/earn/batch", Some(&scheme.earner.key), Some(&maximal))
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    // The same size within the budget is recorded, all 1,000.
    let fits = json!({"items": vec![item(1, 59); 1000]});
    let reply = api
        .post("/v1/earn/batch", Some(&scheme.earner.key), Some(&fits))
        .await;
    assert_eq!(reply.expect(201)["entries"].as_array().unwrap().len(), 1000);
    // Beyond the batch limit, 413.
    let mut huge = fits.clone();
    huge["items"][0]["activity"] = json!("x".repeat(timecredits_server::MAX_BATCH_BODY_BYTES));
    api.post("/v1/earn/batch", Some(&scheme.earner.key), Some(&huge))
        .await
        .assert_problem(413, "payload_too_large");
}

#[tokio::test(flavor = "multi_thread")]
async fn sheets_of_1000_rows_of_maximal_size_fit() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let member = scheme.member(0).await;
    let today = chrono::Utc::now().date_naive().to_string();
    // The longest a text may be in CSV: 200 quotation marks, each doubled, the field quoted.
    let text = format!("\"{}\"", "\"\"".repeat(200));
    let sheet = |hours: &str| {
        let row = format!("{},{hours},{text},{text},{today}\r\n", member.id);
        format!(
            "member_id,hours,activity,reference,date_given\r\n{}",
            row.repeat(1000)
        )
    };
    // The longest amount, as the longest hours a sheet may hold.
    let maximal = sheet("999999.000000000000000000");
    assert!(maximal.len() > 4 * 64 * 1024, "{} bytes", maximal.len());
    let key = &scheme.earner.key;
    // Read whole and judged on its content: the budget does not cover it.
    let reply = crate::sheets::upload(api, Some(key), &new_key(), &maximal).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let fits = crate::sheets::upload(api, Some(key), &new_key(), &sheet("1:59")).await;
    assert_eq!(fits.expect(201)["entries"].as_array().unwrap().len(), 1000);
    // So does a registration sheet of 1,000 of the longest references.
    let references = format!("reference\r\n{}", format!("{text}\r\n").repeat(1000));
    let registered =
        crate::sheets::upload_to("/v1/members/batch", api, Some(key), &new_key(), &references)
            .await;
    assert_eq!(
        registered.expect(201)["members"].as_array().unwrap().len(),
        1000
    );
    // Beyond the batch limit, 413.
    let huge = "x".repeat(timecredits_server::MAX_BATCH_BODY_BYTES + 1);
    crate::sheets::upload(api, Some(key), &new_key(), &huge)
        .await
        .assert_problem(413, "payload_too_large");
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_that_take_no_body_refuse_one() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let (key_id, _) = api
        .create_key(&scheme.admin, json!({"kind": "administrator"}))
        .await;
    let member = scheme.member(0).await;
    let paths = [
        format!("/v1/api-keys/{key_id}/revoke"),
        format!("/v1/accounts/{}/close", member.id),
        "/v1/members".to_owned(),
        "/v1/key-rotations".to_owned(),
    ];
    for path in &paths {
        for body in [json!({}), json!({"x": "y".repeat(1000)})] {
            let reply = api.post(path, Some(&scheme.admin), Some(&body)).await;
            reply.assert_problem_for(path, 413, "body_not_allowed");
        }
        // A chunked body of unknown length is refused before it is read.
        let base = api.base().to_owned();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Idempotency-Key: chunked\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n2\r\n{{}}\r\n",
            scheme.admin
        );
        let answer = tokio::task::spawn_blocking(move || {
            let mut stream = connect(&base, Duration::from_secs(5));
            stream.write_all(head.as_bytes()).unwrap();
            read_some(&mut stream)
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("\"body_not_allowed\""), "{path}: {answer}");
    }
    // Without a body they work.
    api.post("/v1/key-rotations", Some(&scheme.admin), None)
        .await
        .expect(201);
}
