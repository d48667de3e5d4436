//! Member credentials that can be revoked and reissued (a lost card), by an administrator or the
//! partner that registered the member: the old credential is refused at once, and a repeated
//! registration shows the credential only within the replay window and never after a reissue.

use serde_json::Value;
use timecredits_tests::client::{new_key, Api, Scheme};
use uuid::Uuid;

async fn me(api: &Api, credential: &str) -> u16 {
    api.get("/v1/me", Some(credential)).await.status
}

fn credential(body: &Value) -> String {
    body["credential"]
        .as_str()
        .expect("a credential")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_credential_is_refused_at_once_and_a_reissued_one_replaces_it() {
    let mut scheme = Scheme::start().await;
    let (api, admin, earner) = (
        scheme.api.clone(),
        scheme.admin.clone(),
        scheme.earner.clone(),
    );
    let alice = scheme.member(60).await;
    assert_eq!(me(&api, &alice.credential).await, 200);

    let revoke = format!("/v1/members/{}/credential/revoke", alice.id);
    let key = new_key();
    let revoked = api.post_keyed(&revoke, Some(&earner.key), &key, None).await;
    let status = revoked.expect(200);
    assert!(status["revoked"].is_string(), "{status}");
    assert_eq!(status["generation"], 0);
    api.get("/v1/me", Some(&alice.credential))
        .await
        .assert_problem(401, "unauthorized");
    let again = api.post_keyed(&revoke, Some(&earner.key), &key, None).await;
    assert!(again.replayed());
    assert_eq!(again.expect(200), status);

    // A lost card: the administrator issues a new credential.
    let reissue = format!("/v1/members/{}/credential", alice.id);
    let key = new_key();
    let issued = api.post_keyed(&reissue, Some(&admin), &key, None).await;
    let first = credential(issued.expect(201));
    assert_eq!(issued.json["status"]["generation"], 1);
    assert!(issued.json["status"]["revoked"].is_null());
    assert_ne!(first, alice.credential);
    assert_eq!(me(&api, &first).await, 200);
    assert_eq!(me(&api, &alice.credential).await, 401);
    let repeat = api.post_keyed(&reissue, Some(&admin), &key, None).await;
    assert!(repeat.replayed());
    assert_eq!(credential(repeat.expect(201)), first);

    // The registering partner reissues again: the previous reissue is refused at once, and the
    // repeat of that reissue no longer shows its credential.
    let second = credential(
        api.post(&reissue, Some(&earner.key), None)
            .await
            .expect(201),
    );
    assert_eq!(me(&api, &second).await, 200);
    assert_eq!(me(&api, &first).await, 401);
    let repeat = api.post_keyed(&reissue, Some(&admin), &key, None).await;
    assert!(
        repeat.expect(201)["credential"].is_null(),
        "{}",
        repeat.text
    );

    // All of it survives a restart.
    scheme.restart();
    let api = scheme.api.clone();
    assert_eq!(me(&api, &second).await, 200);
    for old in [&alice.credential, &first] {
        assert_eq!(me(&api, old).await, 401);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_administrator_or_the_registering_partner_manages_a_credential() {
    let scheme = Scheme::start().await;
    let (api, admin) = (&scheme.api, scheme.admin.as_str());
    let alice = scheme.member(0).await;
    let other = api.create_partner(admin, "Other Club", &["earn"]).await;
    let (_, auditor) = api
        .create_key(admin, serde_json::json!({"kind": "auditor"}))
        .await;
    for path in [
        format!("/v1/members/{}/credential", alice.id),
        format!("/v1/members/{}/credential/revoke", alice.id),
    ] {
        for (who, token) in [
            ("another earn partner", other.key.as_str()),
            ("a venue", scheme.venue.key.as_str()),
            ("an auditor", auditor.as_str()),
            ("the member", alice.credential.as_str()),
        ] {
            api.post(&path, Some(token), None).await.assert_problem_for(
                &format!("{who} on {path}"),
                403,
                "forbidden",
            );
        }
        api.post(&path, None, None)
            .await
            .assert_problem(401, "unauthorized");
    }
    let nobody = Uuid::now_v7();
    api.post(
        &format!("/v1/members/{nobody}/credential"),
        Some(admin),
        None,
    )
    .await
    .assert_problem(404, "member_not_found");
    assert_eq!(me(api, &alice.credential).await, 200, "nothing changed");
}

/// Registers a member with `key`, then repeats the registration: both answers.
async fn register_and_repeat(api: &Api, registrar: &str, key: &str) -> (Value, Value) {
    let first = api
        .post_keyed("/v1/members", Some(registrar), key, None)
        .await;
    let repeat = api
        .post_keyed("/v1/members", Some(registrar), key, None)
        .await;
    assert!(repeat.replayed());
    (first.expect(201).clone(), repeat.expect(201).clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_registration_shows_the_credential_within_the_window_never_after_a_reissue() {
    let scheme = Scheme::start().await;
    let (api, earner) = (&scheme.api, &scheme.earner);
    let key = new_key();
    let (registered, repeat) = register_and_repeat(api, &earner.key, &key).await;
    assert_eq!(credential(&repeat), credential(&registered));
    let id = registered["member_id"].as_str().unwrap();
    let reissue = format!("/v1/members/{id}/credential");
    api.post(&reissue, Some(&earner.key), None)
        .await
        .expect(201);
    let (_, repeat) = register_and_repeat(api, &earner.key, &key).await;
    assert!(repeat["credential"].is_null(), "{repeat}");
    assert_eq!(repeat["member_id"], id, "the same registration");

    // Past the window (here zero), a repeat answers without the credential.
    let scheme =
        Scheme::start_with(|s| s.credential_replay_window = chrono::Duration::zero()).await;
    let (api, earner) = (&scheme.api, &scheme.earner);
    let (registered, repeat) = register_and_repeat(api, &earner.key, &new_key()).await;
    assert!(repeat["credential"].is_null(), "{repeat}");
    let original = credential(&registered);
    assert_eq!(
        me(api, &original).await,
        200,
        "the credential itself still works"
    );
}
