//! The operators' pages.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stripe_fixtures::*;

const OPERATOR: &str = "user_2abc"; // the `sub` of claims_v2

fn stranger() -> Value {
    let mut claims = claims_v2("org_acme");
    claims["sub"] = "user_stranger".into();
    claims
}

async fn admin_app() -> TestApp {
    TestApp::builder()
        .env("ADMIN_USER_IDS", &format!("user_ops,{OPERATOR}"))
        .spawn()
        .await
}

async fn seed(app: &TestApp) {
    app.org_with_customer("org_acme", "cus_A").await;
    app.org_with_customer("org_beta", "cus_B").await;
    let mut yearly = subscription("sub_b", "cus_B", "past_due");
    yearly["items"]["data"][0]["price"]["recurring"]["interval"] = "year".into();
    yearly["items"]["data"][0]["price"]["unit_amount"] = 120_000.into();
    yearly["items"]["data"][0]["quantity"] = 1.into();
    for e in [
        event("evt_p", "product.created", 1, product("prod_pro", "Pro")),
        event(
            "evt_a",
            "customer.subscription.created",
            100,
            subscription("sub_a", "cus_A", "active"),
        ),
        event("evt_b", "customer.subscription.created", 100, yearly),
        event(
            "evt_i",
            "invoice.paid",
            101,
            invoice("in_a", "cus_A", "sub_a", "paid", 101),
        ),
        event(
            "evt_pm",
            "payment_method.attached",
            102,
            payment_method("pm_a", Some("cus_A"), "4242"),
        ),
        event(
            "evt_cr",
            "checkout.session.completed",
            103,
            checkout("cs_cr", "org_acme", "cus_A", "payment", "paid", Some(300)),
        ),
    ] {
        assert_eq!(app.post_event(&e).await.status().as_u16(), 200);
    }
}

#[tokio::test]
async fn only_operators_get_in() {
    let app = admin_app().await;
    for path in ["/admin", "/admin/webhooks", "/admin/orgs/org_acme"] {
        assert_eq!(app.page(path, &stranger()).await.0, 404, "{path}");
        let anonymous = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status().as_u16(), 401, "{path}");
    }
    assert_eq!(app.page("/admin", &claims_v2("org_acme")).await.0, 200);
}

#[tokio::test]
async fn the_list_shows_plan_state_mrr_and_credits_with_filters() {
    let app = admin_app().await;
    seed(&app).await;
    let (_, _, body) = app.page("/admin", &claims_v2("org_acme")).await;
    assert!(
        body.contains(r#"href="/admin/orgs/org_acme""#)
            && body.contains(r#"href="/admin/orgs/org_beta""#)
    );
    assert!(body.contains("$147.00"), "MRR of 3 seats at $49/month");
    assert!(body.contains("$100.00"), "MRR of $1,200/year");
    assert!(body.contains(">300<"), "credits");
    assert!(body.contains("Renews Dec 14, 2023"));

    let (_, _, past_due) = app
        .page("/admin?status=past_due", &claims_v2("org_acme"))
        .await;
    assert!(past_due.contains("org_beta") && !past_due.contains("/admin/orgs/org_acme"));
    let (_, _, searched) = app.page("/admin?q=ACME", &claims_v2("org_acme")).await;
    assert!(
        searched.contains("/admin/orgs/org_acme") && !searched.contains("/admin/orgs/org_beta")
    );
}

#[tokio::test]
async fn the_list_is_paginated() {
    let app = admin_app().await;
    for i in 0..55 {
        app.org_with_customer(&format!("org_p{i:02}"), &format!("cus_P{i:02}"))
            .await;
    }
    let (_, _, first) = app.page("/admin", &claims_v2("org_acme")).await;
    assert_eq!(first.matches("href=\"/admin/orgs/").count(), 50);
    assert!(first.contains(r#"href="/admin?page=2""#));
    let (_, _, second) = app.page("/admin?page=2", &claims_v2("org_acme")).await;
    assert_eq!(second.matches("href=\"/admin/orgs/").count(), 5);
    assert!(second.contains(r#"href="/admin?page=1""#) && !second.contains("page=3"));
}

#[tokio::test]
async fn the_detail_shows_everything_synced_and_resyncs_from_stripe() {
    let app = admin_app().await;
    seed(&app).await;
    let (status, _, body) = app
        .page("/admin/orgs/org_acme", &claims_v2("org_acme"))
        .await;
    assert_eq!(status, 200);
    for text in [
        "sub_a",
        "in_a",
        "•••• 4242",
        "checkout_session cs_cr",
        "invoice.paid",
        "Resync from Stripe",
    ] {
        assert!(body.contains(text), "{text}");
    }
    assert_eq!(
        app.page("/admin/orgs/org_missing", &claims_v2("org_acme"))
            .await
            .0,
        404
    );

    let list = |data: Vec<Value>| json!({"object": "list", "data": data, "has_more": false});
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![customer(
            "cus_A",
            Some("org_acme"),
            None,
        )])))
        .mount(&app.stripe)
        .await;
    for empty in [
        "/v1/subscriptions",
        "/v1/invoices",
        "/v1/customers/cus_A/payment_methods",
    ] {
        Mock::given(method("GET"))
            .and(path(empty))
            .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![])))
            .mount(&app.stripe)
            .await;
    }
    let session = app
        .form_session_at("/admin/orgs/org_acme", &claims_v2("org_acme"))
        .await;
    let response = app
        .submit_form("/admin/orgs/org_acme/resync", &session, &[])
        .await;
    assert_eq!(response.status().as_u16(), 303);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/admin/orgs/org_acme?done=synced")
    );
    let forged = app
        .post_form(
            "/admin/orgs/org_acme/resync",
            &session,
            Some("https://evil.test"),
            &[("csrf", &session.csrf)],
        )
        .await;
    assert_eq!(forged.status().as_u16(), 403);
}

