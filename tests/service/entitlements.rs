//! Entitlements and access: synced in any order, filled by sync, the grace
//! period's boundary, the member and internal routes, and the cache.

use std::time::{Duration, Instant};

use lance_billing::billing::reconcile::sync;
use lance_billing::domain::unix_now;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stripe_fixtures::*;

/// A Stripe list at a path, for these query parameters.
type Listing = (&'static str, Vec<(&'static str, &'static str)>, Value);

const TOKEN: &str = "svc_0123456789abcdef0123456789abcdef";
const ENTITLEMENTS: &str = "/api/v1/operations/payment/entitlements";

fn summary(customer: &str, keys: &[&str]) -> Value {
    let mut summary = object("entitlements.active_entitlement_summary");
    summary["customer"] = customer.into();
    let data: Vec<Value> = keys
        .iter()
        .map(|key| {
            let mut active = object("entitlements.active_entitlement");
            active["id"] = format!("ent_{key}").into();
            active["feature"] = format!("feat_{key}").into();
            active["lookup_key"] = (*key).into();
            active
        })
        .collect();
    summary["entitlements"] =
        json!({"object": "list", "data": data, "has_more": false, "url": "/v1/x"});
    summary
}

fn summary_event(id: &str, created: i64, customer: &str, keys: &[&str]) -> Value {
    event(
        id,
        "entitlements.active_entitlement_summary.updated",
        created,
        summary(customer, keys),
    )
}

/// An organization with an active subscription.
async fn subscribed(app: &TestApp, org: &str, customer: &str, status: &str, created: i64) {
    app.org_with_customer(org, customer).await;
    let mut sub = subscription(&format!("sub_{customer}"), customer, status);
    sub["id"] = format!("sub_{customer}").into();
    app.post_events(&[event(
        &format!("evt_sub_{customer}_{status}_{created}"),
        "customer.subscription.updated",
        created,
        sub,
    )])
    .await;
}

async fn internal(app: &TestApp, org: &str, token: Option<&str>) -> (u16, Value) {
    let path = format!("/api/v1/internal/organizations/{org}/entitlements");
    app.get_internal(&path, token).await
}

#[tokio::test]
async fn the_newest_summary_wins_in_any_order_with_duplicates() {
    let in_order = [
        summary_event("evt_e1", 100, "cus_E", &["api"]),
        summary_event("evt_e2", 101, "cus_E", &["api", "sso"]),
        summary_event("evt_e3", 102, "cus_E", &["sso", "audit_log"]),
    ];
    for seed in 0..6u64 {
        let app = TestApp::spawn().await;
        subscribed(&app, "org_ent", "cus_E", "active", 50).await;
        let mut shuffled: Vec<Value> = in_order.iter().chain(&in_order[..2]).cloned().collect();
        shuffled.shuffle(&mut StdRng::seed_from_u64(seed));
        app.post_events(&shuffled).await;
        let (status, body) = app.get_json(ENTITLEMENTS, "org_ent").await;
        assert_eq!(status, 200);
        assert_eq!(body["organization"], "org_ent");
        assert_eq!(body["access"], "full", "seed {seed}");
        assert_eq!(body["features"], json!(["audit_log", "sso"]), "seed {seed}");
        assert_eq!(body["grace_ends_at"], Value::Null);
        assert!(body["synced_at"].as_i64().is_some());
    }
}

#[tokio::test]
async fn sync_fills_the_features_and_the_plans_tab_lists_what_a_plan_includes() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_sync", "cus_S").await;
    let list = |data: Vec<Value>| json!({"object": "list", "data": data, "has_more": false, "url": "/v1/x"});
    let mut mounts: Vec<Listing> = vec![
        (
            "/v1/customers",
            vec![],
            list(vec![customer("cus_S", Some("org_sync"), None)]),
        ),
        (
            "/v1/subscriptions",
            vec![("customer", "cus_S")],
            list(vec![subscription("sub_s", "cus_S", "active")]),
        ),
        ("/v1/invoices", vec![("customer", "cus_S")], list(vec![])),
        ("/v1/customers/cus_S/payment_methods", vec![], list(vec![])),
        (
            "/v1/products",
            vec![],
            list(vec![product("prod_pro", "Pro")]),
        ),
        ("/v1/prices", vec![], list(vec![])),
    ];
    let mut feature = object("product_feature");
    feature["id"] = "prodft_1".into();
    feature["entitlement_feature"] = json!({"id": "feat_sso", "object": "entitlements.feature",
        "active": true, "livemode": false, "lookup_key": "sso", "metadata": {}, "name": "Single sign-on"});
    mounts.push((
        "/v1/products/prod_pro/features",
        vec![],
        list(vec![feature]),
    ));
    let mut active = object("entitlements.active_entitlement");
    active["lookup_key"] = "sso".into();
    mounts.push((
        "/v1/entitlements/active_entitlements",
        vec![("customer", "cus_S")],
        list(vec![active]),
    ));
    for (at, params, body) in mounts {
        let mut mock = Mock::given(method("GET")).and(path(at));
        for (k, v) in params {
            mock = mock.and(query_param(k, v));
        }
        mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&app.stripe)
            .await;
    }

    let report = sync(&app.store, &app.stripe_client(0), None).await.unwrap();
    assert!(report.unreadable().is_empty(), "{report}");

    let (_, body) = app.get_json(ENTITLEMENTS, "org_sync").await;
    assert_eq!(body["features"], json!(["sso"]), "{body}");
    let (_, _, html) = app.page("/organization", &claims_v2("org_sync")).await;
    assert!(
        html.contains(
            "<ul class=\"features\" aria-label=\"Included\"><li>Single sign-on</li></ul>"
        ),
        "{html}"
    );
}

