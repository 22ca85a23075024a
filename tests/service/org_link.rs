//! `lance-billing org link`, through the function the command calls.

use lance_billing::cli::link_org;
use lance_billing::domain::{OrgId, StripeCustomerId};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stripe_fixtures::{checkout, event};

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

fn cus(id: &str) -> StripeCustomerId {
    StripeCustomerId::parse(id).unwrap()
}

async fn stripe_has_customer(app: &TestApp, id: &str, body: serde_json::Value) {
    Mock::given(method("GET"))
        .and(path(format!("/v1/customers/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&app.stripe)
        .await;
}

#[tokio::test]
async fn linking_creates_the_organization_and_is_idempotent() {
    let app = TestApp::spawn().await;
    let message = link_org(&app.store, None, &org("org_new"), &cus("cus_A"), false)
        .await
        .unwrap();
    assert_eq!(message, "linked org_new to cus_A");
    let stored = app
        .store
        .find_organization(&org("org_new"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stripe_customer_id, Some(cus("cus_A")));

    let again = link_org(&app.store, None, &org("org_new"), &cus("cus_A"), false)
        .await
        .unwrap();
    assert_eq!(again, "org_new was already linked to cus_A");
}

#[tokio::test]
async fn a_customer_linked_to_another_organization_is_refused() {
    let app = TestApp::spawn().await;
    link_org(&app.store, None, &org("org_first"), &cus("cus_A"), false)
        .await
        .unwrap();

    let err = link_org(&app.store, None, &org("org_second"), &cus("cus_A"), true)
        .await
        .unwrap_err();

    assert!(
        err.to_string()
            .contains("already linked to organization org_first"),
        "{err}"
    );
    assert!(
        app.store
            .find_organization(&org("org_second"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn replacing_an_organizations_customer_needs_replace() {
    let app = TestApp::spawn().await;
    link_org(&app.store, None, &org("org_a"), &cus("cus_Old"), false)
        .await
        .unwrap();

    let refused = link_org(&app.store, None, &org("org_a"), &cus("cus_New"), false)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("--replace"), "{refused}");

    let message = link_org(&app.store, None, &org("org_a"), &cus("cus_New"), true)
        .await
        .unwrap();
    assert_eq!(message, "linked org_a to cus_New (replacing cus_Old)");
    let stored = app
        .store
        .find_organization(&org("org_a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stripe_customer_id, Some(cus("cus_New")));
}

#[tokio::test]
async fn the_customer_is_checked_with_stripe_first() {
    let app = TestApp::spawn().await;
    let stripe = app.stripe_client(0);
    stripe_has_customer(
        &app,
        "cus_Live",
        json!({"id": "cus_Live", "object": "customer", "metadata": {}}),
    )
    .await;
    stripe_has_customer(
        &app,
        "cus_Gone",
        json!({"id": "cus_Gone", "object": "customer", "deleted": true}),
    )
    .await;
    stripe_has_customer(
        &app,
        "cus_Theirs",
        json!({"id": "cus_Theirs", "object": "customer", "metadata": {"org_id": "org_other"}}),
    )
    .await;

    link_org(
        &app.store,
        Some(&stripe),
        &org("org_a"),
        &cus("cus_Live"),
        false,
    )
    .await
    .unwrap();
    let missing = link_org(
        &app.store,
        Some(&stripe),
        &org("org_b"),
        &cus("cus_Missing"),
        false,
    )
    .await
    .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("Stripe has no customer cus_Missing"),
        "{missing}"
    );
    let deleted = link_org(
        &app.store,
        Some(&stripe),
        &org("org_b"),
        &cus("cus_Gone"),
        false,
    )
    .await
    .unwrap_err();
    assert!(deleted.to_string().contains("deleted"), "{deleted}");
    let theirs = link_org(
        &app.store,
        Some(&stripe),
        &org("org_b"),
        &cus("cus_Theirs"),
        false,
    )
    .await
    .unwrap_err();
    assert!(theirs.to_string().contains("org_other"), "{theirs}");
    assert!(
        app.store
            .find_organization(&org("org_b"))
            .await
            .unwrap()
            .is_none()
    );
}

/// A Payment Link or Pricing Table lets a visitor choose
/// `client_reference_id`: a completed session this service did not create,
/// naming an organization only that way, links nothing (the organization's
/// members would reach the visitor's portal) and is shown to operators.
#[tokio::test]
async fn a_checkout_this_service_did_not_create_links_nothing_and_is_flagged() {
    let app = TestApp::builder()
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await;
    let mut foreign = checkout(
        "cs_foreign",
        "org_victim",
        "cus_attacker",
        "subscription",
        "paid",
        None,
    );
    foreign["metadata"] = serde_json::json!({});
    let e = event("evt_foreign", "checkout.session.completed", 100, foreign);
    assert_eq!(app.post_event(&e).await.status(), 200);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM organizations WHERE stripe_customer_id = 'cus_attacker'")
            .await,
        0
    );
    assert_eq!(
        app.get_portal(&sign(&claims_v2("org_victim")))
            .await
            .status(),
        404
    );
    let (_, _, html) = app.page("/admin/webhooks", &claims_v2("org_ops")).await;
    assert!(
        html.contains("cs_foreign") && html.contains("org_victim"),
        "{html}"
    );

    // A session this service created links, whatever its metadata became.
    app.store
        .record_checkout_session("cs_ours", "org_ours", "cus_ours")
        .await
        .unwrap();
    let mut ours = checkout(
        "cs_ours",
        "org_ours",
        "cus_ours",
        "subscription",
        "paid",
        None,
    );
    ours["metadata"] = serde_json::json!({});
    let e = event("evt_ours", "checkout.session.completed", 100, ours);
    assert_eq!(app.post_event(&e).await.status(), 200);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM organizations WHERE id = 'org_ours' AND stripe_customer_id = 'cus_ours'")
            .await,
        1
    );
}
