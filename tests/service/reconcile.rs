//! `lance-billing sync` against a stand-in Stripe, and `events replay`.

use lance_billing::billing::reconcile::sync;
use lance_billing::billing::replay::{Selection, replay};
use lance_billing::domain::OrgId;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stripe_fixtures::*;

fn list(data: Vec<Value>, has_more: bool) -> Value {
    json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/x"})
}

async fn stripe_lists(app: &TestApp, at: &str, params: &[(&str, &str)], body: Value) {
    let mut mock = Mock::given(method("GET")).and(path(at));
    for (k, v) in params {
        mock = mock.and(query_param(*k, *v));
    }
    if !params.iter().any(|(k, _)| *k == "starting_after") {
        mock = mock.and(query_param_is_missing("starting_after"));
    }
    mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&app.stripe)
        .await;
}

/// A Stripe account with two pages of customers, one of them paying.
async fn stripe_account(app: &TestApp) {
    stripe_lists(
        app,
        "/v1/customers",
        &[("limit", "100")],
        list(
            vec![
                customer("cus_1", Some("org_one"), Some("pm_new")),
                customer("cus_2", None, None),
            ],
            true,
        ),
    )
    .await;
    stripe_lists(
        app,
        "/v1/customers",
        &[("starting_after", "cus_2")],
        list(vec![customer("cus_3", Some("org_three"), None)], false),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_9"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "cus_9", "object": "customer", "deleted": true})),
        )
        .mount(&app.stripe)
        .await;
    stripe_lists(
        app,
        "/v1/subscriptions",
        &[("customer", "cus_1"), ("status", "all")],
        list(vec![subscription("sub_1", "cus_1", "active")], false),
    )
    .await;
    stripe_lists(
        app,
        "/v1/invoices",
        &[("customer", "cus_1")],
        list(
            vec![invoice("in_1", "cus_1", "sub_1", "paid", 1_700_000_000)],
            false,
        ),
    )
    .await;
    stripe_lists(
        app,
        "/v1/customers/cus_1/payment_methods",
        &[],
        list(vec![payment_method("pm_new", Some("cus_1"), "4242")], false),
    )
    .await;
    for empty in ["/v1/subscriptions", "/v1/invoices"] {
        stripe_lists(app, empty, &[("customer", "cus_3")], list(vec![], false)).await;
    }
    stripe_lists(
        app,
        "/v1/customers/cus_3/payment_methods",
        &[],
        list(vec![], false),
    )
    .await;
    stripe_lists(
        app,
        "/v1/products",
        &[],
        list(vec![product("prod_pro", "Pro")], false),
    )
    .await;
    let mut price = object("price");
    price["id"] = "price_pro_monthly".into();
    price["product"] = "prod_pro".into();
    stripe_lists(app, "/v1/prices", &[], list(vec![price], false)).await;
    stripe_lists(
        app,
        "/v1/products/prod_pro/features",
        &[],
        list(vec![], false),
    )
    .await;
    for customer in ["cus_1", "cus_3"] {
        stripe_lists(
            app,
            "/v1/entitlements/active_entitlements",
            &[("customer", customer)],
            list(vec![], false),
        )
        .await;
    }
}

#[tokio::test]
async fn sync_pages_through_stripe_and_repairs_what_webhooks_missed() {
    let app = TestApp::spawn().await;
    stripe_account(&app).await;
    app.org_with_customer("org_gone", "cus_9").await;
    // A card we think is attached, detached in Stripe while webhooks were down.
    app.post_event(&event(
        "evt_pm",
        "payment_method.attached",
        100,
        payment_method("pm_old", Some("cus_1"), "0005"),
    ))
    .await;

    let report = sync(&app.store, &app.stripe_client(2), None).await.unwrap();

    assert_eq!(
        report.customers, 3,
        "cus_1, cus_3 and the linked cus_9; not the untagged cus_2"
    );
    let state = {
        let (_, body) = app
            .get_json("/api/v1/operations/payment/subscription", "org_one")
            .await;
        body
    };
    assert_eq!(state["customer"], "cus_1");
    assert_eq!(state["subscriptions"][0]["status"], "active");
    assert_eq!(state["subscriptions"][0]["product"]["name"], "Pro");
    assert_eq!(state["payment_method"]["last4"], "4242");
    let (_, invoices) = app
        .get_json("/api/v1/operations/payment/invoices", "org_one")
        .await;
    assert_eq!(invoices["data"][0]["id"], "in_1");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment_methods WHERE id = 'pm_old' AND customer_id IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM customers WHERE id = 'cus_2'")
            .await,
        0
    );
    let gone = app
        .store
        .find_organization(&OrgId::parse("org_gone").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        gone.stripe_customer_id, None,
        "a customer deleted in Stripe is unlinked"
    );
    let third = app
        .store
        .find_organization(&OrgId::parse("org_three").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.stripe_customer_id.unwrap().as_str(), "cus_3");
    assert!(report.changed >= 8, "{report}");

    let again = sync(&app.store, &app.stripe_client(2), None).await.unwrap();
    assert_eq!(again.changed, 0, "a second run changes nothing: {again}");
}

