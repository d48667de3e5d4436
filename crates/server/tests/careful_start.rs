//! A careful start of the real `timecredits` binary: a start that cannot listen creates nothing;
//! a data directory held by a running service is refused by name and process id, never with the
//! state store's raw lock error; a data directory in a newer on-disk format is refused with both
//! format numbers, and one without a format file is taken as format 1.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use common::{run, serve};
use timecredits_ledger::{Ledger, LedgerConfig};
use timecredits_server::data_dir::{layout, FORMAT};

#[test]
fn a_start_on_a_taken_port_creates_no_data_directory() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, text) = run(&[
        "serve",
        "--listen",
        &addr,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("cannot listen on {addr}")), "{text}");
    assert!(!data.exists(), "no data directory was created: {text}");
}

#[test]
fn a_directory_held_by_the_service_is_refused_naming_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let service = serve(&data);
    let held = format!(
        "the data directory {} is in use by the running service (pid {}); stop it first",
        data.display(),
        service.0.id()
    );
    let data_arg = data.to_str().unwrap();
    let out = dir.path().join("export.jsonl");
    let commands: [(&[&str], &str); 3] = [
        (&["serve", "--listen", "127.0.0.1:0"], ""),
        (
            &["export", "--out", out.to_str().unwrap()],
            ", or use GET /v1/ledger/export",
        ),
        (&["rotate-key"], ", or use POST /v1/key-rotations"),
    ];
    for (command, alternative) in commands {
        let mut args = command.to_vec();
        args.extend(["--data-dir", data_arg]);
        let (ok, text) = run(&args);
        assert!(!ok, "{command:?} is refused: {text}");
        assert!(
            text.contains(&format!("{held}{alternative}")),
            "{command:?}: {text}"
        );
        assert!(!text.contains("Os {"), "no raw OS error: {text}");
    }
    drop(service);
}

#[test]
fn a_newer_format_is_refused_and_a_directory_without_a_format_file_is_format_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A ledger made without the format file, as before it existed.
    drop(Ledger::open(&data, LedgerConfig::default()).unwrap());
    assert!(!data.join(layout::FORMAT).exists());
    let data_arg = data.to_str().unwrap();
    let out = dir.path().join("export.jsonl");
    let export = [
        "export",
        "--data-dir",
        data_arg,
        "--out",
        out.to_str().unwrap(),
    ];
    let (ok, text) = run(&export);
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read_to_string(data.join(layout::FORMAT)).unwrap(),
        format!("{FORMAT}\n")
    );

    std::fs::write(data.join(layout::FORMAT), format!("{}\n", FORMAT + 1)).unwrap();
    let newer = format!(
        "the data directory {} was written by a newer timecredits (format {}); this binary \
         reads format {FORMAT}; upgrade the binary",
        data.display(),
        FORMAT + 1
    );
    for args in [
        &export[..],
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data_arg],
    ] {
        let (ok, text) = run(args);
        assert!(!ok, "{args:?}: {text}");
        assert!(text.contains(&newer), "{args:?}: {text}");
    }
}
