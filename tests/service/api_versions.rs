//! Events rendered at every API version an account may use, from 2017 to
//! today, through the real webhook endpoint into the same rows, the JSON API
//! and the Plans page. The older eras are written from Stripe's API reference
//! and changelog (`tests/fixtures/api_versions.json`); the newer ones are
//! today's example objects with each era's additions.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::stripe_fixtures::*;

static ERAS: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(include_str!("../fixtures/api_versions.json")).unwrap());

fn era(version: &str) -> Vec<Value> {
    ERAS[version].as_array().unwrap().clone()
}

/// Today's shapes at `version`, with what clover and dahlia added.
fn recent_era(version: &str) -> Vec<Value> {
    let mut sub = subscription("sub_era", "cus_era", "active");
    sub["billing_mode"] =
        json!({"type": "flexible", "flexible": {"proration_discounts": "included"}});
    let item = &mut sub["items"]["data"][0];
    item["price"]["id"] = "price_gold".into();
    item["price"]["product"] = "prod_era".into();
    item["price"]["unit_amount"] = 1900.into();
    item["price"]["nickname"] = Value::Null;
    item["quantity"] = 2.into();
    let mut inv = invoice("in_era", "cus_era", "sub_era", "paid", 1_000_005);
    inv["amount_due"] = 3800.into();
    inv["amount_paid"] = 3800.into();
    inv["total"] = 3800.into();
    if version.ends_with("dahlia") {
        // Additions of 2026 (non-breaking): ignored, never an error.
        sub["billing_schedules"] = json!([]);
        inv["amount_paid_off_stripe"] = 0.into();
    }
    let mut events = vec![
        event(
            "evt_r_product",
            "product.created",
            1_000_000,
            product("prod_era", "Gold"),
        ),
        event(
            "evt_r_customer",
            "customer.created",
            1_000_001,
            customer("cus_era", Some("org_era"), Some("pm_era")),
        ),
        event(
            "evt_r_pm",
            "payment_method.attached",
            1_000_002,
            payment_method("pm_era", Some("cus_era"), "4242"),
        ),
        event("evt_r_sub", "customer.subscription.created", 1_000_003, sub),
        event("evt_r_invoice", "invoice.paid", 1_000_005, inv),
    ];
    for e in &mut events {
        e["api_version"] = version.into();
    }
    events
}

async fn deliver(app: &TestApp, events: &[Value]) {
    for event in events {
        let response = app.post_event(event).await;
        assert_eq!(response.status(), 200, "{}", event["id"]);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "applied", "{}: {body}", event["id"]);
    }
}

/// What every era must leave behind: the plan with its name and price, the
/// card, and the paid invoice, in the JSON API and on the Plans page.
async fn assert_synced(app: &TestApp, version: &str, plan_id: &str, plan_name: &str) {
    let (status, state) = app
        .get_json("/api/v1/operations/payment/subscription", "org_era")
        .await;
    assert_eq!(status, 200, "{version}: {state}");
    assert_eq!(state["customer"], "cus_era", "{version}");
    let sub = &state["subscriptions"][0];
    assert_eq!(sub["id"], "sub_era", "{version}: {state}");
    assert_eq!(sub["status"], "active", "{version}");
    assert_eq!(sub["quantity"], 2, "{version}");
    assert_eq!(sub["price"]["id"], plan_id, "{version}");
    assert_eq!(sub["price"]["unit_amount"], 1900, "{version}");
    assert_eq!(sub["price"]["currency"], "usd", "{version}");
    assert_eq!(sub["price"]["interval"], "month", "{version}");
    assert_eq!(sub["product"]["name"], plan_name, "{version}");
    assert!(sub["current_period_end"].as_i64().is_some(), "{version}");
    assert_eq!(state["payment_method"]["last4"], "4242", "{version}");
    assert_eq!(state["payment_method"]["brand"], "visa", "{version}");

    let (_, invoices) = app
        .get_json("/api/v1/operations/payment/invoices", "org_era")
        .await;
    let invoice = &invoices["data"][0];
    assert_eq!(invoice["id"], "in_era", "{version}: {invoices}");
    assert_eq!(invoice["status"], "paid", "{version}");
    assert_eq!(invoice["amount_paid"], 3800, "{version}");
    assert_eq!(invoice["subscription"], "sub_era", "{version}");

    let (status, _, html) = app.page("/organization", &claims_v2("org_era")).await;
    assert_eq!(status, 200);
    assert!(html.contains(plan_name), "{version}: the plan's name shows");
    assert!(html.contains("$19.00"), "{version}: the price shows");
    assert!(html.contains("4242"), "{version}: the card shows");
}

