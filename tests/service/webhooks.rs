//! POST /api/v1/webhooks/stripe and the synced state it produces.

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::stripe_fixtures::*;
use lance_billing::domain::unix_now;

async fn applied(app: &TestApp, event: &Value) -> String {
    let response = app.post_event(event).await;
    assert_eq!(response.status().as_u16(), 200, "{}", event["type"]);
    let body: Value = response.json().await.unwrap();
    body["status"].as_str().unwrap().to_owned()
}

async fn plan_state(app: &TestApp, org: &str) -> Value {
    let (status, body) = app
        .get_json("/api/v1/operations/payment/subscription", org)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The synced subscription, minus its id, for comparing outcomes.
async fn subscription_row(
    app: &TestApp,
    id: &str,
) -> Option<(String, bool, Option<i64>, Option<i64>, Option<i64>)> {
    const SQL: &str = "SELECT status, cancel_at_period_end, quantity, current_period_end, \
                       (SELECT quantity FROM subscription_items WHERE subscription_id = s.id) \
                       FROM subscriptions s WHERE id = $1";
    crate::with_db!(&app.db, |pool| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap())
}

#[tokio::test]
async fn every_kind_of_bad_delivery_is_refused_with_400_and_nothing_is_recorded() {
    let app = TestApp::spawn().await;
    let body = serde_json::to_vec(&event(
        "evt_bad",
        "customer.created",
        1,
        customer("cus_A", None, None),
    ))
    .unwrap();
    let now = unix_now();
    let sign =
        |secret: &str, t: i64| lance_billing::stripe::webhook::signature_header(secret, t, &body);
    let good = sign(WEBHOOK_SECRET, now);
    let v1 = good.split_once(",v1=").unwrap().1.to_owned();
    let cases: Vec<(&str, Option<String>, Vec<u8>)> = vec![
        ("no signature", None, body.clone()),
        ("garbage header", Some("nonsense".into()), body.clone()),
        ("wrong secret", Some(sign("whsec_other", now)), body.clone()),
        (
            "too old",
            Some(sign(WEBHOOK_SECRET, now - 301)),
            body.clone(),
        ),
        ("only v0", Some(format!("t={now},v0={v1}")), body.clone()),
        (
            "body changed after signing",
            Some(good.clone()),
            [&body[..], b" "].concat(),
        ),
        (
            "valid signature, not an event",
            Some(lance_billing::stripe::webhook::signature_header(
                WEBHOOK_SECRET,
                now,
                b"[1,2]",
            )),
            b"[1,2]".to_vec(),
        ),
        (
            "over 1 MiB",
            Some(good.clone()),
            vec![b' '; 1024 * 1024 + 1],
        ),
    ];
    for (name, header, body) in cases {
        let response = app.post_webhook(body, header.as_deref()).await;
        assert_eq!(response.status().as_u16(), 400, "{name}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], "VALIDATION_ERROR", "{name}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM stripe_events").await, 0);
    assert_eq!(
        app.post_webhook(body, Some(&good)).await.status().as_u16(),
        200
    );
}

#[tokio::test]
async fn a_rolled_secret_accepts_deliveries_signed_with_either_secret() {
    let app = TestApp::builder()
        .env("STRIPE_WEBHOOK_SECRET", "whsec_new_one, whsec_test_secret")
        .spawn()
        .await;
    let now = unix_now();
    for (i, secret) in ["whsec_new_one", WEBHOOK_SECRET].iter().enumerate() {
        let body =
            serde_json::to_vec(&event(&format!("evt_roll{i}"), "ping", now, json!({}))).unwrap();
        let header = lance_billing::stripe::webhook::signature_header(secret, now, &body);
        assert_eq!(
            app.post_webhook(body, Some(&header))
                .await
                .status()
                .as_u16(),
            200,
            "{secret}"
        );
    }
}

#[tokio::test]
async fn unknown_event_types_are_recorded_and_acknowledged() {
    let app = TestApp::spawn().await;
    let status = applied(
        &app,
        &event(
            "evt_unknown",
            "radar.early_fraud_warning.created",
            1,
            json!({"id": "issfr_1"}),
        ),
    )
    .await;
    assert_eq!(status, "applied");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stripe_events WHERE processed_at IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn a_duplicate_delivery_changes_nothing_and_is_acknowledged() {
    let app = TestApp::spawn().await;
    let created = event(
        "evt_dup",
        "customer.subscription.created",
        100,
        subscription("sub_1", "cus_A", "active"),
    );
    assert_eq!(applied(&app, &created).await, "applied");
    assert_eq!(applied(&app, &created).await, "duplicate");
    assert_eq!(app.count("SELECT COUNT(*) FROM stripe_events").await, 1);
    assert_eq!(app.count("SELECT attempts FROM stripe_events").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions").await, 1);
}

#[tokio::test]
async fn subscription_events_in_both_api_shapes_sync_the_plan_state() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_new", "cus_New").await;
    app.org_with_customer("org_old", "cus_Old").await;
    applied(
        &app,
        &event("evt_p", "product.created", 90, product("prod_pro", "Pro")),
    )
    .await;
    applied(
        &app,
        &event(
            "evt_n",
            "customer.subscription.created",
            100,
            subscription("sub_new", "cus_New", "trialing"),
        ),
    )
    .await;
    applied(
        &app,
        &event(
            "evt_o",
            "customer.subscription.created",
            100,
            legacy_subscription("sub_old", "cus_Old", "active"),
        ),
    )
    .await;

    for org in ["org_new", "org_old"] {
        let state = plan_state(&app, org).await;
        let sub = &state["subscriptions"][0];
        assert_eq!(
            sub["product"],
            json!({"id": "prod_pro", "name": "Pro"}),
            "{org}"
        );
        assert_eq!(sub["price"]["id"], "price_pro_monthly");
        assert_eq!(sub["price"]["unit_amount"], 4900);
        assert_eq!(sub["price"]["currency"], "usd");
        assert_eq!(sub["price"]["interval"], "month");
        assert_eq!(sub["quantity"], 3);
        assert_eq!(
            sub["current_period_end"], 1_702_592_000,
            "{org}: both period shapes"
        );
        assert!(state["synced_at"].as_i64().is_some());
    }
    assert_eq!(
        plan_state(&app, "org_new").await["subscriptions"][0]["status"],
        "trialing"
    );
}

#[tokio::test]
async fn a_portal_cancellation_comes_back_and_a_deletion_is_final() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    applied(
        &app,
        &event(
            "evt_1",
            "customer.subscription.created",
            100,
            subscription("sub_1", "cus_A", "active"),
        ),
    )
    .await;
    let mut canceling = subscription("sub_1", "cus_A", "active");
    canceling["cancel_at_period_end"] = true.into();
    canceling["cancel_at"] = 1_702_592_000.into();
    applied(
        &app,
        &event("evt_2", "customer.subscription.updated", 200, canceling),
    )
    .await;
    let sub = &plan_state(&app, "org_acme").await["subscriptions"][0];
    assert_eq!(sub["cancel_at_period_end"], true);
    assert_eq!(sub["cancel_at"], 1_702_592_000);

    applied(
        &app,
        &event(
            "evt_3",
            "customer.subscription.deleted",
            300,
            subscription("sub_1", "cus_A", "canceled"),
        ),
    )
    .await;
    // A same-second update and an older one arriving late must not resurrect it.
    applied(
        &app,
        &event(
            "evt_4",
            "customer.subscription.updated",
            300,
            subscription("sub_1", "cus_A", "active"),
        ),
    )
    .await;
    applied(
        &app,
        &event(
            "evt_0",
            "customer.subscription.updated",
            150,
            subscription("sub_1", "cus_A", "past_due"),
        ),
    )
    .await;
    assert_eq!(
        plan_state(&app, "org_acme").await["subscriptions"][0]["status"],
        "canceled"
    );
}

#[tokio::test]
async fn an_update_that_arrives_before_its_created_is_kept() {
    let app = TestApp::spawn().await;
    let mut updated = subscription("sub_1", "cus_A", "active");
    updated["quantity"] = 9.into();
    updated["items"]["data"][0]["quantity"] = 9.into();
    applied(
        &app,
        &event("evt_u", "customer.subscription.updated", 101, updated),
    )
    .await;
    applied(
        &app,
        &event(
            "evt_c",
            "customer.subscription.created",
            100,
            subscription("sub_1", "cus_A", "incomplete"),
        ),
    )
    .await;
    let row = subscription_row(&app, "sub_1").await.unwrap();
    assert_eq!((row.0.as_str(), row.2), ("active", Some(9)));
}

/// Any permutation, with duplicates, of one subscription's events leaves the
/// same row as delivering them in order.
#[tokio::test]
async fn any_delivery_order_with_duplicates_leaves_the_in_order_result() {
    let app = TestApp::spawn().await;
    let stream = |run: usize| -> Vec<Value> {
        let sub = format!("sub_run{run:03}");
        let version = |i: usize, kind: &str, t: i64, status: &str, quantity: i64, cancel: bool| {
            let mut s = subscription(&sub, "cus_perm", status);
            s["items"]["data"][0]["quantity"] = quantity.into();
            s["cancel_at_period_end"] = cancel.into();
            s["items"]["data"][0]["current_period_end"] = (1_000 + t).into();
            event(&format!("evt_run{run:03}_{i:02}"), kind, t, s)
        };
        vec![
            version(
                0,
                "customer.subscription.created",
                100,
                "incomplete",
                1,
                false,
            ),
            version(1, "customer.subscription.updated", 101, "active", 1, false),
            version(2, "customer.subscription.updated", 101, "active", 5, false),
            version(3, "customer.subscription.updated", 105, "active", 5, true),
            version(4, "customer.subscription.updated", 105, "past_due", 5, true),
            version(5, "customer.subscription.updated", 110, "active", 7, false),
            version(6, "customer.subscription.paused", 111, "paused", 7, false),
            version(7, "customer.subscription.resumed", 112, "active", 7, false),
            version(
                8,
                "customer.subscription.deleted",
                120,
                "canceled",
                7,
                false,
            ),
            version(9, "customer.subscription.updated", 120, "active", 8, false),
        ]
    };
    for event in stream(0) {
        applied(&app, &event).await;
    }
    let expected = subscription_row(&app, "sub_run000").await.unwrap();
    assert_eq!(expected.0, "canceled");

    let mut rng = StdRng::seed_from_u64(0x5eed);
    for run in 1..=40 {
        let mut events = stream(run);
        let duplicates: Vec<Value> = events
            .iter()
            .filter(|_| rng.random_bool(0.3))
            .cloned()
            .collect();
        events.extend(duplicates);
        events.shuffle(&mut rng);
        for event in &events {
            applied(&app, event).await;
        }
        let got = subscription_row(&app, &format!("sub_run{run:03}"))
            .await
            .unwrap();
        assert_eq!(got, expected, "run {run}");
    }
}

#[tokio::test]
async fn checkout_before_customer_created_still_links_the_organization() {
    let app = TestApp::spawn().await;
    applied(
        &app,
        &event(
            "evt_co",
            "checkout.session.completed",
            100,
            checkout(
                "cs_1",
                "org_fresh",
                "cus_Fresh",
                "subscription",
                "paid",
                None,
            ),
        ),
    )
    .await;
    applied(
        &app,
        &event(
            "evt_cc",
            "customer.created",
            99,
            customer("cus_Fresh", Some("org_fresh"), None),
        ),
    )
    .await;

    let state = plan_state(&app, "org_fresh").await;
    assert_eq!(state["customer"], "cus_Fresh");
    app.stripe_creates_portal_sessions().await;
    let response = app.get_portal(&sign(&claims_v2("org_fresh"))).await;
    assert_eq!(response.status().as_u16(), 302);
}

#[tokio::test]
async fn a_credits_purchase_grants_credits_exactly_once() {
    let app = TestApp::spawn().await;
    let pending = checkout(
        "cs_credits",
        "org_acme",
        "cus_A",
        "payment",
        "unpaid",
        Some(500),
    );
    applied(
        &app,
        &event("evt_1", "checkout.session.completed", 100, pending),
    )
    .await;
    assert_eq!(
        plan_state(&app, "org_acme").await["credits"]["balance"],
        0,
        "not paid yet"
    );

    let paid = checkout(
        "cs_credits",
        "org_acme",
        "cus_A",
        "payment",
        "paid",
        Some(500),
    );
    applied(
        &app,
        &event(
            "evt_2",
            "checkout.session.async_payment_succeeded",
            200,
            paid.clone(),
        ),
    )
    .await;
    applied(
        &app,
        &event(
            "evt_2",
            "checkout.session.async_payment_succeeded",
            200,
            paid.clone(),
        ),
    )
    .await;
    applied(
        &app,
        &event("evt_3", "checkout.session.completed", 201, paid),
    )
    .await;
    assert_eq!(
        plan_state(&app, "org_acme").await["credits"]["balance"],
        500
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM credit_ledger").await, 1);
}

#[tokio::test]
async fn invoices_sync_and_page_newest_first() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    for i in 0..5i64 {
        let inv = invoice(&format!("in_{i}"), "cus_A", "sub_1", "open", 1_000 + i);
        applied(
            &app,
            &event(&format!("evt_i{i}"), "invoice.finalized", 1_000 + i, inv),
        )
        .await;
    }
    applied(
        &app,
        &event(
            "evt_paid",
            "invoice.paid",
            2_000,
            invoice("in_4", "cus_A", "sub_1", "paid", 1_004),
        ),
    )
    .await;
    applied(
        &app,
        &event(
            "evt_late",
            "invoice.finalized",
            1_004,
            invoice("in_4", "cus_A", "sub_1", "open", 1_004),
        ),
    )
    .await;

    let (status, first) = app
        .get_json("/api/v1/operations/payment/invoices?limit=2", "org_acme")
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["in_4", "in_3"]);
    assert_eq!(first["has_more"], true);
    assert_eq!(
        first["data"][0]["status"], "paid",
        "a late finalized does not undo paid"
    );
    assert_eq!(first["data"][0]["amount_paid"], 4900);
    assert_eq!(first["data"][0]["currency"], "usd");
    assert_eq!(
        first["data"][0]["subscription"], "sub_1",
        "read from parent.subscription_details"
    );

    let (_, last) = app
        .get_json(
            "/api/v1/operations/payment/invoices?limit=2&starting_after=in_1",
            "org_acme",
        )
        .await;
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    assert_eq!(last["has_more"], false);
    let (bad, _) = app
        .get_json(
            "/api/v1/operations/payment/invoices?starting_after=in_other",
            "org_acme",
        )
        .await;
    assert_eq!(bad, 400);
    let (bad_limit, _) = app
        .get_json("/api/v1/operations/payment/invoices?limit=500", "org_acme")
        .await;
    assert_eq!(bad_limit, 400);
}

#[tokio::test]
async fn payment_methods_follow_attach_default_and_detach() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    applied(
        &app,
        &event(
            "evt_a1",
            "payment_method.attached",
            100,
            payment_method("pm_1", Some("cus_A"), "4242"),
        ),
    )
    .await;
    applied(
        &app,
        &event(
            "evt_a2",
            "payment_method.attached",
            101,
            payment_method("pm_2", Some("cus_A"), "1881"),
        ),
    )
    .await;
    applied(
        &app,
        &event(
            "evt_c",
            "customer.updated",
            102,
            customer("cus_A", Some("org_acme"), Some("pm_1")),
        ),
    )
    .await;
    let pm = &plan_state(&app, "org_acme").await["payment_method"];
    assert_eq!(pm["last4"], "4242", "the customer's default wins");
    assert_eq!(pm["brand"], "visa");
    assert_eq!(pm["exp_month"], 8);

    applied(
        &app,
        &event(
            "evt_d",
            "payment_method.detached",
            103,
            payment_method("pm_1", None, "4242"),
        ),
    )
    .await;
    assert_eq!(
        plan_state(&app, "org_acme").await["payment_method"]["last4"],
        "1881"
    );
}

#[tokio::test]
async fn a_deleted_customer_no_longer_opens_the_portal() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let mut gone = customer("cus_A", Some("org_acme"), None);
    gone["deleted"] = true.into();
    applied(&app, &event("evt_del", "customer.deleted", 100, gone)).await;
    // A late checkout for the same customer does not relink it.
    applied(
        &app,
        &event(
            "evt_co",
            "checkout.session.completed",
            50,
            checkout("cs_1", "org_acme", "cus_A", "subscription", "paid", None),
        ),
    )
    .await;
    assert_eq!(
        app.get_portal(&sign(&claims_v2("org_acme")))
            .await
            .status()
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn a_payload_that_cannot_be_applied_is_kept_for_replay_and_acknowledged() {
    let app = TestApp::spawn().await;
    let broken = event(
        "evt_broken",
        "customer.subscription.updated",
        100,
        json!({"id": "sub_x", "status": 42}),
    );
    assert_eq!(applied(&app, &broken).await, "failed");
    assert_eq!(app.count("SELECT COUNT(*) FROM stripe_events WHERE processed_at IS NULL AND last_error IS NOT NULL").await, 1);
}

#[tokio::test]
async fn a_database_failure_answers_500_and_the_retry_succeeds_with_nothing_lost() {
    let app = TestApp::spawn().await;
    let created = event(
        "evt_db",
        "customer.subscription.created",
        100,
        subscription("sub_db", "cus_A", "active"),
    );
    app.execute("ALTER TABLE subscriptions RENAME TO subscriptions_away")
        .await;

    let response = app.post_event(&created).await;

    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stripe_events").await,
        0,
        "no partial state"
    );
    app.execute("ALTER TABLE subscriptions_away RENAME TO subscriptions")
        .await;
    assert_eq!(applied(&app, &created).await, "applied");
    assert_eq!(subscription_row(&app, "sub_db").await.unwrap().0, "active");
}

#[tokio::test]
async fn concurrent_deliveries_are_all_stored() {
    let app = TestApp::spawn().await;
    let posts = (0..60).map(|i| {
        let e = event(
            &format!("evt_c{i}"),
            "customer.subscription.created",
            100,
            subscription(&format!("sub_c{i}"), "cus_A", "active"),
        );
        let app = &app;
        async move { app.post_event(&e).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions").await, 60);
}

#[tokio::test]
async fn one_failing_event_in_a_batch_does_not_refuse_the_others() {
    let app = TestApp::spawn().await;
    app.execute("ALTER TABLE invoices RENAME TO invoices_away")
        .await;
    let mut deliveries: Vec<Value> = (0..30)
        .map(|i| {
            event(
                &format!("evt_s{i}"),
                "customer.subscription.created",
                100,
                subscription(&format!("sub_s{i}"), "cus_A", "active"),
            )
        })
        .collect();
    deliveries.insert(
        15,
        event(
            "evt_inv",
            "invoice.paid",
            100,
            invoice("in_x", "cus_A", "sub_s1", "paid", 100),
        ),
    );

    let statuses = futures_util::future::join_all(deliveries.iter().map(|e| {
        let app = &app;
        async move {
            (
                e["id"].as_str().unwrap().to_owned(),
                app.post_event(e).await.status().as_u16(),
            )
        }
    }))
    .await;

    for (id, status) in &statuses {
        let expected = if id == "evt_inv" { 500 } else { 200 };
        assert_eq!(*status, expected, "{id}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions").await, 30);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_inv'")
            .await,
        0
    );
    app.execute("ALTER TABLE invoices_away RENAME TO invoices")
        .await;
    assert_eq!(applied(&app, &deliveries[15]).await, "applied");
}

#[tokio::test]
async fn a_paid_invoice_grants_the_credits_its_prices_carry_once() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let mut price = object("price");
    price["id"] = "price_credits_100".into();
    price["product"] = "prod_credits".into();
    price["metadata"] = json!({"credits": "100"});
    applied(&app, &event("evt_price", "price.created", 50, price)).await;

    // Current shape: the line names its price under pricing.price_details.
    let mut paid = invoice("in_c", "cus_A", "sub_1", "paid", 100);
    paid["lines"]["data"][0]["quantity"] = 2.into();
    paid["lines"]["data"][0]["pricing"] = json!({"type": "price_details", "price_details": {"price": "price_credits_100", "product": "prod_credits"}});
    applied(&app, &event("evt_paid", "invoice.paid", 100, paid.clone())).await;
    applied(
        &app,
        &event("evt_paid2", "invoice.payment_succeeded", 100, paid),
    )
    .await;

    assert_eq!(
        plan_state(&app, "org_acme").await["credits"]["balance"],
        200
    );
}

#[tokio::test]
async fn an_invoice_in_the_pre_basil_shape_keeps_its_subscription() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let mut legacy = invoice("in_l", "cus_A", "unused", "open", 100);
    legacy["parent"] = Value::Null;
    legacy["subscription"] = "sub_legacy".into();
    applied(&app, &event("evt_l", "invoice.finalized", 100, legacy)).await;
    let (_, page) = app
        .get_json("/api/v1/operations/payment/invoices", "org_acme")
        .await;
    assert_eq!(page["data"][0]["subscription"], "sub_legacy");
}

/// An event whose mode is not the key's (a live event reaching a test
/// deployment, or the reverse) is recorded and acknowledged, never applied,
/// and the webhook-health page says so.
#[tokio::test]
async fn an_event_of_the_other_mode_is_recorded_not_applied_and_shown() {
    let app = TestApp::builder()
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await;
    app.org_with_customer("org_live", "cus_live").await;
    let mut live = event(
        "evt_live",
        "customer.subscription.created",
        1_700_000_000,
        subscription("sub_live", "cus_live", "active"),
    );
    live["livemode"] = true.into();
    let response = app.post_event(&live).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions").await, 0);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_live' AND processed_at IS NOT NULL"
        )
        .await,
        1
    );
    let (status, _, html) = app.page("/admin/webhooks", &claims_v2("org_live")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("1 live-mode event(s) reached this endpoint"),
        "{html}"
    );
}

