//! Clerk's webhooks through Svix: verified (hostile deliveries refused),
//! applied once per `svix-id`, in any order, before the 2xx; and the names
//! they bring shown wherever operators look.

use lance_billing::clerk::svix::svix_signature;
use lance_billing::domain::unix_now;
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_b2xkLXNlY3JldC1vZi10aGUtZW5kcG9pbnQ=";

async fn clerk_app() -> TestApp {
    TestApp::builder()
        .env("CLERK_WEBHOOK_SECRET", &format!("{OLD_SECRET},{SECRET}"))
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await
}

/// Delivers `event` as Svix would, signed with `secret` at `timestamp`.
async fn deliver_signed(
    app: &TestApp,
    svix_id: &str,
    event: &Value,
    secret: &str,
    timestamp: i64,
) -> (u16, Value) {
    let body = serde_json::to_vec(event).unwrap_or_default();
    let signature = svix_signature(secret, svix_id, timestamp, &body).unwrap_or_default();
    let response = app
        .client
        .post(format!("{}/api/v1/webhooks/clerk", app.address))
        .header("svix-id", svix_id)
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn deliver(app: &TestApp, svix_id: &str, event: &Value) -> (u16, Value) {
    deliver_signed(app, svix_id, event, SECRET, unix_now()).await
}

fn clerk_event(kind: &str, data: Value) -> Value {
    json!({"type": kind, "object": "event", "data": data,
        "timestamp": unix_now() * 1000, "instance_id": "ins_test"})
}

fn organization(name: &str, updated_at: i64) -> Value {
    json!({"id": "org_acme", "object": "organization", "name": name, "slug": "acme",
        "image_url": "https://img.clerk.com/acme", "created_at": 1_700_000_000_000i64,
        "updated_at": updated_at, "members_count": 1})
}

fn membership(user: &str, role: &str, updated_at: i64) -> Value {
    json!({"id": format!("orgmem_{user}"), "object": "organization_membership", "role": role,
        "created_at": 1_700_000_000_000i64, "updated_at": updated_at,
        "organization": organization("Acme Inc", 1_700_000_000_000),
        "public_user_data": {"user_id": user, "identifier": "someone@example.com",
            "first_name": "Some", "last_name": "One"}})
}

async fn name_of(app: &TestApp) -> Option<String> {
    app.store
        .find_organization(&lance_billing::domain::OrgId::parse("org_acme").expect("an id"))
        .await
        .ok()
        .flatten()
        .and_then(|o| o.name)
}

#[tokio::test]
async fn organization_changes_apply_once_and_never_backwards() {
    let app = clerk_app().await;
    let created = clerk_event("organization.created", organization("Acme", 1_000));
    assert_eq!(
        deliver(&app, "msg_1", &created).await,
        (200, json!({"id": "msg_1", "status": "applied"}))
    );
    assert_eq!(name_of(&app).await.as_deref(), Some("Acme"));
    let renamed = clerk_event("organization.updated", organization("Acme Inc", 3_000));
    assert_eq!(deliver(&app, "msg_3", &renamed).await.0, 200);
    // An older update, delivered late, changes nothing.
    let older = clerk_event("organization.updated", organization("Acme Old", 2_000));
    assert_eq!(deliver(&app, "msg_2", &older).await.0, 200);
    assert_eq!(name_of(&app).await.as_deref(), Some("Acme Inc"));
    // The same delivery again is a duplicate.
    assert_eq!(
        deliver(&app, "msg_3", &renamed).await,
        (200, json!({"id": "msg_3", "status": "duplicate"}))
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM clerk_deliveries").await, 3);
    let ignored = clerk_event("user.created", json!({"id": "user_1"}));
    assert_eq!(
        deliver(&app, "msg_4", &ignored).await,
        (200, json!({"id": "msg_4", "status": "ignored"}))
    );
}

#[tokio::test]
async fn hostile_deliveries_are_refused_and_change_nothing() {
    let app = clerk_app().await;
    let event = clerk_event("organization.created", organization("Evil", 1_000));
    let now = unix_now();
    let wrong_secret = "whsec_bm90LXRoZS1zZWNyZXQ=";
    for (secret, timestamp) in [
        (wrong_secret, now),
        (SECRET, now - 600),
        (SECRET, now + 600),
    ] {
        let (status, body) = deliver_signed(&app, "msg_h", &event, secret, timestamp).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    }
    // An altered body under a good signature.
    let body = serde_json::to_vec(&event).unwrap();
    let signature = svix_signature(SECRET, "msg_h", now, &body).unwrap();
    let altered = serde_json::to_vec(&clerk_event(
        "organization.created",
        organization("Altered", 1_000),
    ))
    .unwrap();
    let headers = [
        ("svix-id", "msg_h".to_owned()),
        ("svix-timestamp", now.to_string()),
        ("svix-signature", signature),
    ];
    let post = |body: Vec<u8>, skip: Option<&'static str>| {
        let mut request = app
            .client
            .post(format!("{}/api/v1/webhooks/clerk", app.address))
            .body(body);
        for (name, value) in &headers {
            if Some(*name) != skip {
                request = request.header(*name, value.as_str());
            }
        }
        request.send()
    };
    assert_eq!(post(altered, None).await.unwrap().status().as_u16(), 400);
    for missing in ["svix-id", "svix-timestamp", "svix-signature"] {
        let response = post(body.clone(), Some(missing)).await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "without {missing}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM clerk_deliveries").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM organizations").await, 0);
    // The old secret still verifies while it is listed (rotation).
    let (status, _) = deliver_signed(&app, "msg_old", &event, OLD_SECRET, now).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn memberships_follow_clerk_in_any_order() {
    let app = clerk_app().await;
    let joined = clerk_event(
        "organizationMembership.created",
        membership("user_a", "org:admin", 1_000),
    );
    assert_eq!(deliver(&app, "msg_a1", &joined).await.0, 200);
    let mut left = clerk_event(
        "organizationMembership.deleted",
        membership("user_b", "org:member", 1_000),
    );
    left["timestamp"] = json!(5_000);
    // user_b's removal arrives before their joining.
    assert_eq!(deliver(&app, "msg_b2", &left).await.0, 200);
    let b_joined = clerk_event(
        "organizationMembership.created",
        membership("user_b", "org:member", 1_000),
    );
    assert_eq!(deliver(&app, "msg_b1", &b_joined).await.0, 200);
    let members = app.store.members_of("org_acme").await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.user_id.as_str(), m.role.as_str()))
            .collect::<Vec<_>>(),
        vec![("user_a", "org:admin")]
    );
    // Invited again later: a member again.
    let again = clerk_event(
        "organizationMembership.created",
        membership("user_b", "org:member", 9_000),
    );
    assert_eq!(deliver(&app, "msg_b3", &again).await.0, 200);
    assert_eq!(app.store.members_of("org_acme").await.unwrap().len(), 2);
    // The membership brought the organization's name along.
    assert_eq!(name_of(&app).await.as_deref(), Some("Acme Inc"));
}

