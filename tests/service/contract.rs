//! Whole JSON bodies that other services rely on, as snapshots: a change to
//! any field, name or nesting shows up as a failing diff to review
//! (`cargo insta review`), not as a silent break of the contract.

use serde_json::Value;

use crate::helpers::*;
use crate::stripe_fixtures::*;

async fn applied(app: &TestApp, event: &Value) {
    let response = app.post_event(event).await;
    assert_eq!(response.status(), 200);
}

/// An organization with a customer, a card, a subscription and two invoices.
async fn synced_org() -> TestApp {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let events = [
        event(
            "evt_1",
            "customer.created",
            1_000,
            customer("cus_A", Some("org_acme"), Some("pm_1")),
        ),
        event(
            "evt_2",
            "payment_method.attached",
            1_001,
            payment_method("pm_1", Some("cus_A"), "4242"),
        ),
        event(
            "evt_3",
            "product.created",
            1_002,
            product("prod_pro", "Pro"),
        ),
        event(
            "evt_4",
            "customer.subscription.created",
            1_003,
            subscription("sub_1", "cus_A", "active"),
        ),
        event(
            "evt_5",
            "invoice.paid",
            1_004,
            invoice("in_1", "cus_A", "sub_1", "paid", 1_004),
        ),
        event(
            "evt_6",
            "invoice.finalized",
            1_005,
            invoice("in_2", "cus_A", "sub_1", "open", 1_005),
        ),
    ];
    for e in &events {
        applied(&app, e).await;
    }
    app
}

#[tokio::test]
async fn the_plan_state_body() {
    let app = synced_org().await;
    let (status, body) = app
        .get_json("/api/v1/operations/payment/subscription", "org_acme")
        .await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!(body, {".synced_at" => "[unix time]"});
}

#[tokio::test]
async fn the_invoices_page_body() {
    let app = synced_org().await;
    let (status, body) = app
        .get_json("/api/v1/operations/payment/invoices?limit=1", "org_acme")
        .await;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!(body);
}

#[tokio::test]
async fn the_error_bodies_of_the_portal_contract() {
    let app = TestApp::spawn().await;
    let unauthenticated = app.client.get(app.portal_url()).send().await.unwrap();
    let no_org = app.get_portal(&sign(&claims_without_org())).await;
    let no_customer = app.get_portal(&sign(&claims_v2("org_new"))).await;
    let mut bodies = Vec::new();
    for response in [unauthenticated, no_org, no_customer] {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        bodies.push(serde_json::json!({"status": status, "body": body}));
    }
    insta::assert_json_snapshot!(bodies);
}

#[tokio::test]
async fn the_webhook_acknowledgement_body() {
    let app = TestApp::spawn().await;
    let response = app
        .post_event(&event(
            "evt_ack",
            "customer.created",
            1_000,
            customer("cus_A", None, None),
        ))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    insta::assert_json_snapshot!(body);
}
