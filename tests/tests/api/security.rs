//! Secure defaults, from outside: security headers on every kind of answer, the docs' content
//! policy and disabled validator, the `Bearer` scheme in any case, a private data directory.
//! (That client mistakes stay out of the ERROR log is tested on the real binary, in
//! `crates/server/tests/logs.rs`.)

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::Method;
use timecredits_tests::client::Scheme;
use timecredits_tests::server::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_has_nosniff_and_no_referrer_and_api_answers_are_never_stored() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let member = scheme.member(60).await;
    let answers = [
        (
            "a member's balance",
            api.get("/v1/me", Some(&member.credential)).await,
        ),
        (
            "a new API key",
            api.post(
                "/v1/partners",
                Some(&scheme.admin),
                Some(&serde_json::json!({"name": "Library", "roles": ["earn"]})),
            )
            .await,
        ),
        ("a problem", api.get("/v1/me", Some("tck_wrong")).await),
        ("an unknown route", api.get("/v1/nothing-here", None).await),
        (
            "a public checkpoint",
            api.get("/v1/ledger/checkpoint", None).await,
        ),
    ];
    for (what, reply) in &answers {
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            reply.header("referrer-policy"),
            Some("no-referrer"),
            "{what}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
    }
    for path in ["/healthz", "/openapi.json", "/docs/"] {
        let reply = api.get(path, None).await;
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            reply.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_docs_cannot_be_framed_and_call_no_validator() {
    let server = TestServer::start();
    let api = timecredits_tests::client::Api::new(server.base());
    for path in [
        "/docs/",
        "/docs/swagger-initializer.js",
        "/docs/swagger-ui.css",
    ] {
        let reply = api.get(path, None).await;
        assert_eq!(reply.status, 200, "{path}");
        let csp = reply.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("validator.swagger.io"), "{path}: {csp}");
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{path}");
    }
    let initializer = api.get("/docs/swagger-initializer.js", None).await.text;
    assert!(
        initializer.contains(r#""validatorUrl": "none""#),
        "{initializer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_accepted_in_any_case() {
    let server = TestServer::start();
    let api = timecredits_tests::client::Api::new(server.base());
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let request = api
            .request(Method::GET, "/v1/me")
            .header("Authorization", format!("{scheme} {}", server.admin_key()));
        let reply = api.send(request).await;
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.text);
    }
    let request = api
        .request(Method::GET, "/v1/me")
        .header("Authorization", format!("Basic {}", server.admin_key()));
    api.send(request).await.assert_problem(401, "unauthorized");
}

/// Every directory under `dir` (itself included) is 0700 and every file 0600.
fn assert_private(dir: &Path) {
    let mut pending = vec![dir.to_owned()];
    let mut files = 0;
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
            files += 1;
        }
    }
    assert!(files >= 5, "the ledger, registry and keys are there");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_directory_and_every_file_in_it_are_private() {
    let mut scheme = Scheme::start().await;
    scheme.member(60).await;
    let dir = scheme.server.data_dir().to_owned();
    assert!(dir.join("state").is_dir(), "sled's files are checked too");
    assert_private(&dir);

    // A directory an earlier version left readable by all is tightened at start.
    scheme.server.stop();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["journal", "registry", "origin"] {
        let path = dir.join(name);
        assert!(path.exists(), "{name}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir.join("state"), std::fs::Permissions::from_mode(0o755)).unwrap();
    scheme.restart();
    scheme.member(30).await;
    assert_private(&dir);
}
