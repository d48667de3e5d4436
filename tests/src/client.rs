//! An HTTP client for the API, and the setup most tests start from: partners with keys, an
//! allocated budget, members with credits.

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use timecredits_server::Settings;
use uuid::Uuid;

use crate::server::TestServer;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The budget [`Scheme::start`] allocates to its earn partner: 10,000 hours.
pub const BUDGET_MINUTES: u64 = 600_000;

/// A fresh idempotency key.
pub fn new_key() -> String {
    Uuid::now_v7().to_string()
}

/// A UUID from a JSON string value.
#[track_caller]
pub fn uuid(value: &Value) -> Uuid {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a UUID: {value}"))
}

/// The hashes of a proof as the API gives them: a JSON array of base64 SHA-256 hashes.
#[track_caller]
pub fn proof_hashes(value: &Value) -> Vec<[u8; 32]> {
    use base64::Engine;
    let hashes = value
        .as_array()
        .unwrap_or_else(|| panic!("not an array of hashes: {value}"));
    hashes
        .iter()
        .map(|h| {
            let bytes = h
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .unwrap_or_else(|| panic!("not a base64 hash: {h}"));
            bytes
                .try_into()
                .unwrap_or_else(|b: Vec<u8>| panic!("a hash of {} bytes, not 32", b.len()))
        })
        .collect()
}

/// An HTTP answer, read whole.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON (`null` when it is not JSON).
    pub json: Value,
}

impl Reply {
    /// Reads a response whole: status, headers and body.
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("the body is readable");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// A header's value, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the answer repeats an earlier one (`Idempotent-Replayed: true`).
    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed") == Some("true")
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "expected HTTP {status}, got {} with {}",
            self.status, self.text
        );
        &self.json
    }

    /// Asserts an RFC 9457 problem with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        self.assert_problem_for("", status, code);
    }

    /// [`Reply::assert_problem`], naming `what` was sent when it fails.
    #[track_caller]
    pub fn assert_problem_for(&self, what: &str, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.json["code"].as_str()),
            (status, Some(code)),
            "{what}: expected a {status} `{code}` problem, got HTTP {} with {}",
            self.status,
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some(PROBLEM_JSON),
            "content type of a `{code}` problem"
        );
        let p = &self.json;
        assert_eq!(p["status"], status, "status member of {}", self.text);
        assert!(
            p["type"]
                .as_str()
                .is_some_and(|t| t.ends_with(&format!("/{code}"))),
            "type of {}",
            self.text
        );
        for member in ["title", "detail"] {
            assert!(
                p[member].as_str().is_some_and(|s| !s.is_empty()),
                "{member} of {}",
                self.text
            );
        }
    }
}

/// A partner with one API key holding all its roles.
#[derive(Clone, Debug)]
pub struct Partner {
    /// The partner's id in the registry.
    pub id: Uuid,
    /// Its budget account, if it earns.
    pub budget: Option<Uuid>,
    /// Its venue account, if it redeems.
    pub venue: Option<Uuid>,
    /// The API key's secret, to send as a bearer token.
    pub key: String,
    /// The API key's id, for revoking or listing it.
    pub key_id: Uuid,
}

impl Partner {
    /// Its budget account; panics if it does not earn.
    #[track_caller]
    pub fn budget(&self) -> Uuid {
        self.budget.expect("an earn partner has a budget")
    }

    /// Its venue account; panics if it does not redeem.
    #[track_caller]
    pub fn venue(&self) -> Uuid {
        self.venue.expect("a spend partner has a venue account")
    }
}

/// A registered member.
#[derive(Clone, Debug)]
pub struct Member {
    /// The member's account id.
    pub id: Uuid,
    /// The member's credential, to send as a bearer token.
    pub credential: String,
}

