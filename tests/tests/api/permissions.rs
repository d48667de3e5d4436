//! The permission matrix of `timecredits_server::auth`, table-driven: every actor against every
//! operation, with the exact status each must get. Writes that succeed for several actors get
//! fresh material for each (a new spend code, a new entry to reverse, a new key to revoke).

use reqwest::Method;
use serde_json::{json, Value};
use timecredits_tests::client::{new_key, Api, Member, Partner, Reply, Scheme};
use uuid::Uuid;

/// The callers, in the order of the expectation rows below: ten known ones (`both-earn` and
/// `both-spend` are keys of the two-role partner narrowed to one scope, `closed` a partner whose
/// accounts were closed), then three without a valid credential.
const ACTORS: [&str; 13] = [
    "admin",
    "auditor",
    "earn",
    "venue",
    "both",
    "member",
    "other",
    "both-earn",
    "both-spend",
    "closed",
    "none",
    "revoked",
    "forged",
];

/// The number of known callers, first in [`ACTORS`].
const KNOWN: usize = 10;

/// A row of expected statuses, in [`ACTORS`] order.
type Row = [u16; 13];

/// Who, of the known callers, in [`ACTORS`] order.
type Who = [bool; KNOWN];

/// Allowed for the given actors (with `ok`), forbidden for the other known ones, and
/// unauthorized without a valid credential.
const fn only(ok: u16, who: Who) -> Row {
    let mut row = [401; 13];
    let mut i = 0;
    while i < KNOWN {
        row[i] = if who[i] { ok } else { 403 };
        i += 1;
    }
    row
}

/// Readable by the given actors, not found for the other known ones.
const fn sees(who: Who) -> Row {
    let mut row = only(200, who);
    let mut i = 0;
    while i < KNOWN {
        if !who[i] {
            row[i] = 404;
        }
        i += 1;
    }
    row
}

const Y: bool = true;
const N: bool = false;

/// The codes of a refusal to show something, by what it is.
const ACCOUNT: &str = "account_not_found";
const ENTRY: &str = "entry_not_found";
const PARTNER: &str = "partner_not_found";
const CARD: &str = "card_not_found";
const MEMBER: &str = "member_not_found";

#[derive(Clone, Copy, Debug)]
enum Op {
    CreatePartner,
    ListPartners,
    GetPartner,
    ListMembers,
    Statement,
    CreateApiKey,
    ListApiKeys,
    CreateStaffLogin,
    ListStaffLogins,
    RevokeApiKey,
    SuspendPartner,
    ReinstatePartner,
    Allocate,
    CloseAccount,
    RotateKey,
    RegisterMember,
    RegisterMembersSheet,
    Earn,
    EarnBatch,
    EarnBatchCsv,
    CreateSpendCode,
    Redeem,
    Gift,
    ReverseEarnByEarner,
    ReverseEarnByBoth,
    ReverseSpendByVenue,
    ReverseSpendByBoth,
    SettleBothVenue,
    SettleBothBudget,
    LeaveMember,
    IssueCard,
    PrintCard,
    BlockCard,
    ResetPin,
    Profile,
    PutProfile,
    MemberData,
    EraseMember,
    Me,
    MemberAccount,
    MemberHistory,
    BudgetAccount,
    BudgetHistory,
    VenueAccount,
    BothVenueAccount,
    ClosedVenueAccount,
    EarnEntry,
    SpendEntry,
    GiftEntry,
    BudgetOpenEntry,
    EarnReceipt,
    GiftReceipt,
    Export,
    Consistency,
    Checkpoint,
    LedgerKey,
    Healthz,
    Readyz,
    UpcomingExpiries,
    SweepExpiries,
}

/// The earn partner's list of members: the partner itself and administrators read it; callers
/// that may see the partner (an auditor, members) are refused; other partners are told it is
/// not found.
const LIST_MEMBERS: Row = [
    200, 403, 200, 404, 404, 403, 403, 404, 404, 404, 401, 401, 401,
];

