//! Members' privacy: no profile field ever reaches signed bytes, an export or a report; who
//! sees a profile; erasure (idempotent, across a restart, leaving no byte of the member in the
//! live files); the member's data export; the age-band report adding up.

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};
use timecredits_testkit::rng::{clock_seed, Rng};
use timecredits_tests::client::{new_key, uuid, Api, Member, Scheme};
use uuid::Uuid;

/// A marker no other text holds: letters only (a postcode district takes no digit).
fn marker(rng: &mut Rng, prefix: &str) -> String {
    let letters: String = (0..16)
        .map(|_| char::from(b'a' + rng.below(26) as u8))
        .collect();
    format!("{prefix}{letters}")
}

/// A profile whose every text field is a fresh marker; returns it and its markers.
fn marked_profile(rng: &mut Rng, consent: bool) -> (Value, Vec<String>) {
    let (name, contact, district) = (
        marker(rng, "Name"),
        marker(rng, "contact"),
        marker(rng, "District"),
    );
    let profile = json!({
        "display_name": name,
        "contact": format!("{contact}@example.org"),
        "age_band": *rng.pick(&["under_16", "16_24", "25_49", "50_64", "65_plus"]),
        "postcode_district": district,
        "consent": {"contact_about_activities": consent, "anonymous_statistics": consent},
    });
    (profile, vec![name, contact, district])
}

async fn put_profile(api: &Api, token: &str, member: Uuid, profile: &Value) -> Value {
    let path = format!("/v1/members/{member}/profile");
    let reply = api
        .call(
            Method::PUT,
            &path,
            Some(token),
            Some(&new_key()),
            Some(profile),
        )
        .await;
    reply.expect(200).clone()
}

/// Every file under `dir` (recursively) that holds one of `markers`, with the marker.
fn files_holding(dir: &Path, markers: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_holding(&path, markers));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for m in markers {
            if bytes.windows(m.len()).any(|w| w == m.as_bytes()) {
                found.push(format!("{} holds {m}", path.display()));
            }
        }
    }
    found
}

fn holds_any(text: &str, markers: &[String]) -> Vec<String> {
    markers
        .iter()
        .filter(|m| text.contains(m.as_str()))
        .cloned()
        .collect()
}

/// Everything a reader outside the profile store can be shown: the export, checkpoint,
/// reports (JSON and CSV, the age bands included), the partner's member list and histories.
async fn public_texts(scheme: &Scheme, members: &[&Member]) -> Vec<String> {
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let mut texts = Vec::new();
    for path in [
        "/v1/ledger/export".to_owned(),
        "/v1/ledger/checkpoint".to_owned(),
        "/v1/reports/impact".to_owned(),
        "/v1/reports/impact?format=csv".to_owned(),
        "/v1/reports/impact/age-bands".to_owned(),
        "/v1/reports/impact/age-bands?format=csv".to_owned(),
        format!("/v1/partners/{}/members", scheme.earner.id),
        format!("/v1/partners/{}/members?format=csv", scheme.earner.id),
    ] {
        texts.push(api.get(&path, Some(admin)).await.text);
    }
    for m in members {
        let history = format!("/v1/accounts/{}/entries", m.id);
        texts.push(api.get(&history, Some(admin)).await.text);
    }
    texts
}