/// One organization's sync reads its customer alone: by Stripe's search on
/// `metadata.org_id` while none is linked, by id once one is; it never
/// lists the account's customers.
#[tokio::test]
async fn sync_of_one_organization_fetches_only_its_customer() {
    let app = TestApp::spawn().await;
    stripe_account(&app).await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/search"))
        .and(query_param("query", "metadata['org_id']:'org_one'"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(
            vec![customer("cus_1", Some("org_one"), Some("pm_new"))],
            false,
        )))
        .mount(&app.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(customer(
            "cus_1",
            Some("org_one"),
            Some("pm_new"),
        )))
        .mount(&app.stripe)
        .await;
    let org = OrgId::parse("org_one").unwrap();

    let report = sync(&app.store, &app.stripe_client(2), Some(&org))
        .await
        .unwrap();

    assert_eq!(report.customers, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM subscriptions WHERE customer_id = 'cus_1'")
            .await,
        1
    );
    assert_eq!(app.stripe_requests("/v1/customers/search").await.len(), 1);
    // Linked now: read by id.
    sync(&app.store, &app.stripe_client(2), Some(&org))
        .await
        .unwrap();
    assert_eq!(app.stripe_requests("/v1/customers/cus_1").await.len(), 1);
    assert!(app.stripe_requests("/v1/customers").await.is_empty());
    assert!(app.stripe_requests("/v1/products").await.is_empty());
}

#[tokio::test]
async fn a_sync_failure_reports_the_cause_and_keeps_earlier_state() {
    let app = TestApp::spawn().await;
    Mock::given(method("GET")).and(path("/v1/products"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})))
        .mount(&app.stripe).await;
    let err = sync(&app.store, &app.stripe_client(2), None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("401"), "{err:#}");
}

#[tokio::test]
async fn replay_applies_failed_events_and_leaves_applied_ones_unchanged() {
    let app = TestApp::spawn().await;
    // An event recorded while an older release could not apply it.
    let stuck = event(
        "evt_stuck",
        "customer.subscription.created",
        100,
        subscription("sub_stuck", "cus_A", "active"),
    );
    let payload = serde_json::to_string(&stuck).unwrap();
    insert_unprocessed_event(&app, &payload).await;
    app.post_event(&event(
        "evt_ok",
        "customer.subscription.created",
        100,
        subscription("sub_ok", "cus_A", "trialing"),
    ))
    .await;

    let report = replay(&app.store, Selection::Failed, false).await.unwrap();
    assert_eq!((report.applied, report.failed), (1, 0));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM subscriptions WHERE id = 'sub_stuck'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stripe_events WHERE processed_at IS NULL")
            .await,
        0
    );

    let again = replay(&app.store, Selection::One("evt_ok".into()), false)
        .await
        .unwrap();
    assert_eq!(again.applied, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions").await, 2);
    let missing = replay(&app.store, Selection::One("evt_nope".into()), false)
        .await
        .unwrap();
    assert_eq!(missing.missing, 1);
}

async fn insert_unprocessed_event(app: &TestApp, payload: &str) {
    const SQL: &str = "INSERT INTO stripe_events (id, type, created, livemode, payload, received_at, attempts, last_error) \
                       VALUES ('evt_stuck', 'customer.subscription.created', 100, FALSE, $1, 100, 1, 'old bug')";
    crate::with_db!(&app.db, |pool| {
        sqlx::query(SQL).bind(payload).execute(pool).await.unwrap();
    })
}