/// The API of one server.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of the server at `base` (`http://host:port`), with no proxy.
    pub fn new(base: &str) -> Api {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("an HTTP client");
        Api {
            base: base.to_owned(),
            http,
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (which starts with `/`), to finish and [`Api::send`].
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request and reads its answer; panics if the server does not answer.
    pub async fn send(&self, request: RequestBuilder) -> Reply {
        Reply::read(request.send().await.expect("the server answers")).await
    }

    /// A request with an optional bearer credential, idempotency key and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    /// A `GET` of `path` with an optional bearer credential.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None, None).await
    }

    /// A POST with a fresh idempotency key.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        self.call(Method::POST, path, token, Some(&new_key()), body)
            .await
    }

    /// A POST with the given idempotency key.
    pub async fn post_keyed(
        &self,
        path: &str,
        token: Option<&str>,
        key: &str,
        body: Option<&Value>,
    ) -> Reply {
        self.call(Method::POST, path, token, Some(key), body).await
    }

    /// Creates a partner with `roles` (`earn`, `spend`) and an API key with all of them.
    pub async fn create_partner(&self, admin: &str, name: &str, roles: &[&str]) -> Partner {
        let reply = self
            .post(
                "/v1/partners",
                Some(admin),
                Some(&json!({"name": name, "roles": roles})),
            )
            .await;
        let partner = &reply.expect(201)["partner"];
        let id = uuid(&partner["id"]);
        let (key_id, key) = self
            .create_key(admin, json!({"kind": "partner", "id": id}))
            .await;
        Partner {
            id,
            budget: partner["budget_account"]
                .as_str()
                .map(|_| uuid(&partner["budget_account"])),
            venue: partner["venue_account"]
                .as_str()
                .map(|_| uuid(&partner["venue_account"])),
            key,
            key_id,
        }
    }

    /// Creates an API key for `holder` (as in the request body) and returns its id and secret.
    pub async fn create_key(&self, admin: &str, holder: Value) -> (Uuid, String) {
        let body = json!({"label": "test key", "holder": holder});
        let reply = self.post("/v1/api-keys", Some(admin), Some(&body)).await;
        let created = reply.expect(201);
        let secret = created["secret"].as_str().expect("a secret").to_owned();
        (uuid(&created["key"]["id"]), secret)
    }

    /// Revokes an API key.
    pub async fn revoke_key(&self, admin: &str, id: Uuid) {
        self.post(&format!("/v1/api-keys/{id}/revoke"), Some(admin), None)
            .await
            .expect(200);
    }

    /// Reverses entry `id` (a UUID string in an entry, or a UUID) with `token`.
    pub async fn reverse(&self, token: &str, id: impl std::fmt::Display) -> Reply {
        let body = json!({"reference": "recorded twice"});
        self.post(
            &format!("/v1/entries/{id}/reversal"),
            Some(token),
            Some(&body),
        )
        .await
    }

    /// Closes an account with an administrator's key.
    pub async fn close_account(&self, admin: &str, account: Uuid) -> Reply {
        self.post(&format!("/v1/accounts/{account}/close"), Some(admin), None)
            .await
    }

    /// Allocates `minutes` to an earn partner's budget and returns the entry.
    pub async fn allocate(&self, admin: &str, partner: Uuid, minutes: u64) -> Value {
        let body = json!({"partner_id": partner, "minutes": minutes});
        let reply = self.post("/v1/allocations", Some(admin), Some(&body)).await;
        reply.expect(201)["entry"].clone()
    }

    /// Registers a member with an administrator's or earn partner's key.
    pub async fn register_member(&self, registrar: &str) -> Member {
        let reply = self.post("/v1/members", Some(registrar), None).await;
        let body = reply.expect(201);
        Member {
            id: uuid(&body["member_id"]),
            credential: body["credential"]
                .as_str()
                .expect("a credential")
                .to_owned(),
        }
    }

    /// Records `minutes` of time given by `member`, issued with an earn partner's key.
    pub async fn earn_reply(&self, key: &str, member: Uuid, minutes: u64) -> Reply {
        let body = json!({"member_id": member, "minutes": minutes, "activity": "gardening"});
        self.post("/v1/earn", Some(key), Some(&body)).await
    }

    /// [`Api::earn_reply`], asserting success; returns the entry.
    pub async fn earn(&self, key: &str, member: Uuid, minutes: u64) -> Value {
        let reply = self.earn_reply(key, member, minutes).await;
        reply.expect(201)["entry"].clone()
    }

    /// Creates a spend code with a member's credential.
    pub async fn spend_code(&self, credential: &str, max_minutes: Option<u64>) -> String {
        let body = json!({"max_minutes": max_minutes});
        let reply = self
            .post("/v1/spend-codes", Some(credential), Some(&body))
            .await;
        reply.expect(201)["code"]
            .as_str()
            .expect("a code")
            .to_owned()
    }

    /// The body of a redemption of `minutes` with `code`, for one adult.
    pub fn redemption(code: &str, minutes: u64) -> Value {
        json!({"code": code, "minutes": minutes, "activity": "swim", "adults": 1, "children": 0})
    }

    /// The body of a redemption of `minutes` with a member's card `number` and `pin`, for one
    /// adult.
    pub fn card_redemption(number: &str, pin: &str, minutes: u64) -> Value {
        json!({"card_number": number, "pin": pin, "minutes": minutes, "activity": "swim", "adults": 1, "children": 0})
    }
    /// Issues `member` a card with `registrar`'s key and `pin` (generated if `None`); returns
    /// the card's number and the PIN.
    pub async fn issue_card(
        &self,
        registrar: &str,
        member: Uuid,
        pin: Option<&str>,
    ) -> (String, String) {
        let body = json!({"pin": pin});
        let reply = self
            .post(
                &format!("/v1/members/{member}/card"),
                Some(registrar),
                Some(&body),
            )
            .await;
        let issued = reply.expect(201);
        let number = issued["card_number"].as_str().expect("a number").to_owned();
        let pin = pin.map_or_else(
            || issued["pin"].as_str().expect("a generated PIN").to_owned(),
            str::to_owned,
        );
        (number, pin)
    }
    /// Redeems `minutes` with a member's card `number` and `pin`, with a venue's key.
    pub async fn redeem_card(
        &self,
        venue_key: &str,
        number: &str,
        pin: &str,
        minutes: u64,
    ) -> Reply {
        let body = Api::card_redemption(number, pin, minutes);
        self.post("/v1/redemptions", Some(venue_key), Some(&body))
            .await
    }
    /// Redeems `code` for `minutes` with a venue's key.
    pub async fn redeem(&self, venue_key: &str, code: &str, minutes: u64) -> Reply {
        let body = Api::redemption(code, minutes);
        self.post("/v1/redemptions", Some(venue_key), Some(&body))
            .await
    }

    /// Spends `minutes` of a member's credits at a venue (a code, then its redemption); returns
    /// the entry.
    pub async fn spend(&self, member: &Member, venue_key: &str, minutes: u64) -> Value {
        let code = self.spend_code(&member.credential, None).await;
        let reply = self.redeem(venue_key, &code, minutes).await;
        reply.expect(201)["entry"].clone()
    }

    /// Gives `minutes` from a member to another.
    pub async fn gift(&self, from: &Member, to: Uuid, minutes: u64) -> Reply {
        let body = json!({"to_member_id": to, "minutes": minutes});
        self.post("/v1/gifts", Some(&from.credential), Some(&body))
            .await
    }

    /// An account's balance in minutes, read with `token`.
    pub async fn balance(&self, token: &str, account: Uuid) -> i64 {
        let reply = self
            .get(&format!("/v1/accounts/{account}"), Some(token))
            .await;
        reply.expect(200)["balance_minutes"]
            .as_i64()
            .expect("a balance")
    }

    /// The number of entries in the ledger, from `/readyz`.
    pub async fn ledger_size(&self) -> u64 {
        let reply = self.get("/readyz", None).await;
        reply.expect(200)["entries"]
            .as_u64()
            .expect("an entry count")
    }
}