#[tokio::test(flavor = "multi_thread")]
async fn no_profile_field_reaches_signed_bytes_an_export_or_a_report_and_an_erasure_forgets() {
    let mut rng = Rng::new(clock_seed("privacy markers"));
    let scheme = Scheme::start().await;
    let (api, admin, club) = (&scheme.api, scheme.admin.as_str(), &scheme.earner);
    let (ada, bob) = (scheme.member(600).await, scheme.member(600).await);
    let (ada_profile, ada_markers) = marked_profile(&mut rng, true);
    let (bob_profile, bob_markers) = marked_profile(&mut rng, false);
    // Superseded values must go too: Ada's first profile is replaced.
    let (first, first_markers) = marked_profile(&mut rng, true);
    put_profile(api, &club.key, ada.id, &first).await;
    put_profile(api, &club.key, ada.id, &ada_profile).await;
    put_profile(api, admin, bob.id, &bob_profile).await;
    // Writes of every kind around them.
    api.spend(&ada, &scheme.venue.key, 60).await;
    api.gift(&bob, ada.id, 30).await.expect(201);
    let earn = api.earn(&club.key, bob.id, 45).await;
    api.reverse(&club.key, uuid(&earn["id"])).await.expect(201);
    let settle = json!({"partner_id": scheme.venue.id, "account": "venue"});
    api.post("/v1/settlements", Some(admin), Some(&settle))
        .await
        .expect(201);
    let reissue = format!("/v1/members/{}/credential", bob.id);
    api.post(&reissue, Some(&club.key), None).await.expect(201);

    let all: Vec<String> = [&ada_markers[..], &bob_markers, &first_markers].concat();
    for text in public_texts(&scheme, &[&ada, &bob]).await {
        assert_eq!(holds_any(&text, &all), Vec::<String>::new(), "{text}");
    }
    let dir = scheme.server.data_dir().to_owned();
    let outside: Vec<String> = files_holding(&dir, &all)
        .into_iter()
        .filter(|f| !f.contains("/profiles holds"))
        .collect();
    assert_eq!(
        outside,
        Vec::<String>::new(),
        "profile data outside its store"
    );
    // The scan can see: the store holds the live profiles.
    let store = String::from_utf8_lossy(&std::fs::read(dir.join("profiles")).unwrap()).into_owned();
    assert_eq!(holds_any(&store, &ada_markers), ada_markers);

    // Ada leaves and asks for erasure: not one byte of her profile stays in the live files.
    let leave = format!("/v1/members/{}/leave", ada.id);
    api.post(
        &leave,
        Some(&club.key),
        Some(&json!({"remaining": "retire"})),
    )
    .await
    .expect(201);
    let erasure = format!("/v1/members/{}/erasure", ada.id);
    api.post(&erasure, Some(&club.key), None).await.expect(200);
    let ada_all = [&ada_markers[..], &first_markers].concat();
    assert_eq!(files_holding(&dir, &ada_all), Vec::<String>::new());
    assert_eq!(files_holding(&dir, &bob_markers).len(), bob_markers.len());
    // Nor after a restart; and Bob's profile is intact.
    let mut scheme = scheme;
    scheme.restart();
    assert_eq!(files_holding(&dir, &ada_all), Vec::<String>::new());
    let bob_now = scheme
        .api
        .get(
            &format!("/v1/members/{}/profile", bob.id),
            Some(&scheme.earner.key),
        )
        .await;
    assert_eq!(bob_now.expect(200)["profile"], bob_profile);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_registering_partner_administrators_and_the_member_see_a_profile() {
    let scheme = Scheme::start().await;
    let (api, admin, club) = (&scheme.api, scheme.admin.as_str(), &scheme.earner);
    let member = scheme.member(0).await;
    let other_member = scheme.member(0).await;
    let other_club = api.create_partner(admin, "Food Bank", &["earn"]).await;
    let (_, auditor) = api.create_key(admin, json!({"kind": "auditor"})).await;
    let profile = json!({"display_name": "Ada", "age_band": "65_plus", "postcode_district": "n1"});
    let stored = put_profile(api, &club.key, member.id, &profile).await;
    assert_eq!(stored["profile"]["postcode_district"], "N1");
    let path = format!("/v1/members/{}/profile", member.id);
    for token in [admin, club.key.as_str(), member.credential.as_str()] {
        let reply = api.get(&path, Some(token)).await;
        assert_eq!(reply.expect(200)["profile"]["display_name"], "Ada");
    }
    let nobody = format!("/v1/members/{}/profile", Uuid::now_v7());
    for token in [
        other_club.key.as_str(),
        scheme.venue.key.as_str(),
        auditor.as_str(),
        other_member.credential.as_str(),
    ] {
        for p in [&path, &nobody] {
            let reply = api.get(p, Some(token)).await;
            reply.assert_problem(404, "member_not_found");
            let detail = reply.json["detail"].as_str().unwrap();
            assert!(!detail.contains("does not exist"), "{detail}");
        }
        // The data export answers the same.
        let data = format!("/v1/members/{}/data", member.id);
        api.get(&data, Some(token))
            .await
            .assert_problem(404, "member_not_found");
    }
    // Another earn partner may not write it either, and is told the same.
    let put = |token: &str| {
        let token = token.to_owned();
        let path = path.clone();
        let profile = profile.clone();
        async move {
            api.call(
                Method::PUT,
                &path,
                Some(&token),
                Some(&new_key()),
                Some(&profile),
            )
            .await
        }
    };
    put(&other_club.key)
        .await
        .assert_problem(404, "member_not_found");
    put(&member.credential)
        .await
        .assert_problem(403, "forbidden");
    put(&scheme.venue.key)
        .await
        .assert_problem(403, "forbidden");
    // A field refused is named; a repeat is answered from the store.
    let bad = json!({"postcode_district": "N1 9GU"});
    let reply = api
        .call(
            Method::PUT,
            &path,
            Some(&club.key),
            Some(&new_key()),
            Some(&bad),
        )
        .await;
    reply.assert_problem(400, "invalid_request");
    assert!(reply.json["detail"]
        .as_str()
        .unwrap()
        .starts_with("postcode_district:"));
    let key = new_key();
    let first = api
        .call(
            Method::PUT,
            &path,
            Some(&club.key),
            Some(&key),
            Some(&profile),
        )
        .await;
    let again = api
        .call(
            Method::PUT,
            &path,
            Some(&club.key),
            Some(&key),
            Some(&profile),
        )
        .await;
    assert!(again.replayed() && !first.replayed());
    assert_eq!(again.json, first.json);
    let other = json!({"display_name": "Bob"});
    api.call(
        Method::PUT,
        &path,
        Some(&club.key),
        Some(&key),
        Some(&other),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_is_answered_the_same_every_time_and_across_a_restart() {
    let mut scheme = Scheme::start().await;
    let member = scheme.member(90).await;
    let (api, club) = (&scheme.api, &scheme.earner);
    let registered = api
        .request(Method::POST, "/v1/members")
        .bearer_auth(&club.key)
        .header("Idempotency-Key", new_key())
        .query(&[("reference", "REF-qzxv-erased")]);
    let registered = api.send(registered).await.expect(201).clone();
    let (id, credential) = (
        uuid(&registered["member_id"]),
        registered["credential"].as_str().unwrap().to_owned(),
    );
    // A marker long enough that random bytes (hashes, signatures, keys) in the
    // stores never hold it by chance: "Zed" alone turned up in `state/db`.
    let name = "Zed-qzxv-display-name";
    put_profile(api, &club.key, id, &json!({"display_name": name})).await;
    api.earn(&club.key, id, 60).await;
    let leave = format!("/v1/members/{id}/leave");
    let gift = json!({"remaining": {"gift_to": member.id}});
    api.post(&leave, Some(&club.key), Some(&gift))
        .await
        .expect(201);
    let erasure = format!("/v1/members/{id}/erasure");
    let key = new_key();
    let first = api.post_keyed(&erasure, Some(&club.key), &key, None).await;
    let record = first.expect(200).clone();
    assert_eq!(uuid(&record["member_id"]), id);
    assert_eq!(uuid(&record["erased_by"]), club.id);
    let again = api.post_keyed(&erasure, Some(&club.key), &key, None).await;
    assert!(again.replayed());
    assert_eq!(again.expect(200), &record);
    let by_admin = api.post(&erasure, Some(&scheme.admin), None).await;
    assert_eq!(by_admin.expect(200), &record);
    let gone = |reply: timecredits_tests::client::Reply| reply.assert_problem(410, "member_erased");
    gone(
        api.get(&format!("/v1/members/{id}/profile"), Some(&club.key))
            .await,
    );
    gone(
        api.get(&format!("/v1/members/{id}/data"), Some(&scheme.admin))
            .await,
    );
    api.get("/v1/me", Some(&credential))
        .await
        .assert_problem(401, "unauthorized");
    let dir = scheme.server.data_dir().to_owned();
    assert_eq!(
        files_holding(&dir, &["REF-qzxv-erased".into(), name.into()]),
        Vec::<String>::new()
    );
    // The pseudonymous entries stay, and the credits went where the leaving said.
    assert_eq!(api.balance(&scheme.admin, member.id).await, 150);
    let history = api
        .get(&format!("/v1/accounts/{id}/entries"), Some(&scheme.admin))
        .await;
    assert!(history.expect(200)["entries"].as_array().unwrap().len() >= 3);

    scheme.restart();
    let api = &scheme.api;
    let after = api.post(&erasure, Some(&scheme.earner.key), None).await;
    assert_eq!(after.expect(200), &record);
    gone(
        api.get(&format!("/v1/members/{id}/profile"), Some(&scheme.admin))
            .await,
    );
    api.get("/v1/me", Some(&credential))
        .await
        .assert_problem(401, "unauthorized");
    let list = api
        .get(
            &format!("/v1/partners/{}/members?limit=100", scheme.earner.id),
            Some(&scheme.earner.key),
        )
        .await;
    assert!(!list.text.contains("REF-qzxv-erased"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_exports_everything_held_about_them() {
    let scheme = Scheme::start().await;
    let (api, club) = (&scheme.api, &scheme.earner);
    let member = scheme.member(120).await;
    api.spend(&member, &scheme.venue.key, 30).await;
    let profile = json!({"contact": "07700 900123", "consent": {"contact_about_activities": true}});
    put_profile(api, &club.key, member.id, &profile).await;
    let data = api
        .get(
            &format!("/v1/members/{}/data", member.id),
            Some(&member.credential),
        )
        .await;
    let data = data.expect(200);
    assert_eq!(uuid(&data["member_id"]), member.id);
    assert_eq!(uuid(&data["registered_by"]["id"]), club.id);
    assert_eq!(data["registered_by"]["name"], "Riverside Lunch Club");
    assert_eq!(data["profile"]["contact"], "07700 900123");
    assert_eq!(data["profile"]["consent"]["anonymous_statistics"], false);
    assert_eq!(data["credential"]["generation"], 0);
    assert_eq!(data["wallet"]["balance_minutes"], 90);
    let history = api
        .get(
            &format!("/v1/accounts/{}/entries", member.id),
            Some(&scheme.admin),
        )
        .await;
    assert_eq!(data["entries"], history.expect(200)["entries"]);
    // The registering partner and an administrator get the same document.
    for token in [club.key.as_str(), scheme.admin.as_str()] {
        let same = api
            .get(&format!("/v1/members/{}/data", member.id), Some(token))
            .await;
        assert_eq!(same.expect(200), data);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_age_bands_add_up_to_the_impact_report_s_time_given() {
    let scheme = Scheme::start().await;
    let (api, club, admin) = (&scheme.api, &scheme.earner, scheme.admin.as_str());
    let bands = [
        Some(("65_plus", true)),
        Some(("65_plus", true)),
        Some(("16_24", false)),
        None,
        Some(("25_49", true)),
    ];
    for (i, band) in bands.iter().enumerate() {
        let member = scheme.member(0).await;
        if let Some((band, consent)) = band {
            let profile = json!({"age_band": band, "consent": {"anonymous_statistics": consent}});
            put_profile(api, &club.key, member.id, &profile).await;
        }
        for _ in 0..=i {
            api.earn(&club.key, member.id, 10 * (i as u64 + 1)).await;
        }
    }
    let rows = api.get("/v1/reports/impact/age-bands", Some(admin)).await;
    let rows = rows.expect(200).as_array().unwrap().clone();
    let value = |band: &str, figure: &str| {
        rows.iter()
            .find(|r| r["band"] == band && r["figure"] == figure)
            .map_or(0, |r| r["value"].as_i64().unwrap())
    };
    // Members 0 and 1: 10 + 2 × 20 minutes; member 4: 5 × 50; members 2 and 3 (no consent, no
    // profile) are counted, but not by age.
    assert_eq!(value("65_plus", "given_minutes"), 50);
    assert_eq!(value("65_plus", "members_active"), 2);
    assert_eq!(value("25_49", "given_minutes"), 250);
    assert_eq!(value("16_24", "given_minutes"), 0);
    assert_eq!(value("not_included", "given_minutes"), 3 * 30 + 4 * 40);
    assert_eq!(value("not_included", "members_active"), 2);
    // Per period, the bands add up to the impact report's earn rows.
    let report = api.get("/v1/reports/impact", Some(admin)).await;
    let report = report.expect(200);
    let sum = |rows: &mut dyn Iterator<Item = &Value>| {
        let mut by_period = BTreeMap::new();
        for r in rows {
            *by_period
                .entry(r["period"].as_str().unwrap().to_owned())
                .or_insert(0) += r["value"].as_i64().unwrap();
        }
        by_period
    };
    for figure in ["given_minutes", "earns"] {
        let banded = sum(&mut rows.iter().filter(|r| r["figure"] == figure));
        let earned = sum(&mut report
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["section"] == "earn" && r["figure"] == figure));
        assert_eq!(banded, earned, "{figure}");
    }
    let csv = api
        .get("/v1/reports/impact/age-bands?format=csv", Some(&club.key))
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.text.starts_with("period,band,figure,value\r\n"));
    assert_eq!(csv.text.lines().count(), rows.len() + 1);
    api.get("/v1/reports/impact/age-bands", Some(&scheme.venue.key))
        .await
        .expect(200);
}
