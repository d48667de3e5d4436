//! Helpers shared by the tests that run the `timecredits` binary.

#![allow(dead_code)] // each test file uses its own part of these helpers
#![allow(clippy::unwrap_used)] // test code: a panic is how it fails

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_timecredits");

/// `timecredits` with an empty environment but for what the test gives, so an operator's
/// variables cannot leak into the test.
pub fn timecredits(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command.env_clear().args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Sends one HTTP/1.1 request and returns the response's head (lowercased) and body.
pub fn http(addr: &str, request_head: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{request_head}Host: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_lowercase(), body.to_owned())
}

/// A `serve` child, killed when the test ends, however it ends.
pub struct Service {
    child: Child,
    /// The address it listens on.
    pub addr: String,
    /// Its log, for the lines after the start.
    pub log: BufReader<std::process::ChildStderr>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with a JSON log and returns it once its log says where it listens. Every
/// line read on the way must be one JSON object. The service goes on logging into the pipe
/// that [`Service`] holds.
pub fn serve_json(args: &[&str], env: &[(&str, &str)]) -> Service {
    let mut child = timecredits(args, env)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = BufReader::new(child.stderr.take().unwrap());
    let mut service = Service {
        child,
        addr: String::new(),
        log,
    };
    let mut line = String::new();
    while service.addr.is_empty() {
        line.clear();
        assert!(
            service.log.read_line(&mut line).unwrap() > 0,
            "the service exited"
        );
        let event: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert!(
            !line.contains('\u{1b}'),
            "colour codes in a JSON log: {line}"
        );
        if event["message"] == "timecredits is listening" {
            service.addr = event["addr"].as_str().unwrap().to_owned();
        }
    }
    service
}
