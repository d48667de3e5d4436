//! The `timecredits` binary's configuration, tried as an operator would: a file, the
//! environment and flags together, JSON logs, CORS, and refusals that name the setting and leave
//! nothing behind.

#![allow(clippy::unwrap_used)] // test code, helpers included: a panic is how it fails

mod common;

use std::path::Path;

use common::{command, http, serve_json};

#[test]
fn a_file_the_environment_and_flags_combine_in_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("timecredits.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\nlisten = \"127.0.0.1:1\"\nlog_format = \"json\"\n\
             workers = 3\norigin = \"credits.example.org/tc\"\n\
             cors_allowed_origins = [\"https://desk.example.org\"]\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    // The environment beats the file (workers), a flag beats both (listen).
    let service = serve_json(
        &["serve", "--config", file, "--listen", "127.0.0.1:0"],
        &[
            ("TIMECREDITS_WORKERS", "1"),
            ("TIMECREDITS_LISTEN", "127.0.0.1:2"),
        ],
    );
    let (head, body) = http(&service.addr, "GET /v1/ledger/checkpoint HTTP/1.1\r\n");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        body.contains("credits.example.org/tc"),
        "the file's origin: {body}"
    );

    // CORS: the listed origin gets its headers, another none, and a preflight is answered.
    let (head, _) = http(
        &service.addr,
        "GET /healthz HTTP/1.1\r\nOrigin: https://desk.example.org\r\n",
    );
    assert!(
        head.contains("access-control-allow-origin: https://desk.example.org"),
        "{head}"
    );
    let (head, _) = http(
        &service.addr,
        "GET /healthz HTTP/1.1\r\nOrigin: https://elsewhere.example\r\n",
    );
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    let (head, _) = http(
        &service.addr,
        "OPTIONS /v1/earn HTTP/1.1\r\nOrigin: https://desk.example.org\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: authorization, content-type, idempotency-key\r\n",
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("access-control-allow-methods"), "{head}");
    assert!(head.contains("idempotency-key"), "{head}");

    // The effective configuration as `config check` sees it.
    let output = command(
        &[
            "config",
            "check",
            "--config",
            file,
            "--listen",
            "localhost:9",
        ],
        &[("TIMECREDITS_WORKERS", "1")],
    )
    .output()
    .unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    for line in [
        "workers = 1",
        "listen = \"127.0.0.1:9\"",
        "log_format = \"json\"",
        "cors_allowed_origins = [\"https://desk.example.org\"]",
    ] {
        assert!(printed.contains(line), "{line} missing from:\n{printed}");
    }
    drop(service);
}

#[test]
fn without_cors_origins_no_cors_header_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let service = serve_json(
        &["serve", "--listen", "127.0.0.1:0", "--log-format", "json"],
        &[("TIMECREDITS_DATA_DIR", data.to_str().unwrap())],
    );
    let (head, _) = http(
        &service.addr,
        "GET /healthz HTTP/1.1\r\nOrigin: https://desk.example.org\r\n",
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("access-control"), "{head}");
}

fn refused(args: &[&str], env: &[(&str, &str)], data: &Path) -> String {
    let output = command(args, env).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{args:?} {env:?}");
    assert!(
        !data.exists(),
        "a refused configuration created {}",
        data.display()
    );
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn a_refused_setting_is_named_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_env = ("TIMECREDITS_DATA_DIR", data.to_str().unwrap());

    let error = refused(&["serve", "--workers", "5000"], &[data_env], &data);
    assert!(
        error.contains("`workers`") && error.contains("TIMECREDITS_WORKERS"),
        "{error}"
    );

    let error = refused(
        &["serve"],
        &[data_env, ("TIMECREDITS_ORIGIN", "has space/x")],
        &data,
    );
    assert!(error.contains("`origin`"), "{error}");

    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "workers = 2\nscrub_every = 3\n").unwrap();
    let error = refused(
        &["serve", "--config", file.to_str().unwrap()],
        &[data_env],
        &data,
    );
    assert!(
        error.contains("scrub_every") && error.contains("line 2"),
        "{error}"
    );

    std::fs::write(&file, "workers = \"two\"\n").unwrap();
    let error = refused(
        &["config", "check", "--config", file.to_str().unwrap()],
        &[data_env],
        &data,
    );
    assert!(error.contains("workers"), "{error}");

    let missing = dir.path().join("missing.toml");
    let error = refused(
        &["serve", "--config", missing.to_str().unwrap()],
        &[data_env],
        &data,
    );
    assert!(
        error.contains("cannot read the configuration file"),
        "{error}"
    );

    let output = command(&["serve", "--listen", "example.org:80"], &[data_env])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("not an address to listen on"), "{error}");
    assert!(!data.exists());
}