/// A paid invoice whose line names a price not synced yet grants nothing
/// now rather than nothing for good: its event fails, and the replay after
/// the next catch-up, once the price is known, grants the credits once.
#[tokio::test]
async fn an_invoice_of_a_price_not_synced_yet_grants_its_credits_once_it_is() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let mut paid = invoice("in_early", "cus_A", "sub_1", "paid", 100);
    paid["lines"]["data"][0]["price"] = Value::Null;
    paid["lines"]["data"][0]["plan"] = Value::Null;
    paid["lines"]["data"][0]["pricing"] = json!({"type": "price_details", "price_details": {"price": "price_late", "product": "prod_credits"}});
    assert_eq!(
        applied(&app, &event("evt_early", "invoice.paid", 100, paid)).await,
        "failed"
    );
    assert_eq!(plan_state(&app, "org_acme").await["credits"]["balance"], 0);

    let mut price = object("price");
    price["id"] = "price_late".into();
    price["product"] = "prod_credits".into();
    price["metadata"] = json!({"credits": "25"});
    let listed = json!({"object": "list", "has_more": false, "url": "/v1/events",
        "data": [event("evt_price_late", "price.created", 150, price)]});
    wiremock::Mock::given(wiremock::matchers::path("/v1/events"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(listed))
        .mount(&app.stripe)
        .await;
    let report = lance_billing::billing::catchup::catch_up(&app.store, &app.stripe_client(0), None)
        .await
        .unwrap();
    assert_eq!(report.replayed, 1, "{report}");
    assert_eq!(plan_state(&app, "org_acme").await["credits"]["balance"], 25);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_early' AND processed_at IS NOT NULL"
        )
        .await,
        1
    );
}
