//! The pages under `/app/`, driven as a browser without JavaScript drives them: GETs, form
//! POSTs, cookies, redirects. The whole story (hours recorded at the desk, a code made in the
//! wallet, credits taken at the till, the receipt), and the attacks on sign-in: forged forms,
//! guessed passwords, revoked logins, an open redirect. And the receipt verifier: served byte
//! for byte as the binary embeds it (so the hash the README publishes is the hash of what a
//! member downloads), to anyone, with a content policy that forbids every load and connection
//! but its own inline style and script, and its hash in `Repr-Digest`.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::Datelike;
use reqwest::header::{ACCEPT_LANGUAGE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use timecredits_server::pages::verifier;
use timecredits_tests::client::{uuid, Api, Scheme};
use timecredits_tests::server::TestServer;

/// A browser: a cookie jar, no redirect followed (the test looks at each).
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
    lang: &'static str,
}

/// A page as the browser received it.
struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Page {
    /// The value of the first form field `name` on the page.
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            + marker.len();
        self.body[start..][..self.body[start..].find('"').unwrap()].to_owned()
    }

    /// The text of the element whose opening tag contains `marker`.
    fn text_after(&self, marker: &str) -> String {
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker}"));
        let rest = &self.body[start..];
        let open = rest.find('>').unwrap() + 1;
        rest[open..][..rest[open..].find('<').unwrap()].to_owned()
    }
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: HashMap::new(),
            lang: "en",
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request
            .header(COOKIE, cookie)
            .header(ACCEPT_LANGUAGE, self.lang)
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        Page {
            status,
            location,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Sends a form with a file, as `multipart/form-data`.
    async fn upload(&mut self, path: &str, form: &[(&str, &str)], file: (&str, &str)) -> Page {
        let mut parts = reqwest::multipart::Form::new();
        for (name, value) in form {
            parts = parts.text(name.to_string(), value.to_string());
        }
        let (name, content) = file;
        let part = reqwest::multipart::Part::text(content.to_owned())
            .file_name("hours.csv")
            .mime_str("text/csv")
            .unwrap();
        parts = parts.part(name.to_owned(), part);
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .multipart(parts);
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Signs in with the staff form and follows to the person's home.
    async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/app/").await;
        let csrf = form.field("csrf");
        let signed = self
            .post(
                "/app/sign-in",
                &[
                    ("csrf", &csrf),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
        let home = self.get("/app/").await;
        assert_eq!(home.status, StatusCode::SEE_OTHER);
        self.get(&home.location.unwrap()).await
    }

    /// Signs a member in with their credential.
    async fn member_sign_in(&mut self, credential: &str) {
        let form = self.get("/app/").await;
        let signed = self
            .post(
                "/app/member-sign-in",
                &[("csrf", &form.field("csrf")), ("credential", credential)],
            )
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    }
}

/// A staff login made with the API; returns its key's id and password.
async fn staff_login(
    scheme: &Scheme,
    username: &str,
    holder: serde_json::Value,
) -> (String, String) {
    let made = scheme
        .api
        .post(
            "/v1/staff-logins",
            Some(&scheme.admin),
            Some(&json!({"username": username, "label": username, "holder": holder})),
        )
        .await;
    let body = made.expect(201);
    (
        body["key"]["id"].as_str().unwrap().to_owned(),
        body["password"].as_str().unwrap().to_owned(),
    )
}

/// A coordinator of the scheme's earn partner, signed in at the desk: their browser and the
/// desk page.
async fn coordinator_at_desk(scheme: &Scheme) -> (Browser, Page) {
    let (_, password) = staff_login(
        scheme,
        "coordinator",
        json!({"kind": "partner", "id": scheme.earner.id}),
    )
    .await;
    let mut desk = Browser::new(scheme.api.base());
    let page = desk.sign_in("coordinator", &password).await;
    (desk, page)
}

#[tokio::test]
async fn a_coordinator_a_member_and_a_till_run_the_scheme_from_the_pages() {
    let scheme = Scheme::start().await;
    let base = scheme.api.base().to_owned();
    let (_, desk_password) = staff_login(
        &scheme,
        "coordinator",
        json!({"kind": "partner", "id": scheme.earner.id}),
    )
    .await;
    let (_, till_password) = staff_login(
        &scheme,
        "till",
        json!({"kind": "partner", "id": scheme.venue.id}),
    )
    .await;

    // The coordinator registers a member and records two and a half hours for them.
    let mut desk = Browser::new(&base);
    let page = desk.sign_in("coordinator", &desk_password).await;
    assert!(page.body.contains("<h1>Partner desk</h1>"), "{}", page.body);
    let csrf = page.field("csrf");
    let key = page.field("idempotency_key");
    let registered = desk
        .post(
            "/app/desk/members",
            &[
                ("csrf", &csrf),
                ("idempotency_key", &format!("{key}-m")),
                ("reference", "R-7"),
            ],
        )
        .await;
    assert_eq!(registered.status, StatusCode::OK);
    let credential = registered.text_after("class=\"secret\"");
    assert!(credential.starts_with("tcm_"));
    // Its QR code holds the sign-in page's link, the credential in the fragment.
    let link = format!("{base}/app/#credential={credential}");
    assert!(registered
        .body
        .contains(&timecredits_server::qr::data_uri(&link, 240)));
    let member = scheme.api.get("/v1/me", Some(&credential)).await;
    let member_id = uuid(&member.expect(200)["actor"]).to_string();
    let earn = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", key.as_str()),
        ("member", member_id.as_str()),
        ("activity", "lunch club"),
        ("hours", "2"),
        ("minutes", "30"),
    ];
    let recorded = desk.post("/app/desk/earn", &earn).await;
    assert_eq!(recorded.status, StatusCode::OK, "{}", recorded.body);
    assert!(recorded.body.contains("Recorded 1 entries"));
    // The same form sent again (a double click) records nothing more.
    let again = desk.post("/app/desk/earn", &earn).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        scheme
            .api
            .balance(&credential, uuid(&json!(member_id)))
            .await,
        150
    );

    // The member signs in with their credential, in Spanish, and makes a spend code.
    let mut wallet = Browser::new(&base);
    wallet.lang = "es-ES,es;q=0.9";
    let form = wallet.get("/app/").await;
    assert!(form.body.contains("<h1>Iniciar sesión</h1>"));
    let signed = wallet
        .post(
            "/app/member-sign-in",
            &[("csrf", &form.field("csrf")), ("credential", &credential)],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    let home = wallet.get("/app/wallet").await;
    assert!(home.body.contains("<h1>Mi monedero</h1>"));
    assert_eq!(home.text_after("id=\"balance\""), "2:30 horas");
    assert!(
        home.body.contains("Riverside Lunch Club"),
        "partner names in the history"
    );
    let code_page = wallet
        .post(
            "/app/wallet/spend-code",
            &[
                ("csrf", &home.field("csrf")),
                ("idempotency_key", &home.field("idempotency_key")),
            ],
        )
        .await;
    let code = code_page.text_after("class=\"code\"");
    assert_eq!(code.len(), 8);

    // The till takes an hour with it, for one adult and two children.
    let mut till = Browser::new(&base);
    let page = till.sign_in("till", &till_password).await;
    assert!(page.body.contains("<h1>Venue till</h1>"));
    let taken = till
        .post(
            "/app/till/redeem",
            &[
                ("csrf", &page.field("csrf")),
                ("idempotency_key", &page.field("idempotency_key")),
                ("code", &code.to_lowercase()),
                ("activity", "swim"),
                ("hours", "1"),
                ("adults", "1"),
                ("children", "2"),
            ],
        )
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
    assert!(taken.body.contains("Credits taken."));
    let receipt_path = {
        let start = taken.body.find("/app/receipts/").unwrap();
        taken.body[start..][..taken.body[start..].find('"').unwrap()].to_owned()
    };
    let receipt = till.get(&receipt_path).await;
    assert_eq!(receipt.status, StatusCode::OK);
    assert!(receipt.body.starts_with("c2sp.org/tlog-proof@v1"));
    // The member sees the spend and its receipt; the code is used up.
    let home = wallet.get("/app/wallet").await;
    assert_eq!(home.text_after("id=\"balance\""), "1:30 horas");
    assert_eq!(wallet.get(&receipt_path).await.status, StatusCode::OK);
    let reused = till
        .post(
            "/app/till/redeem",
            &[
                ("csrf", &page.field("csrf")),
                ("idempotency_key", "another"),
                ("code", &code),
                ("activity", "swim"),
                ("hours", "1"),
            ],
        )
        .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reused.body.contains("already used"), "{}", reused.body);
    // Neither may use the other's pages.
    assert_eq!(till.get("/app/desk").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        wallet.get("/app/office").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(desk.get("/app/wallet").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_form_without_the_sessions_token_changes_nothing() {
    let scheme = Scheme::start().await;
    let base = scheme.api.base().to_owned();
    let (_, password) = staff_login(
        &scheme,
        "coordinator",
        json!({"kind": "partner", "id": scheme.earner.id}),
    )
    .await;
    let member = scheme.member(0).await;
    let id = member.id.to_string();
    let mut desk = Browser::new(&base);
    let page = desk.sign_in("coordinator", &password).await;
    let key = page.field("idempotency_key");
    let mut other = Browser::new(&base);
    let other_page = other.sign_in("coordinator", &password).await;
    for csrf in ["", "forged", other_page.field("csrf").as_str()] {
        let refused = desk
            .post(
                "/app/desk/earn",
                &[
                    ("csrf", csrf),
                    ("idempotency_key", &key),
                    ("member", &id),
                    ("activity", "x"),
                    ("hours", "1"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "csrf {csrf:?}");
    }
    assert_eq!(scheme.api.balance(&member.credential, member.id).await, 0);
    // A sign-in form's token is tied to its cookie: one posted without it is refused.
    let mut stranger = Browser::new(&base);
    let refused = stranger
        .post(
            "/app/sign-in",
            &[
                ("csrf", "x"),
                ("username", "coordinator"),
                ("password", &password),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("tc_session"));
}

#[tokio::test]
async fn guessing_a_password_is_throttled_and_a_revoked_login_is_out_at_once() {
    let scheme = Scheme::start().await;
    let base = scheme.api.base().to_owned();
    let (key_id, password) = staff_login(
        &scheme,
        "coordinator",
        json!({"kind": "partner", "id": scheme.earner.id}),
    )
    .await;
    let mut signed_in = Browser::new(&base);
    let desk = signed_in.sign_in("coordinator", &password).await;
    assert_eq!(desk.status, StatusCode::OK);

    let mut guesser = Browser::new(&base);
    let mut statuses = Vec::new();
    for guess in 0..6 {
        let form = guesser.get("/app/").await;
        let tried = guesser
            .post(
                "/app/sign-in",
                &[
                    ("csrf", &form.field("csrf")),
                    ("username", "Coordinator"),
                    ("password", &format!("guess-{guess}")),
                ],
            )
            .await;
        statuses.push(tried.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    // Now even the right password waits, and says for how long.
    let form = guesser.get("/app/").await;
    let right = guesser
        .post(
            "/app/sign-in",
            &[
                ("csrf", &form.field("csrf")),
                ("username", "coordinator"),
                ("password", &password),
            ],
        )
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(right.body.contains("minutes"));

    // Revoking the login's key ends its session on the next request.
    scheme
        .api
        .revoke_key(&scheme.admin, key_id.parse().unwrap())
        .await;
    let after = signed_in.get("/app/desk").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location.as_deref(), Some("/app/?session=ended"));
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_of_the_person() {
    let scheme = Scheme::start().await;
    let base = scheme.api.base().to_owned();
    let (_, password) = staff_login(
        &scheme,
        "till",
        json!({"kind": "partner", "id": scheme.venue.id}),
    )
    .await;
    let mut phone = Browser::new(&base);
    let mut tablet = Browser::new(&base);
    phone.sign_in("till", &password).await;
    let page = tablet.sign_in("till", &password).await;
    let out = tablet
        .post("/app/sign-out-everywhere", &[("csrf", &page.field("csrf"))])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(phone.get("/app/till").await.status, StatusCode::SEE_OTHER);
    assert_eq!(tablet.get("/app/till").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_are_small_private_and_switch_language_without_an_open_redirect() {
    let scheme = Scheme::start().await;
    let base = scheme.api.base().to_owned();
    // The first administrator signs in with the password the first start wrote beside the key.
    let password =
        std::fs::read_to_string(scheme.server.data_dir().join("admin-password")).unwrap();
    let mut browser = Browser::new(&base);
    let office = browser.sign_in("admin", password.trim()).await;
    assert!(office.body.contains("<h1>Programme office</h1>"));
    assert!(office.body.contains("Riverside Lunch Club"));
    for path in [
        "/app/",
        "/app/office",
        "/app/static/app.css",
        "/app/static/app.js",
        "/app/nowhere",
    ] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap();
        assert!(body.len() <= 150 * 1024, "{path} is {} bytes", body.len());
        if path.starts_with("/app/static/") {
            let kind = headers["content-type"].to_str().unwrap();
            let expected = if path.ends_with(".js") {
                "text/javascript"
            } else {
                "text/css"
            };
            assert!(kind.starts_with(expected), "{path}: {kind}");
        } else {
            // The pages' own script and nothing else: none inline, none from elsewhere.
            let policy = headers["content-security-policy"].to_str().unwrap();
            assert!(
                policy.contains("default-src 'none'")
                    && policy.contains("script-src 'self';")
                    && policy.contains("frame-ancestors 'none'")
                    && !policy.contains("unsafe"),
                "{path}: {policy}"
            );
            assert_eq!(headers["cache-control"], "no-store");
        }
    }
    assert_eq!(
        browser.get("/app/nowhere").await.status,
        StatusCode::NOT_FOUND
    );

    let switched = browser.get("/app/lang/es?back=/app/office").await;
    assert_eq!(switched.location.as_deref(), Some("/app/office"));
    assert!(browser
        .get("/app/office")
        .await
        .body
        .contains("<h1>Oficina del programa</h1>"));
    for evil in [
        "https://evil.example/",
        "//evil.example/",
        "/app//evil.example",
    ] {
        let switched = browser.get(&format!("/app/lang/en?back={evil}")).await;
        assert_eq!(switched.location.as_deref(), Some("/app/"), "{evil}");
    }
}

#[tokio::test]
async fn a_member_with_a_card_signs_in_and_pays_at_the_till_without_a_phone() {
    let scheme = Scheme::start().await;
    let base = scheme.api.base().to_owned();
    let member = scheme.member(120).await;
    let (number, pin) = scheme
        .api
        .issue_card(&scheme.earner.key, member.id, Some("2468"))
        .await;
    assert_eq!(pin, "2468");
    let (_, password) = staff_login(
        &scheme,
        "till",
        json!({"kind": "partner", "id": scheme.venue.id}),
    )
    .await;
    let mut till = Browser::new(&base);
    let page = till.sign_in("till", &password).await;
    let csrf = page.field("csrf");
    let typed = number.to_lowercase();
    let pay = |pin: &'static str, key: &'static str| {
        [
            ("csrf", csrf.as_str()),
            ("idempotency_key", key),
            ("card_number", typed.as_str()),
            ("pin", pin),
            ("activity", "cinema"),
            ("hours", "1"),
            ("adults", "1"),
        ]
    };
    let refused = till.post("/app/till/redeem", &pay("1111", "k1")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("card number or PIN is not right"),
        "{}",
        refused.body
    );
    let taken = till.post("/app/till/redeem", &pay("2468", "k2")).await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
    assert_eq!(scheme.api.balance(&member.credential, member.id).await, 60);

    // The member signs in to their wallet with the card and PIN.
    let mut wallet = Browser::new(&base);
    let form_page = wallet.get("/app/").await;
    let csrf = form_page.field("csrf");
    let signed = wallet
        .post(
            "/app/member-sign-in",
            &[("csrf", &csrf), ("card_number", &number), ("pin", "2468")],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let home = wallet.get("/app/wallet").await;
    assert_eq!(home.text_after("id=\"balance\""), "1:00 hours");
}

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
async fn the_verifier_answers_other_methods_with_a_problem() {
    let server = TestServer::start();
    let api = Api::new(server.base());
    let post = api
        .send(api.request(Method::POST, verifier::PATH).body("x"))
        .await;
    post.assert_problem(405, "method_not_allowed");
    // A page that is not there is a page for a person, not a problem for a program.
    let missing = api.get("/app/verifier.htm", None).await;
    assert_eq!(missing.status, 404);
    assert!(missing
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
}

/// Lowercase hex, as `sha256sum` prints it.
fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The member numbers a desk page lists (its tick boxes), in order.
fn listed_members(page: &Page) -> Vec<String> {
    let marker = "name=\"member\" value=\"";
    page.body
        .match_indices(marker)
        .map(|(at, _)| {
            let rest = &page.body[at + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// The first `href` on the page that starts with `prefix`.
fn link(page: &Page, prefix: &str) -> String {
    let start = page
        .body
        .find(&format!("href=\"{prefix}"))
        .unwrap_or_else(|| panic!("no link to {prefix} in {}", page.body))
        + "href=\"".len();
    page.body[start..][..page.body[start..].find('"').unwrap()].replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_desk_pages_its_members_reverses_a_mistake_once_and_issues_and_blocks_cards() {
    let scheme = Scheme::start().await;
    let base = scheme.api.base().to_owned();
    let (api, club) = (&scheme.api, &scheme.earner);
    let mut registered = Vec::new();
    for _ in 0..57 {
        registered.push(api.register_member(&club.key).await.id.to_string());
    }
    let (mut desk, first) = coordinator_at_desk(&scheme).await;

    // Every member is listed once, over two pages.
    let mut listed = listed_members(&first);
    assert_eq!(listed.len(), 50);
    let second = desk.get(&link(&first, "/app/desk?after=")).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(!second.body.contains("/app/desk?after="), "no third page");
    listed.extend(listed_members(&second));
    let (mut got, mut want) = (listed.clone(), registered.clone());
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // A page asked for with nonsense is the first page.
    let odd = desk.get("/app/desk?after=not-a-member").await;
    assert_eq!(listed_members(&odd), listed[..50]);

    // Hours recorded by mistake are reversed from the latest entries, once however often the
    // form is sent.
    let member = &registered[0];
    let earn = [
        ("csrf", first.field("csrf")),
        ("idempotency_key", first.field("idempotency_key")),
        ("member_id", member.clone()),
        ("activity", "lunch club".into()),
        ("hours", "3".into()),
    ];
    let earn: Vec<(&str, &str)> = earn.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let recorded = desk.post("/app/desk/earn", &earn).await;
    assert_eq!(recorded.status, StatusCode::OK, "{}", recorded.body);
    let member_id = uuid(&json!(member));
    assert_eq!(api.balance(&scheme.admin, member_id).await, 180);
    let budget_before = api.balance(&scheme.admin, club.budget()).await;
    let entry = recorded.field("entry");
    let reverse = [
        ("csrf", recorded.field("csrf")),
        (
            "idempotency_key",
            format!("{}-reverse-{entry}", recorded.field("idempotency_key")),
        ),
        ("entry", entry.clone()),
    ];
    let reverse: Vec<(&str, &str)> = reverse.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        let reversed = desk.post("/app/desk/reverse", &reverse).await;
        assert_eq!(reversed.status, StatusCode::OK, "{}", reversed.body);
        assert!(reversed.body.contains("The entry is reversed."));
        assert!(reversed.body.contains(">Reversed<"), "{}", reversed.body);
    }
    assert_eq!(api.balance(&scheme.admin, member_id).await, 0);
    assert_eq!(
        api.balance(&scheme.admin, club.budget()).await,
        budget_before + 180
    );
    // Another partner's entry is not the desk's to reverse.
    let other = scheme.member(60).await;
    let spent = api.spend(&other, &scheme.venue.key, 30).await;
    let spent = spent["id"].as_str().unwrap().to_owned();
    let refused = desk
        .post(
            "/app/desk/reverse",
            &[
                ("csrf", reverse[0].1),
                ("idempotency_key", "reverse-a-spend"),
                ("entry", &spent),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.balance(&scheme.admin, other.id).await, 30);

    // A card: issued with a PIN shown once, printable, working at sign-in until blocked.
    let card_path = format!("/app/desk/members/{member}/card");
    let card_page = desk.get(&card_path).await;
    assert!(card_page.body.contains("This member has no card yet."));
    let issue = [
        ("csrf", card_page.field("csrf")),
        ("idempotency_key", card_page.field("idempotency_key")),
        ("act", "issue".into()),
    ];
    let issue: Vec<(&str, &str)> = issue.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let issued = desk.post(&card_path, &issue).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let pin = issued.text_after("id=\"pin\"");
    assert!(
        pin.len() >= 4 && pin.bytes().all(|b| b.is_ascii_digit()),
        "{pin}"
    );
    let svg = desk.get(&format!("{card_path}.svg")).await;
    assert_eq!(svg.status, StatusCode::OK);
    assert!(svg.body.starts_with("<?xml") && svg.body.contains("<svg"));
    assert!(!svg.body.contains(&pin), "the PIN is never on the card");
    let number: String = {
        let at = svg.body.find("letter-spacing=\"2\">").unwrap() + "letter-spacing=\"2\">".len();
        svg.body[at..][..svg.body[at..].find('<').unwrap()].to_owned()
    };
    // A repeat of the form shows no PIN and makes no second card.
    let again = desk.post(&card_path, &issue).await;
    assert!(!again.body.contains("id=\"pin\""));
    assert!(desk
        .get(&format!("{card_path}.svg"))
        .await
        .body
        .contains(&number));
    let sign_in = |number: String, pin: String| {
        let base = base.clone();
        async move {
            let mut wallet = Browser::new(&base);
            let form = wallet.get("/app/").await;
            wallet
                .post(
                    "/app/member-sign-in",
                    &[
                        ("csrf", &form.field("csrf")),
                        ("card_number", &number),
                        ("pin", &pin),
                    ],
                )
                .await
                .status
        }
    };
    assert_eq!(
        sign_in(number.clone(), pin.clone()).await,
        StatusCode::SEE_OTHER
    );
    let block = [
        ("csrf", issued.field("csrf")),
        (
            "idempotency_key",
            format!("{}-block", issued.field("idempotency_key")),
        ),
        ("act", "block".into()),
    ];
    let block: Vec<(&str, &str)> = block.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let blocked = desk.post(&card_path, &block).await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);
    assert!(blocked.body.contains("The card is blocked."));
    assert_eq!(sign_in(number, pin).await, StatusCode::UNAUTHORIZED);
    // Another partner's member, or no member: not found, the same for both.
    let stranger = desk
        .get(&format!("/app/desk/members/{}/card", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_desk_reissues_and_revokes_a_members_credential_once_each() {
    let scheme = Scheme::start().await;
    let (api, base) = (&scheme.api, scheme.api.base().to_owned());
    let member = scheme.member(60).await;
    let (mut desk, _) = coordinator_at_desk(&scheme).await;
    let page = desk
        .get(&format!("/app/desk/members/{}/card", member.id))
        .await;
    assert!(
        page.body.contains("<h2>Member credential</h2>"),
        "{}",
        page.body
    );
    let csrf = page.field("csrf");
    let path = format!("/app/desk/members/{}/credential", member.id);
    let form = |key: &'static str, act: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("idempotency_key", key.into()),
            ("act", act.into()),
        ]
    };

    // A forged form changes nothing.
    let forged = desk
        .post(
            &path,
            &[
                ("csrf", "forged"),
                ("idempotency_key", "k-0"),
                ("act", "reissue"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    api.get("/v1/me", Some(&member.credential))
        .await
        .expect(200);

    // Reissued: shown once with its sign-in QR code; the old credential is refused at once.
    let reissue = form("k-reissue", "reissue");
    let reissue: Vec<(&str, &str)> = reissue.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reissued = desk.post(&path, &reissue).await;
    assert_eq!(reissued.status, StatusCode::OK, "{}", reissued.body);
    let fresh = reissued.text_after("class=\"secret\"");
    assert!(fresh.starts_with("tcm_") && fresh != member.credential);
    let link = format!("{base}/app/#credential={fresh}");
    assert!(reissued
        .body
        .contains(&timecredits_server::qr::data_uri(&link, 240)));
    api.get("/v1/me", Some(&member.credential))
        .await
        .assert_problem(401, "unauthorized");
    api.get("/v1/me", Some(&fresh)).await.expect(200);
    // The same form again (a double tap): the same credential, no third one.
    let again = desk.post(&path, &reissue).await;
    assert_eq!(again.text_after("class=\"secret\""), fresh);
    api.get("/v1/me", Some(&fresh)).await.expect(200);

    // Revoked: refused at once, and the page offers no second revocation.
    let revoke = form("k-revoke", "revoke");
    let revoke: Vec<(&str, &str)> = revoke.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let revoked = desk.post(&path, &revoke).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(revoked.body.contains("The credential is revoked."));
    assert!(!revoked.body.contains("value=\"revoke\""));
    api.get("/v1/me", Some(&fresh))
        .await
        .assert_problem(401, "unauthorized");

    // Another partner's member, or no member: not found.
    let stranger = format!("/app/desk/members/{}/credential", uuid::Uuid::now_v7());
    let refused = desk.post(&stranger, &revoke).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sheet_of_hours_uploaded_at_the_desk_records_all_rows_or_lists_each_mistake() {
    let scheme = Scheme::start().await;
    let api = &scheme.api;
    let (ada, bob) = (scheme.member(0).await, scheme.member(0).await);
    let (mut desk, page) = coordinator_at_desk(&scheme).await;
    let key = format!("{}-sheet", page.field("idempotency_key"));
    let form = [("csrf", page.field("csrf")), ("idempotency_key", key)];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let wrong = format!(
        "member_id,hours,activity\n{},1.5,lunch club\n{},an hour,lunch club\nnobody,1,\n",
        ada.id, bob.id
    );
    let refused = desk
        .upload("/app/desk/sheet", &form, ("sheet", &wrong))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    for line in ["Line 3: hours:", "Line 4: member_id:", "Line 4: activity:"] {
        assert!(refused.body.contains(line), "{line} in {}", refused.body);
    }
    assert_eq!(
        api.balance(&scheme.admin, ada.id).await,
        0,
        "all or nothing"
    );

    let right = format!(
        "activity,hours,member_id,date_given\nlunch club,1.5,{},\ngardening,1:30,{},2026-01-05\n",
        ada.id, bob.id
    );
    for _ in 0..2 {
        let recorded = desk
            .upload("/app/desk/sheet", &form, ("sheet", &right))
            .await;
        assert_eq!(recorded.status, StatusCode::OK, "{}", recorded.body);
        assert!(
            recorded.body.contains("Recorded 2 entries"),
            "{}",
            recorded.body
        );
    }
    assert_eq!(api.balance(&scheme.admin, ada.id).await, 90);
    assert_eq!(
        api.balance(&scheme.admin, bob.id).await,
        90,
        "once, however often sent"
    );
    // Without the session's CSRF token, nothing is read.
    let forged = [("csrf", "forged"), ("idempotency_key", "another")];
    let refused = desk
        .upload("/app/desk/sheet", &forged, ("sheet", &right))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(api.balance(&scheme.admin, ada.id).await, 90);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_field_is_marked_and_named_beside_it_and_in_the_summary() {
    let scheme = Scheme::start().await;
    let (mut desk, page) = coordinator_at_desk(&scheme).await;
    let (csrf, key) = (page.field("csrf"), page.field("idempotency_key"));
    for (field, help, form) in [
        (
            "member_id",
            "record-help ",
            [
                ("member_id", "nobody"),
                ("activity", "lunch club"),
                ("hours", "1"),
            ],
        ),
        (
            "hours",
            "amount-help ",
            [
                ("member_id", "nobody"),
                ("activity", "lunch club"),
                ("hours", "an hour"),
            ],
        ),
    ] {
        let mut sent = vec![("csrf", csrf.as_str()), ("idempotency_key", key.as_str())];
        sent.extend(form);
        let refused = desk.post("/app/desk/earn", &sent).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        let body = &refused.body;
        let marked = format!("aria-invalid=\"true\" aria-describedby=\"{help}{field}-error\"");
        assert!(body.contains(&marked), "{marked} in {body}");
        assert!(body.contains(&format!("id=\"{field}-error\"")), "{body}");
        assert!(body.contains(&format!("<a href=\"#{field}\">")), "{body}");
        assert_eq!(
            body.matches("aria-invalid").count(),
            1,
            "only the field at fault"
        );
    }
}

/// The office keeps its report rather than scanning the ledger on every visit: after each earn
/// its figures are still the API's report of this year, at the ledger size the page names.
#[tokio::test]
async fn the_office_figures_follow_every_commit_at_the_size_they_name() {
    let scheme = Scheme::start().await;
    let password =
        std::fs::read_to_string(scheme.server.data_dir().join("admin-password")).unwrap();
    let mut browser = Browser::new(scheme.api.base());
    browser.sign_in("admin", password.trim()).await;
    let shown = |body: &str, label: &str| {
        let start = format!("<dt>{label}</dt><dd>");
        let at = body
            .find(&start)
            .unwrap_or_else(|| panic!("no {label} in {body}"))
            + start.len();
        body[at..].split("</dd>").next().unwrap().to_owned()
    };
    let this_year = format!(
        "/v1/reports/impact?from={}-01-01",
        chrono::Utc::now().year()
    );
    for minutes in [0, 75, 30, 125] {
        if minutes > 0 {
            scheme.member(minutes).await;
        }
        let office = browser.get("/app/office").await;
        let report = scheme.api.get(&this_year, Some(&scheme.admin)).await;
        let given: i64 = report
            .expect(200)
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["section"] == "earn" && r["figure"] == "given_minutes" && !r["partner"].is_null()
            })
            .map(|r| r["value"].as_i64().unwrap())
            .sum();
        assert_eq!(
            shown(&office.body, "Figures as of entries"),
            report.header("ledger-size").unwrap()
        );
        assert_eq!(
            shown(&office.body, "Hours given"),
            format!("{}:{:02}", given / 60, given % 60)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_office_allocates_settles_revokes_and_exports_once_each() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let password =
        std::fs::read_to_string(scheme.server.data_dir().join("admin-password")).unwrap();
    let mut office = Browser::new(api.base());
    let page = office.sign_in("admin", password.trim()).await;
    let (csrf, key) = (page.field("csrf"), page.field("idempotency_key"));
    let club = scheme.earner.id.to_string();

    // A partner added from the form, once however often it is sent; one without a role is not.
    let partners = || async {
        let listed = api.get("/v1/partners", Some(admin)).await;
        listed.expect(200)["partners"].as_array().unwrap().len()
    };
    let count = partners().await;
    let partner_key = format!("{key}-partner");
    let library = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", partner_key.as_str()),
        ("name", "Town Library"),
        ("earn", "on"),
        ("spend", "on"),
    ];
    for _ in 0..2 {
        let added = office.post("/app/office/partners", &library).await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.body);
        assert!(
            added.body.contains("Town Library is added."),
            "{}",
            added.body
        );
        assert!(added.body.contains(">Town Library</option>"));
    }
    assert_eq!(partners().await, count + 1);
    let roleless = office
        .post(
            "/app/office/partners",
            &[
                ("csrf", &csrf),
                ("idempotency_key", "partner-roleless"),
                ("name", "Nobody's Club"),
            ],
        )
        .await;
    assert_eq!(roleless.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        roleless.body.contains("at least one role"),
        "{}",
        roleless.body
    );
    assert_eq!(partners().await, count + 1);

    // Budget allocated from the form, once however often it is sent.
    let budget = scheme.earner.budget();
    let before = api.balance(admin, budget).await;
    let allocate_key = format!("{key}-allocate");
    let allocate = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", allocate_key.as_str()),
        ("partner", club.as_str()),
        ("hours", "12"),
        ("minutes", "30"),
    ];
    for _ in 0..2 {
        let allocated = office.post("/app/office/allocations", &allocate).await;
        assert_eq!(allocated.status, StatusCode::OK, "{}", allocated.body);
        assert!(allocated.body.contains("Budget allocated."));
    }
    assert_eq!(api.balance(admin, budget).await, before + 750);
    let nobody = office
        .post(
            "/app/office/allocations",
            &[
                ("csrf", &csrf),
                ("idempotency_key", "allocate-nobody"),
                ("partner", "nobody"),
                ("hours", "1"),
            ],
        )
        .await;
    assert_eq!(nobody.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(nobody.body.contains("aria-describedby=\"partner-error\""));

    // The venue's credits settled: its account is emptied into retirement.
    let member = scheme.member(90).await;
    api.spend(&member, &scheme.venue.key, 60).await;
    let venue = scheme.venue.id.to_string();
    let settled = office
        .post(
            "/app/office/settlements",
            &[
                ("csrf", &csrf),
                ("idempotency_key", &format!("{key}-settle")),
                ("partner", &venue),
                ("account", "venue"),
            ],
        )
        .await;
    assert_eq!(settled.status, StatusCode::OK, "{}", settled.body);
    assert!(settled.body.contains("Settled."));
    assert_eq!(api.balance(admin, scheme.venue.venue()).await, 0);

    // A partner's key revoked from the list stops working at once; the office's own key is
    // not offered for revoking.
    let listed = office.get("/app/office").await;
    assert!(listed.body.contains("The one you are using"));
    let revoke_key = format!("{key}-revoke-{}", scheme.venue.key_id);
    let revoke = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", revoke_key.as_str()),
        ("key", &scheme.venue.key_id.to_string()),
    ];
    let revoked = office.post("/app/office/keys/revoke", &revoke).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    api.get("/v1/me", Some(&scheme.venue.key))
        .await
        .assert_problem(401, "unauthorized");

    // The export for auditors is the API's, byte for byte.
    let download = office.get("/app/office/export.ndjson").await;
    assert_eq!(download.status, StatusCode::OK);
    assert!(download.body.lines().count() > 3, "{}", download.body);
    let from_api = api.get("/v1/ledger/export", Some(admin)).await;
    assert_eq!(download.body, from_api.text);
    // So is this year's impact report as CSV, and a member may not download it.
    let download = office.get("/app/reports/impact.csv").await;
    assert_eq!(download.status, StatusCode::OK);
    let this_year = format!(
        "/v1/reports/impact?format=csv&from={}-01-01",
        chrono::Utc::now().year()
    );
    let from_api = api.get(&this_year, Some(admin)).await;
    assert!(download.body.lines().count() > 1, "{}", download.body);
    assert_eq!(download.body, from_api.text);
    let member = scheme.member(60).await;
    let mut wallet = Browser::new(api.base());
    wallet.member_sign_in(&member.credential).await;
    assert_eq!(
        wallet.get("/app/reports/impact.csv").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_till_shows_what_it_will_take_and_asks_for_the_pin_only_there() {
    let scheme = Scheme::start().await;
    let member = scheme.member(120).await;
    let (number, _) = scheme
        .api
        .issue_card(&scheme.earner.key, member.id, Some("4321"))
        .await;
    let (_, password) = staff_login(
        &scheme,
        "till",
        json!({"kind": "partner", "id": scheme.venue.id}),
    )
    .await;
    let mut till = Browser::new(scheme.api.base());
    let page = till.sign_in("till", &password).await;
    assert!(
        !page.body.contains("name=\"pin\""),
        "no PIN on the first step"
    );
    let (csrf, key) = (page.field("csrf"), page.field("idempotency_key"));
    let review = till
        .post(
            "/app/till/review",
            &[
                ("csrf", &csrf),
                ("idempotency_key", &key),
                ("card_number", &number.to_lowercase()),
                ("activity", "cinema"),
                ("hours", "1"),
                ("minutes", "15"),
                ("adults", "2"),
            ],
        )
        .await;
    assert_eq!(review.status, StatusCode::OK, "{}", review.body);
    assert!(
        review.body.contains("<dd class=\"big\">1:15</dd>"),
        "{}",
        review.body
    );
    assert!(review.body.contains("<dd>cinema</dd>") && review.body.contains("<dd>2</dd>"));
    assert!(review.body.contains("name=\"pin\" type=\"password\""));
    assert_eq!(
        scheme.api.balance(&member.credential, member.id).await,
        120,
        "nothing is taken before the confirmation"
    );
    // The confirmation carries the form unchanged, with the PIN the member types.
    let mut confirm: Vec<(String, String)> = vec![("pin".into(), "4321".into())];
    let mut rest = review.body.as_str();
    while let Some(at) = rest.find("<input type=\"hidden\" name=\"") {
        let tag = &rest[at..rest[at..].find('>').unwrap() + at];
        let attr = |name: &str| {
            let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            tag[start..][..tag[start..].find('"').unwrap()].to_owned()
        };
        confirm.push((attr("name"), attr("value")));
        rest = &rest[at + tag.len()..];
    }
    let confirm: Vec<(&str, &str)> = confirm
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for _ in 0..2 {
        let taken = till.post("/app/till/redeem", &confirm).await;
        assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
        assert!(taken.body.contains("Credits taken."));
    }
    assert_eq!(scheme.api.balance(&member.credential, member.id).await, 45);
    // A mistake goes back to the till with the field marked, and takes nothing.
    let wrong = till
        .post(
            "/app/till/review",
            &[
                ("csrf", &csrf),
                ("idempotency_key", "another"),
                ("code", "7KQ2M9XD"),
                ("activity", "cinema"),
                ("hours", "an hour"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong
        .body
        .contains("aria-describedby=\"amount-help hours-error\""));
}
