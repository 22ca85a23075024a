//! `clerk sync`: organizations and members backfilled from Clerk's Backend
//! API (a stand-in here), a page at a time, skipping what the key may not
//! read, removing members Clerk no longer lists.

use lance_billing::billing::members::sync_from_clerk;
use lance_billing::clerk::api::ClerkApi;
use lance_billing::clerk::events::Membership;
use lance_billing::config::{ClerkApiSettings, Env, SeatSettings};
use lance_billing::domain::OrgId;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn org(id: &str, name: &str) -> Value {
    json!({"object": "organization", "id": id, "name": name, "slug": name.to_lowercase(),
        "image_url": null, "created_at": 1_700_000_000_000i64, "updated_at": 1_700_000_000_000i64})
}

fn member(org: &str, user: &str, role: &str) -> Value {
    json!({"object": "organization_membership", "id": format!("orgmem_{user}"), "role": role,
        "created_at": 1_700_000_000_000i64, "updated_at": 1_700_000_000_000i64,
        "organization": {"id": org}, "public_user_data": {"user_id": user}})
}

async fn answers(clerk: &MockServer, at: &str, offset: &str, status: u16, body: Value) {
    Mock::given(method("GET"))
        .and(path(at))
        .and(query_param("offset", offset))
        .and(header("authorization", "Bearer sk_test_clerk"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(clerk)
        .await;
}

fn no_seats() -> SeatSettings {
    SeatSettings::from_env(&Env::from_pairs([])).expect("the defaults")
}

fn list(data: Vec<Value>, total: usize) -> Value {
    json!({"data": data, "total_count": total})
}

#[tokio::test]
async fn organizations_and_members_are_backfilled_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let clerk = MockServer::start().await;
    let orgs = "/v1/organizations";
    answers(
        &clerk,
        orgs,
        "0",
        200,
        list(vec![org("org_a", "Alpha"), org("org_b", "Bravo")], 3),
    )
    .await;
    answers(
        &clerk,
        orgs,
        "2",
        200,
        list(vec![org("org_c", "Charlie")], 3),
    )
    .await;
    let alpha = "/v1/organizations/org_a/memberships";
    let first = vec![
        member("org_a", "user_a", "org:admin"),
        member("org_a", "user_b", "org:member"),
    ];
    answers(&clerk, alpha, "0", 200, list(first, 3)).await;
    answers(
        &clerk,
        alpha,
        "2",
        200,
        list(vec![member("org_a", "user_c", "org:member")], 3),
    )
    .await;
    let refused = json!({"errors": [{"code": "forbidden"}]});
    answers(
        &clerk,
        "/v1/organizations/org_b/memberships",
        "0",
        403,
        refused,
    )
    .await;
    answers(
        &clerk,
        "/v1/organizations/org_c/memberships",
        "0",
        200,
        list(vec![], 0),
    )
    .await;
    // A member kept here whom Clerk no longer lists.
    let mut tx = app.store.begin().await.unwrap();
    let gone = Membership {
        org: OrgId::parse("org_a").unwrap(),
        user_id: "user_gone".to_owned(),
        role: "org:member".to_owned(),
        version: 1_600_000_000_000,
    };
    tx.apply_membership(&gone, false).await.unwrap();
    tx.commit().await.unwrap();

    let settings = ClerkApiSettings {
        secret_key: SecretString::from("sk_test_clerk".to_owned()),
        api_base: clerk.uri().parse().unwrap(),
    };
    let api = ClerkApi::new(&settings).unwrap();
    let report = sync_from_clerk(&app.store, &api, 2, &no_seats())
        .await
        .unwrap();
    assert_eq!(
        (report.organizations, report.members, report.removed),
        (3, 3, 1)
    );
    assert_eq!(report.unreadable, vec!["the members of org_b".to_owned()]);
    let members = app.store.members_of("org_a").await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| m.user_id.as_str())
            .collect::<Vec<_>>(),
        vec!["user_a", "user_b", "user_c"]
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM organizations WHERE name IN ('Alpha', 'Bravo', 'Charlie')")
            .await,
        3
    );
    // Again: nothing more to do.
    let again = sync_from_clerk(&app.store, &api, 2, &no_seats())
        .await
        .unwrap();
    assert_eq!((again.members, again.removed), (3, 0));
}

#[tokio::test]
async fn a_key_that_cannot_list_organizations_fails_the_sync() {
    let app = TestApp::spawn().await;
    let clerk = MockServer::start().await;
    let refused = json!({"errors": [{"code": "authentication_invalid"}]});
    answers(&clerk, "/v1/organizations", "0", 401, refused).await;
    let settings = ClerkApiSettings {
        secret_key: SecretString::from("sk_test_clerk".to_owned()),
        api_base: clerk.uri().parse().unwrap(),
    };
    let err = sync_from_clerk(
        &app.store,
        &ClerkApi::new(&settings).unwrap(),
        100,
        &no_seats(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}
