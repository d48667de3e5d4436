//! The REST service as a process for the tests that kill it: serves the data directory given as
//! its argument on a free loopback port and prints `LISTENING <address>` once it listens.
//!
//! Usage: `server-child DATA_DIR`.

use std::io::Write;

use timecredits_tests::server::test_settings;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: server-child DATA_DIR");
    let settings = test_settings(dir.as_ref());
    actix_web::rt::System::new().block_on(async {
        let (server, addr) = timecredits_server::start(&settings).expect("the server starts");
        let mut out = std::io::stdout();
        writeln!(out, "LISTENING {addr}").unwrap();
        out.flush().unwrap();
        server.await.expect("the server serves until it is killed");
    });
}