#[tokio::test]
async fn webhook_health_lists_failures_and_replays_them() {
    let app = admin_app().await;
    let broken = event(
        "evt_broken",
        "customer.subscription.updated",
        100,
        json!({"id": "sub_x", "status": 1}),
    );
    app.post_event(&broken).await;
    app.post_event(&event(
        "evt_fine",
        "customer.created",
        100,
        customer("cus_Z", None, None),
    ))
    .await;

    let (_, _, body) = app.page("/admin/webhooks", &claims_v2("org_acme")).await;
    assert!(body.contains("evt_broken") && body.contains("is not a valid subscription"));
    assert!(body.contains("evt_fine"));

    let session = app
        .form_session_at("/admin/webhooks", &claims_v2("org_acme"))
        .await;
    let response = app
        .submit_form("/admin/webhooks/evt_broken/replay", &session, &[])
        .await;
    assert_eq!(response.status().as_u16(), 303);
    let missing = app
        .submit_form("/admin/webhooks/evt_nope/replay", &session, &[])
        .await;
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn operators_adjust_credits_with_a_reason_never_below_zero() {
    let app = admin_app().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let session = app
        .form_session_at("/admin/orgs/org_acme", &claims_v2("org_acme"))
        .await;
    let added = app
        .submit_form(
            "/admin/orgs/org_acme/credits",
            &session,
            &[("amount", "25"), ("reason", "goodwill for the outage")],
        )
        .await;
    assert_eq!(added.status().as_u16(), 303);
    let location = added.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("balance+is+25"), "{location}");
    for (amount, reason) in [
        ("-26", "too much"),
        ("0", "nothing"),
        ("x", "nan"),
        ("5", " "),
    ] {
        let refused = app
            .submit_form(
                "/admin/orgs/org_acme/credits",
                &session,
                &[("amount", amount), ("reason", reason)],
            )
            .await;
        assert_eq!(refused.status().as_u16(), 400, "{amount} {reason:?}");
    }
    let removed = app
        .submit_form(
            "/admin/orgs/org_acme/credits",
            &session,
            &[("amount", "-5"), ("reason", "correction")],
        )
        .await;
    assert_eq!(removed.status().as_u16(), 303);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'adjustment' \
             AND actor = 'user_2abc' AND org_id = 'org_acme'" // OPERATOR
        )
        .await,
        2
    );
    assert_eq!(
        app.count("SELECT balance FROM credit_balances WHERE org_id = 'org_acme'")
            .await,
        20
    );
    let (_, _, page) = app
        .page("/admin/orgs/org_acme", &claims_v2("org_acme"))
        .await;
    assert!(page.contains("goodwill for the outage"), "{page}");
    let unknown = app
        .submit_form(
            "/admin/orgs/org_nobody/credits",
            &session,
            &[("amount", "5"), ("reason", "x")],
        )
        .await;
    assert_eq!(unknown.status().as_u16(), 404);
}
