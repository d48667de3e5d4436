//! Helpers shared by the tests that run the `timecredits` binary.

#![allow(dead_code)] // each test file uses its own part of these helpers
#![allow(clippy::unwrap_used)] // test code: a panic is how it fails

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_timecredits");

/// `timecredits` with an empty environment but for what the test gives, so an operator's
/// variables cannot leak into the test.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
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
    let mut child = command(args, env)
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

/// A `timecredits serve` process (text log), killed when dropped (a failing test leaves none behind).
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `timecredits ARGS`: whether it succeeded, and what it printed.
pub fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_timecredits"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text =
        String::from_utf8(output.stderr).unwrap() + &String::from_utf8(output.stdout).unwrap();
    (output.status.success(), text)
}

/// `timecredits serve` on a free loopback port, once it listens.
pub fn serve(data: &Path) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_timecredits"))
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no start: {log}");
        log.push_str(&line);
        if line.contains("timecredits is listening") {
            break;
        }
    }
    // Keep draining the log so that the service never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Process(child)
}