#[tokio::test]
async fn past_due_keeps_features_until_the_grace_period_ends() {
    let app = TestApp::builder()
        .env("BILLING_GRACE_PERIOD", "3s")
        .env("INTERNAL_API_TOKENS", TOKEN)
        .spawn()
        .await;
    let now = unix_now();
    subscribed(&app, "org_late", "cus_L", "active", now - 100).await;
    app.post_events(&[summary_event("evt_l", now - 90, "cus_L", &["api"])])
        .await;
    // The payment fails now: past due from this event's time.
    subscribed(&app, "org_late", "cus_L", "past_due", now).await;

    let (_, body) = internal(&app, "org_late", Some(TOKEN)).await;
    assert_eq!(body["access"], "grace", "{body}");
    assert_eq!(body["grace_ends_at"], now + 3);
    assert_eq!(body["features"], json!(["api"]));
    let (_, _, html) = app.page("/organization", &claims_v2("org_late")).await;
    assert!(
        html.contains("Your plan's features stay on until"),
        "grace banner"
    );
    assert!(html.contains("?flow=payment_method_update"));

    // Another past_due update does not restart the grace period.
    subscribed(&app, "org_late", "cus_L", "past_due", now + 1).await;
    let started = Instant::now();
    loop {
        let (_, body) = internal(&app, "org_late", Some(TOKEN)).await;
        if body["access"] == "none" {
            assert_eq!(body["features"], json!([]), "no features without access");
            assert_eq!(body["grace_ends_at"], Value::Null);
            assert!(unix_now() >= now + 3, "not before the grace period ended");
            break;
        }
        assert_eq!(body["grace_ends_at"], now + 3);
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "grace never ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Paying again gives full access at once.
    subscribed(&app, "org_late", "cus_L", "active", now + 10).await;
    let (_, body) = internal(&app, "org_late", Some(TOKEN)).await;
    assert_eq!(body["access"], "full");
    assert_eq!(body["features"], json!(["api"]));
}

#[tokio::test]
async fn the_internal_route_needs_a_configured_service_token() {
    let closed = TestApp::spawn().await;
    let (status, body) = internal(&closed, "org_x", Some(TOKEN)).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("NOT_FOUND")));

    let app = TestApp::builder()
        .env(
            "INTERNAL_API_TOKENS",
            &format!("{TOKEN},svc_another_token_of_enough_length_00"),
        )
        .spawn()
        .await;
    let (status, body) = internal(&app, "org_x", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("UNAUTHORIZED"))
    );
    let (status, _) = internal(&app, "org_x", Some("svc_wrong_token_0123456789abcdef0123")).await;
    assert_eq!(status, 401);
    let (status, _) = internal(&app, "org_x", Some(&sign(&claims_v2("org_x")))).await;
    assert_eq!(status, 401, "a user's session token is not a service token");
    // A read never writes: an id never seen stays unknown.
    let (status, body) = internal(&app, "org_x", Some(TOKEN)).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("NOT_FOUND")));
    assert_eq!(app.count("SELECT COUNT(*) FROM organizations").await, 0);
    // Known (a member opened billing) but not paying: no access.
    app.store
        .ensure_organization(&lance_billing::domain::OrgId::parse("org_x").unwrap(), None)
        .await
        .unwrap();
    let (status, body) = internal(&app, "org_x", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"organization": "org_x", "access": "none", "grace_ends_at": null, "features": [], "synced_at": null})
    );
    let (status, body) = internal(&app, "not-an-org", Some(TOKEN)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("VALIDATION_ERROR"))
    );
}

