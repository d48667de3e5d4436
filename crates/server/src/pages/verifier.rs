//! The member's own receipt checker: `verifier.html`, one self-contained page (inline style and
//! script, no other resource, no network request) that checks a receipt against the ledger's
//! verifier key in the browser, with WebCrypto's SHA-256 and Ed25519. AUDIT.md says what it
//! proves and what it does not.
//!
//! The file is embedded in the binary and served at [`PATH`] byte for byte, so the hash the
//! README publishes is the hash of what every copy of this binary serves and of the file a
//! member saves. Its content policy allows exactly its one `<style>` and one `<script>` (by
//! hash) and nothing else: no connection, no image, no form target. The same policy is in the
//! file's `<meta>` tag, so it holds when the saved file is opened from disk; a test keeps the two
//! equal.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::HttpResponse;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Where the page is served.
pub const PATH: &str = "/app/verifier.html";

/// The page, byte for byte as committed (`crates/server/src/pages/verifier.html`).
pub const HTML: &str = include_str!("verifier.html");

/// The header that states the SHA-256 of the page's bytes (RFC 9530 `Repr-Digest`), so a client
/// can compare what it received with the hash the README publishes.
pub const DIGEST_HEADER: &str = "repr-digest";

/// What is computed once from [`HTML`]: its hash and its content policy.
struct Served {
    /// SHA-256 of the page's bytes.
    sha256: [u8; 32],
    /// The content policy of the page's `<meta>` tag.
    policy: String,
}

static SERVED: LazyLock<Served> = LazyLock::new(|| Served {
    sha256: Sha256::digest(HTML).into(),
    policy: content_policy(HTML),
});

/// The SHA-256 of the page, in lowercase hex: the value the README publishes and
/// `sha256sum verifier.html` prints.
pub fn sha256_hex() -> String {
    hex::encode(SERVED.sha256)
}

/// The text between the first `<tag>` and the `</tag>` after it, or `""` if there is none.
fn element_text<'a>(html: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    html.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map_or("", |(text, _)| text)
}

/// The content policy for `html`: nothing may load or connect; only its one `<style>` and one
/// `<script>` (each allowed by the hash of its text, CSP level 2) run. A page edit that changes
/// either changes the policy, which the `<meta>` tag must then repeat (a test says so).
fn content_policy(html: &str) -> String {
    let hash = |tag: &str| BASE64.encode(Sha256::digest(element_text(html, tag)));
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; connect-src 'none'; \
         img-src 'none'; form-action 'none'; base-uri 'none'",
        hash("script"),
        hash("style")
    )
}

/// `GET /app/verifier.html`: the page, with its content policy (and, which a `<meta>` tag cannot
/// say, no framing), no sharing with other origins, and its hash in `Repr-Digest`. Browsers
/// revalidate it (`no-cache`), so a new binary's page is seen at once.
pub async fn page() -> HttpResponse {
    let served = &*SERVED;
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            format!("{}; frame-ancestors 'none'", served.policy),
        ))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .insert_header((
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        ))
        .insert_header((
            "cross-origin-resource-policy",
            HeaderValue::from_static("same-origin"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((
            DIGEST_HEADER,
            format!("sha-256=:{}:", BASE64.encode(served.sha256)),
        ))
        .body(HTML)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `content` of the page's Content-Security-Policy `<meta>` tag.
    fn meta_policy(html: &str) -> &str {
        let (_, rest) = html
            .split_once(r#"<meta http-equiv="Content-Security-Policy" content=""#)
            .expect("the page has a Content-Security-Policy meta tag");
        rest.split_once('"').expect("the tag's content ends").0
    }

    #[test]
    fn the_meta_tag_carries_the_policy_of_the_page_as_it_is() {
        let policy = content_policy(HTML);
        assert_eq!(
            meta_policy(HTML),
            policy,
            "after editing verifier.html's <style> or <script>, put this policy in its \
             Content-Security-Policy meta tag:\n{policy}"
        );
        // The policy follows the text: a changed script no longer matches it.
        let edited = HTML.replacen("\"use strict\";", "\"use strict\"; alert(1);", 1);
        assert_ne!(content_policy(&edited), policy);
    }

    #[test]
    fn the_page_has_one_style_and_one_script_and_refers_to_nothing_outside() {
        for tag in ["<style", "<script"] {
            assert_eq!(HTML.matches(tag).count(), 1, "{tag}");
        }
        for (reference, what) in [
            ("src=", "a loaded resource"),
            ("url(", "a stylesheet resource"),
            ("@import", "an imported stylesheet"),
            ("://", "an address"),
            ("fetch(", "a request"),
            ("XMLHttpRequest", "a request"),
            ("WebSocket", "a connection"),
            ("sendBeacon", "a beacon"),
            ("EventSource", "a connection"),
            ("import(", "a loaded module"),
            (
                "innerHTML",
                "markup built from text (the page writes text only)",
            ),
        ] {
            let found = HTML
                .lines()
                .filter(|line| line.contains(reference))
                .collect::<Vec<_>>();
            assert!(found.is_empty(), "{what} ({reference}): {found:?}");
        }
        // The one link is to the page itself.
        assert_eq!(HTML.matches("href=").count(), 1);
        assert!(HTML.contains(r#"href="verifier.html" download"#));
    }

    #[test]
    fn the_readme_publishes_the_hash_of_the_page() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md is at the root of the repository");
        let line = readme
            .lines()
            .find(|line| line.contains("verifier.html") && line.contains("SHA-256"))
            .expect("the README has a line with verifier.html's SHA-256");
        let published = line
            .split(|c: char| !c.is_ascii_hexdigit())
            .find(|word| word.len() == 64)
            .expect("the line holds a SHA-256 in hex");
        assert_eq!(
            published,
            sha256_hex(),
            "verifier.html changed: publish its new SHA-256 in the README"
        );
        assert_eq!(sha256_hex(), hex::encode(Sha256::digest(HTML.as_bytes())));
    }
}
