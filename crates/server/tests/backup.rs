//! `timecredits backup` and `timecredits restore`, end to end with the real binary: a backup of
//! a running service restores into a new directory (never over one) and serves; a damaged
//! archive is refused, naming what is wrong, and leaves nothing behind. (The backup under load,
//! with balances and checkpoints compared, is in the black-box tests: `tests/tests/backup.rs`.)

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use std::io::Read;
use std::path::Path;

use common::{run, serve};
use timecredits_server::backup::MANIFEST;

/// `timecredits backup` of `data` into `out`.
fn backup(data: &Path, out: &Path) -> (bool, String) {
    run(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// `timecredits restore` of `archive` into `data`.
fn restore(archive: &Path, data: &Path) -> (bool, String) {
    run(&[
        "restore",
        "--from",
        archive.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ])
}

#[test]
fn a_backup_of_the_running_service_restores_into_a_new_directory_only_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let service = serve(&data);
    let archive = dir.path().join("backup.tar.gz");
    let (ok, text) = backup(&data, &archive);
    assert!(ok, "{text}");
    assert!(text.contains("wrote a backup of 1 entries"), "{text}");

    let copy = dir.path().join("copy");
    let (ok, text) = restore(&archive, &copy);
    assert!(ok, "{text}");
    assert!(text.contains("restored 1 entries"), "{text}");
    // Not `signed-tree`: the copy records the checkpoint of its whole journal at open, which
    // the live service records only at its next write or stop.
    for file in ["journal", "signing-key.pem", "registry", "server-secret"] {
        assert_eq!(
            std::fs::read(copy.join(file)).unwrap(),
            std::fs::read(data.join(file)).unwrap(),
            "{file}"
        );
    }
    let (ok, text) = restore(&archive, &copy);
    assert!(!ok, "{text}");
    assert!(text.contains("is not empty"), "{text}");
    assert!(text.contains("nothing was restored"), "{text}");

    let copy_service = serve(&copy);
    drop(copy_service);
    drop(service);
}

/// Rewrites the archive at `path` with `change` applied to each file's name and contents.
fn rewrite(path: &Path, change: impl Fn(&str, &mut Vec<u8>)) {
    let mut files = Vec::new();
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_str().unwrap().to_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        change(&name, &mut bytes);
        files.push((name, bytes));
    }
    let out = std::fs::File::create(path).unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        out,
        flate2::Compression::fast(),
    ));
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

#[test]
fn a_damaged_archive_is_refused_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = backup(&dir.path().join("nothing"), &dir.path().join("b.tar.gz"));
    assert!(!ok);
    assert!(text.contains("holds no ledger"), "{text}");

    let data = dir.path().join("data");
    let service = serve(&data);
    let archive = dir.path().join("backup.tar.gz");
    let (ok, text) = backup(&data, &archive);
    assert!(ok, "{text}");
    drop(service);
    let copy = dir.path().join("copy");

    let flipped = dir.path().join("flipped.tar.gz");
    std::fs::copy(&archive, &flipped).unwrap();
    rewrite(&flipped, |name, bytes| {
        if name == "journal" {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        }
    });
    let (ok, text) = restore(&flipped, &copy);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "journal does not match its size and SHA-256 in {MANIFEST}: the archive is damaged"
        )),
        "{text}"
    );

    let unlisted = dir.path().join("unlisted.tar.gz");
    std::fs::copy(&archive, &unlisted).unwrap();
    rewrite(&unlisted, |name, bytes| {
        if name == MANIFEST {
            let text = String::from_utf8(bytes.clone()).unwrap();
            *bytes = text
                .replace("\"signed-tree\"", "\"signed-tree-x\"")
                .into_bytes();
        }
    });
    let (ok, text) = restore(&unlisted, &copy);
    assert!(!ok, "{text}");
    assert!(
        text.contains("is listed in MANIFEST.json but missing"),
        "{text}"
    );

    let truncated = dir.path().join("truncated.tar.gz");
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, text) = restore(&truncated, &copy);
    assert!(!ok, "{text}");
    assert!(text.contains("is not a usable backup"), "{text}");

    assert!(!copy.exists(), "no restore left a directory");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().contains("restoring")),
        "{left:?}"
    );
}
