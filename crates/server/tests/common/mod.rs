//! Helpers of the tests that run the real `timecredits` binary.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails
#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A `timecredits serve` process, killed when dropped (a failing test leaves none behind).
pub struct Service(pub Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `timecredits ARGS`: whether it succeeded, and what it printed.
pub fn timecredits(args: &[&str]) -> (bool, String) {
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
pub fn serve(data: &Path) -> Service {
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
    Service(child)
}