/// A partner's statement: its books, for readers of everything and the partner itself; members
/// see the partner but not its books (403); other partners do not see it (404).
const STATEMENT: Row = [
    200, 200, 200, 404, 404, 403, 403, 404, 404, 404, 401, 401, 401,
];

/// A member card's management (the member the earn partner registered): administrators and the
/// registering partner manage it; other partners that may manage cards are told it is not
/// found; every other caller is refused.
const fn card(ok: u16) -> Row {
    [
        ok, 403, ok, 403, 404, 403, 403, 404, 403, 403, 401, 401, 401,
    ]
}
/// Writing a member's profile, or erasing their data: administrators and the registering
/// partner; callers without the scope are refused before the member is looked at (403); other
/// earn partners are told there is no member they may read (404).
const MEMBER_DATA_WRITE: Row = [
    200, 403, 200, 403, 404, 403, 403, 404, 403, 403, 401, 401, 401,
];

/// What each operation answers to each actor.
#[rustfmt::skip]
const MATRIX: &[(Op, Row, &str)] = {
    use Op::*;
    //                                admin aud earn venue both memb other b-earn b-spend closed
    &[
        (CreatePartner,       only(201, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (ListPartners,        only(200, [Y, Y, N, N, N, N, N, N, N, N]), ""),
        (GetPartner,          sees(     [Y, Y, Y, N, N, Y, Y, N, N, N]), PARTNER),
        (ListMembers,         LIST_MEMBERS, PARTNER),
        (Statement,           STATEMENT, PARTNER),
        (CreateApiKey,        only(201, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (ListApiKeys,         only(200, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (CreateStaffLogin,    only(201, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (ListStaffLogins,     only(200, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (RevokeApiKey,        only(200, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (SuspendPartner,      only(200, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (ReinstatePartner,    only(200, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (Allocate,            only(201, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (CloseAccount,        only(201, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (RotateKey,           only(201, [Y, N, N, N, N, N, N, N, N, N]), ""),
        (RegisterMember,      only(201, [Y, N, Y, N, Y, N, N, Y, N, N]), ""),
        (RegisterMembersSheet, only(201, [Y, N, Y, N, Y, N, N, Y, N, N]), ""),
        (Earn,                only(201, [N, N, Y, N, Y, N, N, Y, N, N]), ""),
        (EarnBatch,           only(201, [N, N, Y, N, Y, N, N, Y, N, N]), ""),
        (EarnBatchCsv,        only(201, [N, N, Y, N, Y, N, N, Y, N, N]), ""),
        (CreateSpendCode,     only(201, [N, N, N, N, N, Y, Y, N, N, N]), ""),
        (Redeem,              only(201, [N, N, N, Y, Y, N, N, N, Y, N]), ""),
        (Gift,                only(201, [N, N, N, N, N, Y, Y, N, N, N]), ""),
        (ReverseEarnByEarner, only(201, [Y, N, Y, N, N, N, N, N, N, N]), ""),
        (ReverseEarnByBoth,   only(201, [Y, N, N, N, Y, N, N, Y, N, N]), ""),
        (ReverseSpendByVenue, only(201, [Y, N, N, Y, N, N, N, N, N, N]), ""),
        (ReverseSpendByBoth,  only(201, [Y, N, N, N, Y, N, N, N, Y, N]), ""),
        (SettleBothVenue,     only(201, [Y, N, N, N, Y, N, N, N, Y, N]), ""),
        (SettleBothBudget,    only(201, [Y, N, N, N, Y, N, N, Y, N, N]), ""),
        (LeaveMember,         only(201, [Y, N, Y, N, N, N, N, N, N, N]), ""),
        (IssueCard,           card(201), CARD),
        (PrintCard,           card(200), CARD),
        (BlockCard,           card(200), CARD),
        (ResetPin,            card(200), CARD),
        (Profile,             sees(     [Y, N, Y, N, N, Y, N, N, N, N]), MEMBER),
        (PutProfile,          MEMBER_DATA_WRITE, MEMBER),
        (MemberData,          sees(     [Y, N, Y, N, N, Y, N, N, N, N]), MEMBER),
        (EraseMember,         MEMBER_DATA_WRITE, MEMBER),
        (Me,                  only(200, [Y, Y, Y, Y, Y, Y, Y, Y, Y, Y]), ""),
        (MemberAccount,       sees(     [Y, Y, Y, N, N, Y, N, N, N, N]), ACCOUNT),
        (MemberHistory,       sees(     [Y, Y, Y, N, N, Y, N, N, N, N]), ACCOUNT),
        (BudgetAccount,       sees(     [Y, Y, Y, N, N, N, N, N, N, N]), ACCOUNT),
        (BudgetHistory,       sees(     [Y, Y, Y, N, N, N, N, N, N, N]), ACCOUNT),
        (VenueAccount,        sees(     [Y, Y, N, Y, N, N, N, N, N, N]), ACCOUNT),
        (BothVenueAccount,    sees(     [Y, Y, N, N, Y, N, N, Y, Y, N]), ACCOUNT),
        (ClosedVenueAccount,  sees(     [Y, Y, N, N, N, N, N, N, N, Y]), ACCOUNT),
        (EarnEntry,           sees(     [Y, Y, Y, N, N, Y, N, N, N, N]), ENTRY),
        (SpendEntry,          sees(     [Y, Y, Y, Y, N, Y, N, N, N, N]), ENTRY),
        (GiftEntry,           sees(     [Y, Y, Y, N, N, Y, Y, N, N, N]), ENTRY),
        (BudgetOpenEntry,     sees(     [Y, Y, Y, N, N, N, N, N, N, N]), ENTRY),
        (EarnReceipt,         sees(     [Y, Y, Y, N, N, Y, N, N, N, N]), ENTRY),
        (GiftReceipt,         sees(     [Y, Y, Y, N, N, Y, Y, N, N, N]), ENTRY),
        (Export,              only(200, [Y, Y, N, N, N, N, N, N, N, N]), ""),
        (Consistency,         [200; 13], ""),
        (Checkpoint,          [200; 13], ""),
        (LedgerKey,           [200; 13], ""),
        (Healthz,             [200; 13], ""),
        (Readyz,              [200; 13], ""),
        (UpcomingExpiries,    only(200, [Y, Y, Y, N, Y, N, N, Y, N, N]), ""),
        (SweepExpiries,       only(200, [Y, N, N, N, N, N, N, N, N, N]), ""),
    ]
};

/// The programme the matrix runs against.
struct World {
    scheme: Scheme,
    auditor: String,
    both: Partner,
    both_earn: String,
    both_spend: String,
    closed: Partner,
    member: Member,
    other: Member,
    revoked: String,
    earn_entry: Uuid,
    spend_entry: Uuid,
    gift_entry: Uuid,
    budget_open_entry: Uuid,
}

impl World {
    async fn new() -> World {
        // Every redemption in the matrix needs a fresh code, and most are refused: no limit
        // on live codes here.
        // An expiry policy, so that its routes answer (nothing is due for a year).
        let scheme = Scheme::start_with(|s| {
            s.spend_codes.max_live_per_member = 0;
            s.expiry = Some(timecredits_server::service::expiries::Policy {
                months: 12,
                notice_days: 30,
            });
        })
        .await;
        let (api, admin) = (&scheme.api, scheme.admin.as_str());
        let (_, auditor) = api.create_key(admin, json!({"kind": "auditor"})).await;
        let both = api
            .create_partner(admin, "Community Hub", &["earn", "spend"])
            .await;
        api.allocate(admin, both.id, 100_000).await;
        let narrowed = |scope: &str| json!({"kind": "partner", "id": both.id, "scopes": [scope]});
        let (_, both_earn) = api.create_key(admin, narrowed("earn")).await;
        let (_, both_spend) = api.create_key(admin, narrowed("spend")).await;
        // A partner that left the scheme: both its (empty) accounts are closed.
        let closed = api
            .create_partner(admin, "Former Partner", &["earn", "spend"])
            .await;
        for account in [closed.budget(), closed.venue()] {
            api.close_account(admin, account).await.expect(201);
        }
        let member = scheme.member(60_000).await;
        let other = scheme.member(60_000).await;
        // The member's card, for the card operations.
        let card = format!("/v1/members/{}/card", member.id);
        let body = json!({"pin": "1234"});
        api.post(&card, Some(&scheme.earner.key), Some(&body))
            .await
            .expect(201);
        // Credits in the two-role partner's venue account, for its settlements.
        api.spend(&member, &both.key, 60).await;
        // The earn partner's first key, replaced by a new one and revoked (a key rotation).
        let revoked = scheme.earner.key.clone();
        let earn_entry = uuid_of(&api.earn(&revoked, member.id, 60).await);
        let budget_open_entry = {
            let reply = api
                .get(
                    &format!("/v1/accounts/{}/entries?kind=open", scheme.earner.budget()),
                    Some(admin),
                )
                .await;
            uuid_of(&reply.expect(200)["entries"][0])
        };
        let (_, new_key) = api
            .create_key(admin, json!({"kind": "partner", "id": scheme.earner.id}))
            .await;
        api.revoke_key(admin, scheme.earner.key_id).await;
        let mut scheme = scheme;
        scheme.earner.key = new_key;
        let spend_entry = uuid_of(&scheme.api.spend(&member, &scheme.venue.key, 60).await);
        let gift = scheme.api.gift(&member, other.id, 60).await;
        let gift_entry = uuid_of(&gift.expect(201)["entry"]);
        World {
            scheme,
            auditor,
            both,
            both_earn,
            both_spend,
            closed,
            member,
            other,
            revoked,
            earn_entry,
            spend_entry,
            gift_entry,
            budget_open_entry,
        }
    }

    fn api(&self) -> &Api {
        &self.scheme.api
    }

    fn admin(&self) -> &str {
        &self.scheme.admin
    }

    /// The credential of actor `i` of [`ACTORS`].
    fn token(&self, i: usize) -> Option<&str> {
        Some(match ACTORS[i] {
            "admin" => self.admin(),
            "auditor" => &self.auditor,
            "earn" => &self.scheme.earner.key,
            "venue" => &self.scheme.venue.key,
            "both" => &self.both.key,
            "member" => &self.member.credential,
            "other" => &self.other.credential,
            "both-earn" => &self.both_earn,
            "both-spend" => &self.both_spend,
            "closed" => &self.closed.key,
            "none" => return None,
            "revoked" => &self.revoked,
            "forged" => "tcm_bm90IGEgcmVhbCBjcmVkZW50aWFsIGF0IGFsbA",
            other => unreachable!("actor {other}"),
        })
    }

    /// A fresh movement by `partner_key` to reverse: an earn, or (for a venue) a spend.
    async fn movement_by(&self, partner_key: &str, spend: bool) -> Uuid {
        let api = self.api();
        if spend {
            uuid_of(&api.spend(&self.member, partner_key, 1).await)
        } else {
            uuid_of(&api.earn(partner_key, self.member.id, 1).await)
        }
    }

    /// Sends `op` as actor `i`, after preparing what it needs.
    async fn call(&self, op: Op, i: usize) -> Reply {
        let api = self.api();
        let token = self.token(i);
        let (earner, venue, both) = (&self.scheme.earner, &self.scheme.venue, &self.both);
        let get = |path: String| async move { api.get(&path, token).await };
        let post = |path: String, body: Option<Value>| async move {
            api.call(Method::POST, &path, token, Some(&new_key()), body.as_ref())
                .await
        };
        let earn_body = json!({"member_id": self.member.id, "minutes": 1, "activity": "matrix"});
        match op {
            Op::CreatePartner => {
                post(
                    "/v1/partners".into(),
                    Some(json!({"name": "New", "roles": ["earn"]})),
                )
                .await
            }
            Op::ListPartners => get("/v1/partners".into()).await,
            Op::GetPartner => get(format!("/v1/partners/{}", earner.id)).await,
            Op::ListMembers => get(format!("/v1/partners/{}/members", earner.id)).await,
            Op::Statement => {
                let year = chrono::Utc::now().format("%Y");
                get(format!("/v1/partners/{}/statement?year={year}", earner.id)).await
            }
            Op::CreateApiKey => {
                let body = json!({"label": "k", "holder": {"kind": "partner", "id": venue.id}});
                post("/v1/api-keys".into(), Some(body)).await
            }
            Op::ListApiKeys => get("/v1/api-keys".into()).await,
            Op::CreateStaffLogin => {
                let username = format!("staff-{}", new_key());
                let holder = json!({"kind": "partner", "id": venue.id});
                let body = json!({"username": username, "label": "till", "holder": holder});
                post("/v1/staff-logins".into(), Some(body)).await
            }
            Op::ListStaffLogins => get("/v1/staff-logins".into()).await,
            Op::RevokeApiKey => {
                let (id, _) = api
                    .create_key(self.admin(), json!({"kind": "auditor"}))
                    .await;
                post(format!("/v1/api-keys/{id}/revoke"), None).await
            }
            Op::SuspendPartner | Op::ReinstatePartner => {
                // A partner of its own for each call, suspended first to be reinstated.
                let partner = api.create_partner(self.admin(), "Brief", &["spend"]).await;
                let path = |action: &str| format!("/v1/partners/{}/{action}", partner.id);
                if let Op::ReinstatePartner = op {
                    api.post(&path("suspend"), Some(self.admin()), None)
                        .await
                        .expect(200);
                    post(path("reinstate"), None).await
                } else {
                    post(path("suspend"), None).await
                }
            }
            Op::Allocate => {
                let body = json!({"partner_id": earner.id, "minutes": 60});
                post("/v1/allocations".into(), Some(body)).await
            }
            Op::CloseAccount => {
                let empty = api.register_member(self.admin()).await;
                post(format!("/v1/accounts/{}/close", empty.id), None).await
            }
            Op::RotateKey => post("/v1/key-rotations".into(), None).await,
            Op::RegisterMember => post("/v1/members".into(), None).await,
            Op::RegisterMembersSheet => {
                let sheet = "reference\nM-1\n";
                crate::sheets::upload_to("/v1/members/batch", api, token, &new_key(), sheet).await
            }
            Op::Earn => post("/v1/earn".into(), Some(earn_body)).await,
            Op::EarnBatch => {
                post("/v1/earn/batch".into(), Some(json!({"items": [earn_body]}))).await
            }
            Op::EarnBatchCsv => {
                let sheet = format!("member_id,hours,activity\n{},0:01,matrix\n", self.member.id);
                crate::sheets::upload(api, token, &new_key(), &sheet).await
            }
            Op::CreateSpendCode => post("/v1/spend-codes".into(), Some(json!({}))).await,
            Op::Redeem => {
                let code = api.spend_code(&self.member.credential, None).await;
                post("/v1/redemptions".into(), Some(Api::redemption(&code, 1))).await
            }
            Op::Gift => {
                // Each member gives to the other.
                let to = if token == Some(&self.other.credential) {
                    self.member.id
                } else {
                    self.other.id
                };
                post(
                    "/v1/gifts".into(),
                    Some(json!({"to_member_id": to, "minutes": 1})),
                )
                .await
            }
            Op::ReverseEarnByEarner
            | Op::ReverseEarnByBoth
            | Op::ReverseSpendByVenue
            | Op::ReverseSpendByBoth => {
                let (by, spend) = match op {
                    Op::ReverseEarnByEarner => (earner, false),
                    Op::ReverseEarnByBoth => (both, false),
                    Op::ReverseSpendByBoth => (both, true),
                    _ => (venue, true),
                };
                let entry = self.movement_by(&by.key, spend).await;
                post(format!("/v1/entries/{entry}/reversal"), Some(json!({}))).await
            }
            Op::SettleBothVenue | Op::SettleBothBudget => {
                let account = match op {
                    Op::SettleBothVenue => "venue",
                    _ => "budget",
                };
                let body = json!({"partner_id": both.id, "account": account, "minutes": 1});
                post("/v1/settlements".into(), Some(body)).await
            }
            Op::LeaveMember => {
                // A fresh member of the earn partner's, with credits to retire.
                let leaving = self.scheme.member(5).await;
                let body = json!({"remaining": "retire"});
                post(format!("/v1/members/{}/leave", leaving.id), Some(body)).await
            }
            Op::IssueCard => {
                let body = json!({"pin": "1234"});
                post(format!("/v1/members/{}/card", self.member.id), Some(body)).await
            }
            Op::PrintCard => get(format!("/v1/members/{}/card", self.member.id)).await,
            Op::BlockCard => post(format!("/v1/members/{}/card/block", self.member.id), None).await,
            Op::ResetPin => {
                let body = json!({});
                post(
                    format!("/v1/members/{}/card/pin", self.member.id),
                    Some(body),
                )
                .await
            }
            Op::Profile => get(format!("/v1/members/{}/profile", self.member.id)).await,
            Op::PutProfile => {
                let path = format!("/v1/members/{}/profile", self.member.id);
                let body = json!({"age_band": "undisclosed"});
                api.call(Method::PUT, &path, token, Some(&new_key()), Some(&body))
                    .await
            }
            Op::MemberData => get(format!("/v1/members/{}/data", self.member.id)).await,
            Op::EraseMember => {
                // A fresh member of the earn partner's, who left.
                let leaving = self.scheme.member(0).await;
                let body = json!({"remaining": "retire"});
                let leave = format!("/v1/members/{}/leave", leaving.id);
                api.post(&leave, Some(self.admin()), Some(&body))
                    .await
                    .expect(201);
                post(format!("/v1/members/{}/erasure", leaving.id), None).await
            }
            Op::Me => get("/v1/me".into()).await,
            Op::MemberAccount => get(format!("/v1/accounts/{}", self.member.id)).await,
            Op::MemberHistory => get(format!("/v1/accounts/{}/entries", self.member.id)).await,
            Op::BudgetAccount => get(format!("/v1/accounts/{}", earner.budget())).await,
            Op::BudgetHistory => get(format!("/v1/accounts/{}/entries", earner.budget())).await,
            Op::VenueAccount => get(format!("/v1/accounts/{}", venue.venue())).await,
            Op::BothVenueAccount => get(format!("/v1/accounts/{}", both.venue())).await,
            Op::ClosedVenueAccount => get(format!("/v1/accounts/{}", self.closed.venue())).await,
            Op::EarnEntry => get(format!("/v1/entries/{}", self.earn_entry)).await,
            Op::SpendEntry => get(format!("/v1/entries/{}", self.spend_entry)).await,
            Op::GiftEntry => get(format!("/v1/entries/{}", self.gift_entry)).await,
            Op::BudgetOpenEntry => get(format!("/v1/entries/{}", self.budget_open_entry)).await,
            Op::EarnReceipt => get(format!("/v1/entries/{}/receipt", self.earn_entry)).await,
            Op::GiftReceipt => get(format!("/v1/entries/{}/receipt", self.gift_entry)).await,
            Op::Export => get("/v1/ledger/export".into()).await,
            Op::Consistency => get("/v1/ledger/consistency?from=1&to=2".into()).await,
            Op::Checkpoint => get("/v1/ledger/checkpoint".into()).await,
            Op::LedgerKey => get("/v1/ledger/key".into()).await,
            Op::Healthz => get("/healthz".into()).await,
            Op::Readyz => get("/readyz".into()).await,
            Op::UpcomingExpiries => get("/v1/expiries/upcoming".into()).await,
            Op::SweepExpiries => post("/v1/expiries/sweep".into(), None).await,
        }
    }
}

fn uuid_of(entry: &Value) -> Uuid {
    timecredits_tests::client::uuid(&entry["id"])
}

/// Whether `reply` is what `expected` says, with the problem code a refusal must carry.
fn check(reply: &Reply, expected: u16, not_found: &str) -> Result<(), String> {
    let code = match expected {
        401 => "unauthorized",
        403 => "forbidden",
        404 => not_found,
        _ if reply.status == expected => return Ok(()),
        _ => "",
    };
    let got = reply.json["code"].as_str().unwrap_or("");
    // Not found must not claim that the thing does not exist: it may, for another caller.
    let detail = reply.json["detail"].as_str().unwrap_or("");
    if expected == 404 && detail.contains("does not exist") {
        return Err(format!("a 404 that claims too much: {detail}"));
    }
    let problem = reply.header("content-type") == Some(timecredits_tests::client::PROBLEM_JSON);
    if reply.status == expected && got == code && problem {
        Ok(())
    } else {
        Err(format!(
            "expected {expected} {code}, got {} {}",
            reply.status, reply.text
        ))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_actor_gets_exactly_what_the_permission_matrix_allows() {
    let world = World::new().await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for (op, row, not_found) in MATRIX {
        for (i, expected) in row.iter().enumerate() {
            let reply = world.call(*op, i).await;
            checked += 1;
            if let Err(why) = check(&reply, *expected, not_found) {
                failures.push(format!("{op:?} as {}: {why}", ACTORS[i]));
            }
        }
    }
    assert_eq!(checked, MATRIX.len() * ACTORS.len());
    assert!(
        failures.is_empty(),
        "{} of {checked} calls broke the permission matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_narrowed_to_one_role_has_only_that_role() {
    let world = World::new().await;
    let (api, admin, both) = (world.api(), world.admin(), &world.both);
    let (_, till) = api
        .create_key(
            admin,
            json!({"kind": "partner", "id": both.id, "scopes": ["spend"]}),
        )
        .await;
    let earn = api.earn_reply(&till, world.member.id, 1).await;
    earn.assert_problem(403, "forbidden");
    api.post("/v1/members", Some(&till), None)
        .await
        .assert_problem(403, "forbidden");
    api.spend(&world.member, &till, 1).await;
    // A scope the partner does not have cannot be given to its key.
    let body = json!({"label": "x", "holder": {"kind": "partner", "id": world.scheme.venue.id, "scopes": ["earn"]}});
    api.post("/v1/api-keys", Some(admin), Some(&body))
        .await
        .assert_problem(422, "wrong_partner_role");
}

#[tokio::test(flavor = "multi_thread")]
async fn partners_issue_only_from_their_own_budget_and_redeem_only_into_their_own_account() {
    let world = World::new().await;
    let (api, member) = (world.api(), &world.member);
    let venue_before = world
        .api()
        .balance(world.admin(), world.scheme.venue.venue())
        .await;
    let both_venue_before = world.api().balance(world.admin(), world.both.venue()).await;
    let budget_before = api
        .balance(world.admin(), world.scheme.earner.budget())
        .await;
    // The both-roles partner's earn comes from its own budget, its redemption goes to its own
    // venue account, whatever accounts the other partners have.
    let entry = api.earn(&world.both.key, member.id, 7).await;
    assert_eq!(entry["debit"], json!(world.both.budget()));
    let entry = api.spend(member, &world.both.key, 5).await;
    assert_eq!(entry["credit"], json!(world.both.venue()));
    assert_eq!(
        api.balance(world.admin(), world.scheme.venue.venue()).await,
        venue_before
    );
    assert_eq!(
        api.balance(world.admin(), world.both.venue()).await,
        both_venue_before + 5
    );
    assert_eq!(
        api.balance(world.admin(), world.scheme.earner.budget())
            .await,
        budget_before
    );
    // A partner's history shows its own accounts' entries only.
    let history = api
        .get(
            &format!("/v1/accounts/{}/entries?limit=500", world.both.budget()),
            Some(&world.both.key),
        )
        .await;
    for e in history.expect(200)["entries"].as_array().unwrap() {
        assert!(
            e["debit"] == json!(world.both.budget())
                || e["credit"] == json!(world.both.budget())
                || e["account"] == json!(world.both.budget()),
            "{e}"
        );
    }
}