#[tokio::test]
async fn a_deleted_organization_is_flagged_and_not_renamed_after() {
    let app = clerk_app().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let created = clerk_event("organization.created", organization("Acme", 1_000));
    assert_eq!(deliver(&app, "msg_1", &created).await.0, 200);
    let deleted = clerk_event(
        "organization.deleted",
        json!({"id": "org_acme", "object": "organization", "deleted": true}),
    );
    assert_eq!(deliver(&app, "msg_2", &deleted).await.0, 200);
    let late = clerk_event("organization.updated", organization("Zombie", 2_000));
    assert_eq!(deliver(&app, "msg_3", &late).await.0, 200);
    assert_eq!(name_of(&app).await.as_deref(), Some("Acme"));
    let admin = claims_v2("org_acme");
    let (_, _, list) = app.page("/admin", &admin).await;
    assert!(
        list.contains(">Acme</a> <span class=\"badge badge-warn\">deleted in Clerk"),
        "{list}"
    );
    let (_, _, detail) = app.page("/admin/orgs/org_acme", &admin).await;
    assert!(
        detail.contains("Clerk deleted this organization"),
        "{detail}"
    );
    // Its link to Stripe is left to an operator.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM organizations WHERE stripe_customer_id = 'cus_A'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_delivery_that_cannot_be_committed_answers_5xx_for_svix_to_retry() {
    let app = clerk_app().await;
    app.execute("DROP TABLE clerk_deliveries").await;
    let created = clerk_event("organization.created", organization("Acme", 1_000));
    let (status, body) = deliver(&app, "msg_1", &created).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("INTERNAL_ERROR"))
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM organizations").await, 0);
}

#[tokio::test]
async fn without_a_secret_deliveries_are_not_acknowledged() {
    let app = TestApp::spawn().await;
    let created = clerk_event("organization.created", organization("Acme", 1_000));
    let (status, _) = deliver(&app, "msg_1", &created).await;
    assert_eq!(status, 500);
}
