//! The pages under `/app/`, from outside: the receipt verifier is served byte for byte as the
//! binary embeds it (so the hash the README publishes is the hash of what a member downloads),
//! to anyone, with a content policy that forbids every load and connection but its own inline
//! style and script, and its hash in `Repr-Digest`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest::Method;
use sha2::{Digest, Sha256};
use timecredits_server::pages::verifier;
use timecredits_tests::client::Api;
use timecredits_tests::server::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn the_verifier_page_is_served_as_embedded_with_its_hash_and_a_strict_policy() {
    let server = TestServer::start();
    let api = Api::new(server.base());
    // No credential is needed, and one given changes nothing.
    let anonymous = api.get(verifier::PATH, None).await;
    let with_key = api.get(verifier::PATH, Some(server.admin_key())).await;
    for reply in [&anonymous, &with_key] {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.text, verifier::HTML, "served byte for byte");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let digest = Sha256::digest(reply.text.as_bytes());
        assert_eq!(
            reply.header("repr-digest"),
            Some(format!("sha-256=:{}:", BASE64.encode(digest)).as_str())
        );
        assert_eq!(verifier::sha256_hex(), hex_lower(&digest));
        let csp = reply.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "connect-src 'none'",
            "img-src 'none'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} in {csp}");
        }
        // Scripts and styles by hash only: never inline code in general, never another origin.
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!csp.contains("'self'") && !csp.contains("http"), "{csp}");
        // The page opened from a file keeps the same policy, from its meta tag.
        let meta_policy = csp.trim_end_matches("; frame-ancestors 'none'");
        assert!(
            reply.text.contains(&format!(
                r#"http-equiv="Content-Security-Policy" content="{meta_policy}""#
            )),
            "the meta tag states the served policy: {meta_policy}"
        );
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(
            reply.header("cross-origin-resource-policy"),
            Some("same-origin")
        );
        assert_eq!(
            reply.header("cross-origin-opener-policy"),
            Some("same-origin")
        );
        assert_eq!(reply.header("cache-control"), Some("no-cache"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pages_answer_other_methods_and_paths_with_problems() {
    let server = TestServer::start();
    let api = Api::new(server.base());
    let post = api
        .send(api.request(Method::POST, verifier::PATH).body("x"))
        .await;
    post.assert_problem(405, "method_not_allowed");
    api.get("/app/verifier.htm", None)
        .await
        .assert_problem(404, "not_found");
    api.get("/app/", None)
        .await
        .assert_problem(404, "not_found");
}

/// Lowercase hex, as `sha256sum` prints it.
fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
