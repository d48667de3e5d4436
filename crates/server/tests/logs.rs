//! The real `timecredits serve`, with its own logging: a client's mistakes (a malformed request,
//! bad JSON, a wrong credential, an unknown route) never reach the ERROR log.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Sends raw bytes and reads the answer until the server closes or a second passes.
fn raw(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn client_mistakes_are_not_logged_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_timecredits"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let addr = loop {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no start: {log}");
        log.push_str(&line);
        if let Some((_, rest)) = line.split_once("timecredits is listening addr=") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mistakes: [&[u8]; 4] = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"POST /v1/partners HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tck_wrong\r\nIdempotency-Key: k\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{oops",
        b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /v1/partners HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
    ];
    for request in mistakes {
        let answer = raw(&addr, request);
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    }
    // A well-formed request after them is still served.
    assert!(raw(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    log.push_str(&rest.join().unwrap());
    assert!(
        !log.contains("ERROR"),
        "client mistakes were logged as errors:\n{log}"
    );
}