#[tokio::test]
async fn a_2017_account_with_named_plans_invoices_by_date_and_card_sources_syncs_fully() {
    let app = TestApp::spawn().await;
    deliver(&app, &era("2017-08-15")).await;
    assert_synced(&app, "2017-08-15", "gold-monthly", "Gold (legacy)").await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM prices WHERE id = 'gold-monthly' AND recurring_interval = 'month'"
        )
        .await,
        1,
        "plan.created fed the catalog"
    );
    // Removing the card source detaches it.
    let mut removed = era("2017-08-15")[2].clone();
    removed["id"] = "evt_2017_source_deleted".into();
    removed["type"] = "customer.source.deleted".into();
    removed["created"] = 1_504_000_010.into();
    deliver(&app, &[removed]).await;
    let (_, state) = app
        .get_json("/api/v1/operations/payment/subscription", "org_era")
        .await;
    assert_eq!(state["payment_method"], Value::Null, "{state}");
}

#[tokio::test]
async fn a_2019_account_with_plans_of_products_and_no_prices_syncs_fully() {
    let app = TestApp::spawn().await;
    deliver(&app, &era("2019-12-03")).await;
    assert_synced(&app, "2019-12-03", "plan_GoldMonthly", "Gold").await;
}

#[tokio::test]
async fn a_plan_whose_product_is_not_known_shows_its_nickname() {
    let app = TestApp::spawn().await;
    // The product event never came: the plan's nickname stands in.
    let events: Vec<Value> = era("2019-12-03").into_iter().skip(1).collect();
    deliver(&app, &events).await;
    assert_synced(&app, "2019-12-03", "plan_GoldMonthly", "Gold monthly").await;
}

#[tokio::test]
async fn clover_and_dahlia_shapes_sync_into_the_same_rows() {
    for version in ["2025-09-30.clover", "2026-03-25.dahlia"] {
        let app = TestApp::spawn().await;
        deliver(&app, &recent_era(version)).await;
        assert_synced(&app, version, "price_gold", "Gold").await;
    }
}

#[tokio::test]
async fn plan_events_update_and_retire_the_catalog_like_price_events() {
    let app = TestApp::spawn().await;
    let created = era("2019-12-03")[1].clone();
    let mut updated = created.clone();
    updated["id"] = "evt_plan_updated".into();
    updated["type"] = "plan.updated".into();
    updated["created"] = 1_575_000_100.into();
    updated["data"]["object"]["nickname"] = "Gold, monthly".into();
    let mut deleted = created.clone();
    deleted["id"] = "evt_plan_deleted".into();
    deleted["type"] = "plan.deleted".into();
    deleted["created"] = 1_575_000_200.into();
    deleted["data"]["object"]["deleted"] = true.into();
    // Out of order: the update and deletion arrive before the creation.
    deliver(&app, &[deleted, updated, created]).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM prices WHERE id = 'plan_GoldMonthly' AND deleted = TRUE AND active = FALSE")
            .await,
        1
    );
}

#[tokio::test]
async fn events_at_another_version_are_counted_on_the_webhook_health_page() {
    let app = TestApp::builder()
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await;
    deliver(&app, &era("2019-12-03")).await;
    deliver(&app, &recent_era("2025-09-30.clover")[..1]).await;
    let (status, _, html) = app.page("/admin/webhooks", &claims_v2("org_ops")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<code>2019-12-03</code></td><td class=\"num\">6</td>"),
        "{html}"
    );
    assert!(html.contains("<code>2025-09-30.clover</code></td><td class=\"num\">1</td>"));
    assert!(html.contains("Some events arrive at an API version other than ours"));
    assert!(html.contains("Newest stored event:"));
}

/// A payload that carries an old and a new name of one field (some
/// stand-ins and hand-made fixtures do), or a field we can do without in a
/// shape we do not know, is still read: the newer name wins.
#[tokio::test]
async fn an_invoice_with_both_date_and_created_and_odd_extras_is_recorded() {
    let app = TestApp::spawn().await;
    let mut paid = invoice("in_both", "cus_both", "sub_both", "paid", 1_700_000_500);
    paid["date"] = 1_600_000_000.into();
    paid["hosted_invoice_url"] = 42.into();
    paid["due_date"] = "soon".into();
    paid["metadata"] = serde_json::json!({"seats": 3, "team": "core"});
    let e = event("evt_both", "invoice.paid", 1_700_000_600, paid);
    let response = app.post_event(&e).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.count("SELECT created FROM invoices WHERE id = 'in_both'")
            .await,
        1_700_000_500
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_both' AND last_error IS NULL"
        )
        .await,
        1
    );
}