/// A running programme: a server, its administrator, an earn partner with
/// [`BUDGET_MINUTES`] in its budget, and a venue.
pub struct Scheme {
    /// The server process.
    pub server: TestServer,
    /// A client of it.
    pub api: Api,
    /// The first administrator's API key.
    pub admin: String,
    /// A partner that earns, its budget funded with [`BUDGET_MINUTES`].
    pub earner: Partner,
    /// A partner that redeems.
    pub venue: Partner,
}

impl Scheme {
    /// Starts a server with default settings and sets up the programme.
    pub async fn start() -> Scheme {
        Scheme::start_with(|_| {}).await
    }

    /// [`Scheme::start`] on a server whose settings `adjust` changed.
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Scheme {
        let server = TestServer::start_with(adjust);
        let api = Api::new(server.base());
        let admin = server.admin_key().to_owned();
        let earner = api
            .create_partner(&admin, "Riverside Lunch Club", &["earn"])
            .await;
        api.allocate(&admin, earner.id, BUDGET_MINUTES).await;
        let venue = api.create_partner(&admin, "Town Pool", &["spend"]).await;
        Scheme {
            server,
            api,
            admin,
            earner,
            venue,
        }
    }

    /// A member registered by the earn partner, who then earned `minutes` (if any).
    pub async fn member(&self, minutes: u64) -> Member {
        let member = self.api.register_member(&self.earner.key).await;
        if minutes > 0 {
            self.api.earn(&self.earner.key, member.id, minutes).await;
        }
        member
    }

    /// Restarts the server on the same data; the API follows it to its new address.
    pub fn restart(&mut self) {
        self.server.restart();
        self.api = Api::new(self.server.base());
    }
}