#[tokio::test]
async fn the_member_route_follows_the_portal_contract() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}{ENTITLEMENTS}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .client
        .get(format!("{}{ENTITLEMENTS}", app.address))
        .bearer_auth(sign(&claims_without_org()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, body) = app.get_json(ENTITLEMENTS, "org_new").await;
    assert_eq!(status, 200);
    assert_eq!(body["access"], "none");
}

/// A change drops the cached answer at once on the instance that wrote it,
/// and, on PostgreSQL, on another instance too.
#[tokio::test]
async fn a_change_is_answered_at_once_on_this_and_another_instance() {
    let a = TestApp::builder()
        .env("INTERNAL_API_TOKENS", TOKEN)
        .spawn()
        .await;
    subscribed(&a, "org_twin", "cus_T", "active", 100).await;
    a.post_events(&[summary_event("evt_t1", 101, "cus_T", &["api"])])
        .await;
    let (_, body) = internal(&a, "org_twin", Some(TOKEN)).await;
    assert_eq!(body["features"], json!(["api"]));
    a.post_events(&[summary_event("evt_t2", 102, "cus_T", &["api", "sso"])])
        .await;
    let (_, body) = internal(&a, "org_twin", Some(TOKEN)).await;
    assert_eq!(body["features"], json!(["api", "sso"]), "same instance");

    let postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    if !postgres {
        return; // SQLite serves one instance.
    }
    let b = TestApp::builder()
        .env("INTERNAL_API_TOKENS", TOKEN)
        .env("DATABASE_URL", &a.database_url)
        .spawn()
        .await;
    let (_, body) = internal(&b, "org_twin", Some(TOKEN)).await;
    assert_eq!(
        body["features"],
        json!(["api", "sso"]),
        "b reads and keeps it"
    );
    a.post_events(&[summary_event("evt_t3", 103, "cus_T", &["audit_log"])])
        .await;
    let started = Instant::now();
    loop {
        let (_, body) = internal(&b, "org_twin", Some(TOKEN)).await;
        if body["features"] == json!(["audit_log"]) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "instance b still answers the old features"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn the_admin_page_shows_access_and_features() {
    let app = TestApp::builder()
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await;
    subscribed(&app, "org_adm", "cus_A", "active", 100).await;
    app.post_events(&[summary_event("evt_a", 101, "cus_A", &["sso"])])
        .await;
    let (status, _, html) = app.page("/admin/orgs/org_adm", &claims_v2("org_ops")).await;
    assert_eq!(status, 200);
    assert!(html.contains("<dt>Access</dt><dd>full</dd>"), "{html}");
    assert!(html.contains("<code>sso</code>"));
}

#[tokio::test]
async fn returning_from_checkout_fills_the_features_and_a_feature_rename_shows() {
    let app = TestApp::spawn().await;
    let list = |data: Vec<Value>| json!({"object": "list", "data": data, "has_more": false});
    let mut active = object("entitlements.active_entitlement");
    active["lookup_key"] = "sso".into();
    let session = checkout("cs_ent", "org_back", "cus_B", "subscription", "paid", None);
    let mounts = [
        ("/v1/checkout/sessions/cs_ent", session),
        (
            "/v1/customers/cus_B",
            customer("cus_B", Some("org_back"), None),
        ),
        (
            "/v1/subscriptions",
            list(vec![subscription("sub_b", "cus_B", "active")]),
        ),
        ("/v1/invoices", list(vec![])),
        ("/v1/customers/cus_B/payment_methods", list(vec![])),
        ("/v1/entitlements/active_entitlements", list(vec![active])),
    ];
    for (at, body) in mounts {
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&app.stripe)
            .await;
    }

    app.store
        .record_checkout_session("cs_ent", "org_back", "cus_B")
        .await
        .unwrap();
    let (status, _, _) = app
        .page("/organization?checkout=cs_ent", &claims_v2("org_back"))
        .await;
    assert_eq!(status, 200);
    let (_, body) = app.get_json(ENTITLEMENTS, "org_back").await;
    assert_eq!(body["access"], "full", "{body}");
    assert_eq!(body["features"], json!(["sso"]));

    // A feature renamed in Stripe shows its new name on the Plans tab.
    app.execute(
        "INSERT INTO product_features (product_id, feature_id) VALUES ('prod_pro', 'feat_sso')",
    )
    .await;
    let mut feature = object("entitlements.feature");
    feature["id"] = "feat_sso".into();
    feature["lookup_key"] = "sso".into();
    feature["name"] = "Single sign-on (SAML)".into();
    app.post_events(&[event("evt_f", "entitlements.feature.updated", 500, feature)])
        .await;
    let (_, _, html) = app.page("/organization", &claims_v2("org_back")).await;
    assert!(html.contains("<li>Single sign-on (SAML)</li>"), "{html}");
}