#[tokio::test]
async fn sync_backs_off_on_rate_limits_and_completes() {
    let app = TestApp::spawn().await;
    Mock::given(method("GET"))
        .and(path("/v1/products"))
        .respond_with(ResponseTemplate::new(429).set_body_json(
            json!({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.stripe)
        .await;
    stripe_account(&app).await;

    let report = sync(&app.store, &app.stripe_client(2), None).await.unwrap();

    assert_eq!(report.customers, 2);
    assert_eq!(
        app.stripe_requests("/v1/products").await.len(),
        2,
        "one 429, one retry"
    );
}

#[tokio::test]
async fn sync_applies_what_it_can_read_when_stripe_refuses_some_resources() {
    let app = TestApp::spawn().await;
    stripe_account(&app).await;
    // A restricted key without the Products permission: Stripe's JSON 403.
    Mock::given(method("GET"))
        .and(path("/v1/products"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "type": "invalid_request_error",
            "message": "The provided key 'rk_test_***' does not have the required permissions for this endpoint on account 'acct_1'. Having the 'rak_product_read' permission would allow this request to continue."
        }})))
        .with_priority(1)
        .mount(&app.stripe)
        .await;
    // A proxy in front of Stripe answering invoices with an HTML 404.
    Mock::given(method("GET"))
        .and(path("/v1/invoices"))
        .respond_with(
            ResponseTemplate::new(404).set_body_string("<html><body>Not Found</body></html>"),
        )
        .with_priority(1)
        .mount(&app.stripe)
        .await;

    let report = sync(&app.store, &app.stripe_client(0), None).await.unwrap();

    assert_eq!(report.unreadable(), ["products", "invoices"], "{report}");
    let (_, state) = app
        .get_json("/api/v1/operations/payment/subscription", "org_one")
        .await;
    assert_eq!(state["customer"], "cus_1", "the customer is linked");
    assert_eq!(state["subscriptions"][0]["status"], "active", "{state}");
    assert_eq!(state["payment_method"]["last4"], "4242");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM prices").await,
        1,
        "the prices were still read"
    );
    let lines = report.lines().join("\n");
    assert!(
        lines.contains("products: fetched 0, changed 0, 1 read(s) failed"),
        "{lines}"
    );
    assert!(lines.contains("403"), "{lines}");
    assert!(
        lines.contains("invoices: fetched 0, changed 0, 2 read(s) failed"),
        "{lines}"
    );
    assert!(lines.contains("404"), "{lines}");
    assert!(lines.contains("subscriptions: fetched 1"), "{lines}");

    // The command prints the same lines and exits non-zero, naming them.
    let stripe_base = app.stripe.uri();
    let env = lance_billing::config::Env::from_pairs([
        ("DATABASE_URL", app.database_url.as_str()),
        ("STRIPE_SECRET_KEY", STRIPE_KEY),
        ("STRIPE_API_BASE", stripe_base.as_str()),
        ("STRIPE_MAX_RETRIES", "0"),
    ]);
    let cli = <lance_billing::cli::Cli as clap::Parser>::parse_from(["lance-billing", "sync"]);
    let err = lance_billing::cli::run(cli, &env).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not read products, invoices from Stripe (everything else was applied)"
    );
}

#[tokio::test]
async fn a_refused_key_stops_the_sync_at_once() {
    let app = TestApp::spawn().await;
    stripe_account(&app).await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_***"}}),
        ))
        .with_priority(1)
        .mount(&app.stripe)
        .await;
    let err = sync(&app.store, &app.stripe_client(0), None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("401"), "{err:#}");
}

/// A subscription found past due (its event lost) counts its grace period
/// from its oldest unpaid invoice, not from the fetch: it gets no fresh one.
#[tokio::test]
async fn a_missed_past_due_state_keeps_the_grace_period_it_had() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_late", "cus_late").await;
    let weeks_ago = lance_billing::domain::unix_now() - 21 * 86_400;
    let mut owed = invoice("in_late", "cus_late", "sub_late", "open", weeks_ago - 3600);
    owed["status_transitions"] = json!({"finalized_at": weeks_ago});
    owed["due_date"] = Value::Null;
    let mut newer = invoice(
        "in_later",
        "cus_late",
        "sub_late",
        "open",
        weeks_ago + 86_400,
    );
    newer["due_date"] = (weeks_ago + 86_400).into();
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_late"))
        .respond_with(ResponseTemplate::new(200).set_body_json(customer(
            "cus_late",
            Some("org_late"),
            None,
        )))
        .mount(&app.stripe)
        .await;
    let lists = [
        (
            "/v1/subscriptions",
            vec![subscription("sub_late", "cus_late", "past_due")],
        ),
        ("/v1/invoices", vec![newer, owed]),
        ("/v1/customers/cus_late/payment_methods", vec![]),
        ("/v1/entitlements/active_entitlements", vec![]),
    ];
    for (at, data) in lists {
        stripe_lists(&app, at, &[], list(data, false)).await;
    }
    let stripe = app.stripe_client(0);
    lance_billing::billing::reconcile::sync_customer_by_id(&app.store, &stripe, "cus_late")
        .await
        .unwrap();
    let since = app
        .count("SELECT past_due_since FROM subscriptions WHERE id = 'sub_late'")
        .await;
    assert_eq!(since, weeks_ago);
    let (status, body) = app
        .get_json("/api/v1/operations/payment/entitlements", "org_late")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["access"], "none", "{body}");
}
