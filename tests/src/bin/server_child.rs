//! The REST service as a process for the tests that kill or stop it: serves the data directory
//! given as its argument on a free loopback port, prints `LISTENING <address>` once it listens,
//! and stops gracefully on SIGTERM (exit status 0), as `timecredits serve` does.
//!
//! Usage: `server-child DATA_DIR`.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

use std::io::Write;

use timecredits_tests::server::test_settings;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: server-child DATA_DIR");
    let mut settings = test_settings(dir.as_ref());
    settings.handle_signals = true;
    settings.drain_timeout = std::time::Duration::from_secs(10);
    // No overlap after a key rotation, so that the SIGKILL test can rotate the key in every
    // cycle (a rotation during an overlap is refused).
    settings.key_overlap = chrono::Duration::zero();
    actix_web::rt::System::new().block_on(async {
        // Handled (and ignored) rather than fatal, so that a test can cap the size of files
        // (RLIMIT_FSIZE) to make writes fail as on a full disk without killing the process.
        use actix_web::rt::signal::unix::{signal, SignalKind};
        let _file_too_large = signal(SignalKind::from_raw(libc::SIGXFSZ)).expect("SIGXFSZ");
        let service = timecredits_server::bind(&settings).expect("the server starts");
        let mut out = std::io::stdout();
        writeln!(out, "LISTENING {}", service.addr).unwrap();
        out.flush().unwrap();
        service
            .run()
            .await
            .expect("the server serves until it is stopped");
    });
}
