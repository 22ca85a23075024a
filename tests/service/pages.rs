//! The organization page, its Plans tab in every state, checkout, CSRF and roles.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stripe_fixtures::*;

fn member(org: &str) -> Value {
    let mut claims = claims_v2(org);
    claims["o"]["rol"] = "member".into();
    claims
}

#[tokio::test]
async fn signed_out_visitors_get_a_401_page_or_the_sign_in_redirect() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}/organization", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("Sign in required"));

    let redirecting = TestApp::builder()
        .env("CLERK_SIGN_IN_URL", "https://accounts.lance.test/sign-in")
        .spawn()
        .await;
    let response = redirecting
        .client
        .get(format!("{}/organization", redirecting.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        response.headers()["location"],
        "https://accounts.lance.test/sign-in?redirect_url=https%3A%2F%2Fapp.lance.test%2Forganization"
    );
}

#[tokio::test]
async fn a_user_without_an_organization_gets_a_400_page_that_says_so() {
    let app = TestApp::spawn().await;
    let (status, _, body) = app.page("/organization", &claims_without_org()).await;
    assert_eq!(status, 400);
    assert!(body.contains("No organization selected"));
}

#[tokio::test]
async fn pages_send_security_headers_and_no_inline_script() {
    let app = TestApp::spawn().await;
    let (_, headers, body) = app.page("/organization", &claims_v2("org_acme")).await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(
        headers["referrer-policy"],
        "strict-origin-when-cross-origin"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        !body.contains("<script>") && !body.contains("style=\""),
        "no inline script or style"
    );
    assert!(body.contains(r#"<script src="/static/tabs.js" defer></script>"#));
}

#[tokio::test]
async fn the_general_tab_shows_the_organization() {
    let app = TestApp::spawn().await;
    let body = app.plans_html("org_acme").await;
    assert!(body.contains(r#"id="/general""#) && body.contains(r#"id="/plans""#));
    assert!(body.contains("<code>org_acme</code>") && body.contains("acme"));
}

#[tokio::test]
async fn the_plans_tab_shows_every_subscription_state() {
    let app = TestApp::spawn().await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("active", "Active", &["Renews on Dec 14, 2023"]),
        ("trialing", "Trial", &["Trial ends on"]),
        (
            "past_due",
            "Past due",
            &["Your last payment failed", "?flow=payment_method_update"],
        ),
        (
            "unpaid",
            "Unpaid",
            &["suspended", "?flow=payment_method_update"],
        ),
        ("canceled", "Canceled", &["Canceled on"]),
        ("paused", "Paused", &["Paused: no invoices"]),
        ("incomplete", "Incomplete", &["has not gone through"]),
    ];
    for (i, (status, badge, texts)) in cases.iter().enumerate() {
        let org = format!("org_state{i}");
        let customer = format!("cus_State{i}");
        app.org_with_customer(&org, &customer).await;
        let mut sub = subscription(&format!("sub_state{i}"), &customer, status);
        sub["trial_end"] = 1_701_000_000.into();
        sub["canceled_at"] = if *status == "canceled" {
            1_701_000_000.into()
        } else {
            Value::Null
        };
        app.post_events(&[event(
            &format!("evt_state{i}"),
            "customer.subscription.created",
            100,
            sub,
        )])
        .await;

        let body = app.plans_html(&org).await;
        assert!(
            body.contains(&format!(">{badge}</span>")),
            "{status}: badge {badge}"
        );
        for text in *texts {
            assert!(body.contains(text), "{status}: {text}");
        }
        assert!(
            body.contains("$49.00 / month") && body.contains("3 seats"),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_cancellation_at_period_end_reads_cancels_on() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let mut sub = subscription("sub_1", "cus_A", "active");
    sub["cancel_at_period_end"] = true.into();
    app.post_events(&[event("evt_1", "customer.subscription.updated", 100, sub)])
        .await;
    let body = app.plans_html("org_acme").await;
    assert!(body.contains("Cancels on Dec 14, 2023"), "{body}");
    assert!(
        !body.contains("flow=subscription_cancel"),
        "already canceling: no cancel link"
    );
}

#[tokio::test]
async fn several_subscriptions_payment_method_credits_and_history_show() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let mut yen = invoice("in_yen", "cus_A", "sub_2", "paid", 1_700_000_000);
    yen["currency"] = "jpy".into();
    app.post_events(&[
        event("evt_p", "product.created", 1, product("prod_pro", "Pro")),
        event(
            "evt_1",
            "customer.subscription.created",
            100,
            subscription("sub_1", "cus_A", "active"),
        ),
        event(
            "evt_2",
            "customer.subscription.created",
            101,
            subscription("sub_2", "cus_A", "trialing"),
        ),
        event(
            "evt_pm",
            "payment_method.attached",
            102,
            payment_method("pm_1", Some("cus_A"), "4242"),
        ),
        event("evt_in", "invoice.paid", 103, yen),
        event(
            "evt_cr",
            "checkout.session.completed",
            104,
            checkout("cs_1", "org_acme", "cus_A", "payment", "paid", Some(1500)),
        ),
    ])
    .await;

    let body = app.plans_html("org_acme").await;
    assert_eq!(body.matches(r#"class="card plan""#).count(), 2);
    assert!(body.contains("<h3>Pro</h3>"));
    assert!(body.contains("Visa •••• 4242, expires 08/2030"));
    assert!(body.contains("<strong>1,500</strong> credits"));
    assert!(body.contains("¥4,900"), "zero-decimal currency");
    assert!(body.contains("https://invoice.stripe.com/i/in_yen") && body.contains("/in_yen/pdf"));
    assert!(
        body.contains(r#"id="manage-billing" href="/api/v1/operations/payment/customer-portal""#)
    );
    assert!(body.contains("Last synced"));
}

#[tokio::test]
async fn the_history_lists_the_newest_invoices_and_credit_entries_first() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let mut events = Vec::new();
    for (id, created) in [
        ("in_a", 1_700_000_100),
        ("in_b", 1_700_000_300),
        ("in_c", 1_700_000_200),
        ("in_d", 1_700_000_300),
    ] {
        let paid = invoice(id, "cus_A", "sub_1", "paid", created);
        events.push(event(&format!("evt_{id}"), "invoice.paid", created, paid));
    }
    // Entries count from their receipt: in the order delivered, and among
    // those of one second, the greater source id first.
    for (id, amount) in [("cs_1", 1_500), ("cs_2", 700), ("cs_3", 300)] {
        let bought = checkout(id, "org_acme", "cus_A", "payment", "paid", Some(amount));
        events.push(event(
            &format!("evt_{id}"),
            "checkout.session.completed",
            400,
            bought,
        ));
    }
    app.post_events(&events).await;

    let body = app.plans_html("org_acme").await;
    let at = |needle: &str| {
        body.find(needle)
            .unwrap_or_else(|| panic!("{needle} is not on the page"))
    };
    let invoices: Vec<usize> = ["in_d", "in_b", "in_c", "in_a"]
        .iter()
        .map(|id| at(&format!("https://invoice.stripe.com/i/{id}")))
        .collect();
    assert!(
        invoices.is_sorted(),
        "newest first, the greater id first among equals: {invoices:?}"
    );
    let entries: Vec<usize> = ["+300", "+700", "+1,500"].iter().map(|a| at(a)).collect();
    assert!(entries.is_sorted(), "newest entry first: {entries:?}");
}

/// The Plans tab's reads are cached in memory: each synced change must still
/// show at the very next load.
#[tokio::test]
async fn every_synced_change_shows_at_the_next_load() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_live", "cus_L").await;
    let steps: Vec<(Value, &str)> = vec![
        (
            event(
                "evt_l1",
                "customer.subscription.created",
                100,
                subscription("sub_l", "cus_L", "active"),
            ),
            ">Active</span>",
        ),
        (
            event(
                "evt_l2",
                "customer.subscription.updated",
                101,
                subscription("sub_l", "cus_L", "past_due"),
            ),
            ">Past due</span>",
        ),
        (
            event(
                "evt_l3",
                "product.updated",
                102,
                product("prod_pro", "Scale"),
            ),
            "<h3>Scale</h3>",
        ),
        (
            event(
                "evt_l4",
                "payment_method.attached",
                103,
                payment_method("pm_l", Some("cus_L"), "1881"),
            ),
            "•••• 1881",
        ),
        (
            event(
                "evt_l5",
                "invoice.paid",
                104,
                invoice("in_live", "cus_L", "sub_l", "paid", 1_700_000_000),
            ),
            "https://invoice.stripe.com/i/in_live",
        ),
        (
            event(
                "evt_l6",
                "checkout.session.completed",
                105,
                checkout("cs_l", "org_live", "cus_L", "payment", "paid", Some(700)),
            ),
            "<strong>700</strong> credits",
        ),
    ];
    for (event, shown) in steps {
        let before = app.plans_html("org_live").await;
        assert!(!before.contains(shown), "{shown} before its event");
        app.post_events(&[event]).await;
        let after = app.plans_html("org_live").await;
        assert!(after.contains(shown), "{shown} after its event");
    }
    app.post_events(&[event(
        "evt_l7",
        "payment_method.detached",
        106,
        payment_method("pm_l", None, "1881"),
    )])
    .await;
    assert!(!app.plans_html("org_live").await.contains("•••• 1881"));
}

/// Two instances on one database: a change one syncs shows at the other's
/// next load, told by PostgreSQL's NOTIFY; SQLite has no such signal, and
/// there the cache's time to live bounds it.
#[tokio::test]
async fn a_change_synced_by_another_instance_shows_promptly() {
    let postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    let ttl = if postgres { "60s" } else { "300ms" };
    let a = TestApp::builder().env("PLANS_CACHE_TTL", ttl).spawn().await;
    let b = TestApp::builder()
        .env("PLANS_CACHE_TTL", ttl)
        .env("DATABASE_URL", &a.database_url)
        .spawn()
        .await;
    a.org_with_customer("org_twin", "cus_T").await;
    let sub = |status| subscription("sub_t", "cus_T", status);
    a.post_events(&[event(
        "evt_t1",
        "customer.subscription.created",
        100,
        sub("active"),
    )])
    .await;
    assert!(a.plans_html("org_twin").await.contains(">Active</span>"));

    b.post_events(&[event(
        "evt_t2",
        "customer.subscription.updated",
        101,
        sub("past_due"),
    )])
    .await;
    let started = std::time::Instant::now();
    while !a.plans_html("org_twin").await.contains(">Past due</span>") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "instance a still shows the old state"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_customer_without_subscriptions_says_so() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let body = app.plans_html("org_acme").await;
    assert!(body.contains("No subscription yet."));
    assert!(body.contains("No invoices yet."));
}

#[tokio::test]
async fn without_a_customer_the_catalog_is_offered() {
    let app = TestApp::builder()
        .env("STRIPE_PRICE_IDS", "price_configured")
        .spawn()
        .await;
    let body = app.plans_html("org_new").await;
    assert!(
        body.contains(r#"name="price" value="price_configured""#),
        "configured prices when nothing is synced"
    );

    let mut price = object("price");
    price["id"] = "price_pro_monthly".into();
    price["product"] = "prod_pro".into();
    app.post_events(&[
        event("evt_p", "product.created", 1, product("prod_pro", "Pro")),
        event("evt_pr", "price.created", 2, price),
    ])
    .await;
    let body = app.plans_html("org_new").await;
    assert!(
        body.contains("<h3>Pro</h3>") && body.contains("$20.00 / month"),
        "{body}"
    );
    assert!(body.contains(r#"name="price" value="price_pro_monthly""#));
    assert!(body.contains(">Subscribe</button>"));
}

async fn stripe_checkout(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "cus_Created", "object": "customer"})),
        )
        .mount(&app.stripe)
        .await;
    Mock::given(method("POST")).and(path("/v1/checkout/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "cs_test_1", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_test_1"})))
        .mount(&app.stripe).await;
}

#[tokio::test]
async fn subscribing_creates_the_customer_once_and_redirects_to_checkout() {
    let app = TestApp::builder()
        .env("STRIPE_PRICE_IDS", "price_basic")
        .spawn()
        .await;
    stripe_checkout(&app).await;
    let session = app.form_session(&claims_v2("org_new")).await;

    let response = app
        .submit_form(
            "/organization/checkout/subscription",
            &session,
            &[("price", "price_basic")],
        )
        .await;

    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        response.headers()["location"],
        "https://checkout.stripe.com/c/pay/cs_test_1"
    );
    let customer = &app.stripe_requests("/v1/customers").await[0];
    assert!(form_fields(customer).contains(&("metadata[org_id]".into(), "org_new".into())));
    assert_eq!(
        customer.headers["idempotency-key"],
        "customer-for-org_new-0"
    );
    let checkout = form_fields(&app.stripe_requests("/v1/checkout/sessions").await[0]);
    for expected in [
        ("mode", "subscription"),
        ("customer", "cus_Created"),
        ("client_reference_id", "org_new"),
        ("line_items[0][price]", "price_basic"),
        ("line_items[0][quantity]", "1"),
        (
            "success_url",
            "https://app.lance.test/organization?checkout={CHECKOUT_SESSION_ID}#/plans",
        ),
        ("cancel_url", "https://app.lance.test/organization#/plans"),
        ("metadata[org_id]", "org_new"),
        ("subscription_data[metadata][org_id]", "org_new"),
    ] {
        assert!(
            checkout.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {checkout:?}"
        );
    }
    let (_, state) = app
        .get_json("/api/v1/operations/payment/subscription", "org_new")
        .await;
    assert_eq!(state["customer"], "cus_Created");
    app.count_reaches("SELECT COUNT(*) FROM billing_audit WHERE action = 'checkout_subscription' AND stripe_session_id = 'cs_test_1'", 1).await;
}

#[tokio::test]
async fn concurrent_clicks_share_one_customer() {
    let app = TestApp::builder()
        .env("STRIPE_PRICE_IDS", "price_basic")
        .spawn()
        .await;
    stripe_checkout(&app).await;
    let session = app.form_session(&claims_v2("org_new")).await;
    let clicks = (0..6).map(|_| {
        app.submit_form(
            "/organization/checkout/subscription",
            &session,
            &[("price", "price_basic")],
        )
    });
    let responses = futures_util::future::join_all(clicks).await;
    assert!(responses.iter().all(|r| r.status().as_u16() == 303));
    let keys: std::collections::HashSet<String> = app
        .stripe_requests("/v1/customers")
        .await
        .iter()
        .map(|r| r.headers["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "every creation carries the organization's key, so Stripe makes one customer"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM organizations WHERE stripe_customer_id = 'cus_Created'")
            .await,
        1
    );
}

#[tokio::test]
async fn buying_credits_starts_a_payment_checkout_for_the_credits() {
    let app = TestApp::builder()
        .env("STRIPE_CREDITS_PRICE_ID", "price_credits")
        .env("CREDITS_PER_UNIT", "250")
        .spawn()
        .await;
    stripe_checkout(&app).await;
    let session = app.form_session(&claims_v2("org_acme")).await;
    assert!(
        app.page("/organization", &claims_v2("org_acme"))
            .await
            .2
            .contains("Buy credits")
    );

    let response = app
        .submit_form(
            "/organization/checkout/credits",
            &session,
            &[("quantity", "4")],
        )
        .await;

    assert_eq!(response.status().as_u16(), 303);
    let checkout = form_fields(&app.stripe_requests("/v1/checkout/sessions").await[0]);
    for expected in [
        ("mode", "payment"),
        ("line_items[0][price]", "price_credits"),
        ("line_items[0][quantity]", "4"),
        ("metadata[credits]", "1000"),
    ] {
        assert!(
            checkout.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?}"
        );
    }
    let bad = app
        .submit_form(
            "/organization/checkout/credits",
            &session,
            &[("quantity", "0")],
        )
        .await;
    assert_eq!(bad.status().as_u16(), 400);
}

#[tokio::test]
async fn forged_forms_are_refused() {
    let app = TestApp::builder()
        .env("STRIPE_PRICE_IDS", "price_basic")
        .spawn()
        .await;
    stripe_checkout(&app).await;
    let session = app.form_session(&claims_v2("org_new")).await;
    let cases = [
        ("no token", Some(PUBLIC_URL), ""),
        ("wrong token", Some(PUBLIC_URL), "forged"),
        (
            "other origin",
            Some("https://evil.test"),
            session.csrf.as_str(),
        ),
        ("no origin", None, session.csrf.as_str()),
    ];
    for (name, origin, token) in cases {
        let response = app
            .post_form(
                "/organization/checkout/subscription",
                &session,
                origin,
                &[("csrf", token), ("price", "price_basic")],
            )
            .await;
        assert_eq!(response.status().as_u16(), 403, "{name}");
    }
    assert!(app.stripe_requests("/v1/customers").await.is_empty());
    let unknown_plan = app
        .submit_form(
            "/organization/checkout/subscription",
            &session,
            &[("price", "price_secret")],
        )
        .await;
    assert_eq!(unknown_plan.status().as_u16(), 400);
}

#[tokio::test]
async fn roles_outside_billing_manage_roles_can_view_but_not_manage() {
    let app = TestApp::builder()
        .env("BILLING_MANAGE_ROLES", "org:admin")
        .env("STRIPE_PRICE_IDS", "price_basic")
        .spawn()
        .await;
    app.paying_org().await;
    let (status, _, body) = app.page("/organization", &member("org_acme")).await;
    assert_eq!(status, 200);
    assert!(!body.contains("manage-billing") && body.contains("Ask an organization admin"));

    let response = app.get_portal(&sign(&member("org_acme"))).await;
    assert_eq!(response.status().as_u16(), 403);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"]["code"], "FORBIDDEN");
    assert_eq!(
        app.get_portal(&sign(&claims_v2("org_acme")))
            .await
            .status()
            .as_u16(),
        302,
        "admins may"
    );

    let session = app.form_session(&member("org_new")).await;
    let response = app
        .submit_form(
            "/organization/checkout/subscription",
            &session,
            &[("price", "price_basic")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("cannot manage billing")
    );
}

#[tokio::test]
async fn portal_deep_links_become_flow_data_for_the_organizations_own_subscription() {
    let app = TestApp::spawn().await;
    app.paying_org().await;
    app.post_events(&[
        event(
            "evt_1",
            "customer.subscription.created",
            100,
            subscription("sub_mine", "cus_NciAYcXfLnqBoz", "active"),
        ),
        event(
            "evt_2",
            "customer.subscription.created",
            100,
            subscription("sub_theirs", "cus_Other", "active"),
        ),
    ])
    .await;
    let token = sign(&claims_v2("org_acme"));
    let get = |query: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            app.client
                .get(format!("{}{query}", app.portal_url()))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        get("?flow=subscription_cancel&subscription=sub_mine").await,
        302
    );
    assert_eq!(get("?flow=payment_method_update").await, 302);
    assert_eq!(
        get("?flow=subscription_cancel&subscription=sub_theirs").await,
        400
    );
    assert_eq!(get("?flow=subscription_update").await, 400);
    assert_eq!(get("?flow=delete_everything").await, 400);

    let requests = app.portal_requests().await;
    let cancel = form_fields(&requests[0]);
    assert!(cancel.contains(&("flow_data[type]".into(), "subscription_cancel".into())));
    assert!(cancel.contains(&(
        "flow_data[subscription_cancel][subscription]".into(),
        "sub_mine".into()
    )));
    assert!(cancel.contains(&(
        "flow_data[after_completion][redirect][return_url]".into(),
        PLANS_URL.into()
    )));
    assert!(
        form_fields(&requests[1])
            .contains(&("flow_data[type]".into(), "payment_method_update".into()))
    );
    app.count_reaches(
        "SELECT COUNT(*) FROM billing_audit WHERE action = 'portal' AND org_id = 'org_acme'",
        2,
    )
    .await;
}

#[tokio::test]
async fn returning_from_checkout_shows_the_purchase_before_the_webhook() {
    let app = TestApp::spawn().await;
    let session = checkout(
        "cs_done",
        "org_new",
        "cus_New",
        "subscription",
        "paid",
        None,
    );
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_done"))
        .respond_with(ResponseTemplate::new(200).set_body_json(session))
        .mount(&app.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_New"))
        .respond_with(ResponseTemplate::new(200).set_body_json(customer(
            "cus_New",
            Some("org_new"),
            None,
        )))
        .mount(&app.stripe)
        .await;
    let list = |data: Vec<Value>| json!({"object": "list", "data": data, "has_more": false});
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(list(vec![subscription("sub_new", "cus_New", "active")])),
        )
        .mount(&app.stripe)
        .await;
    for empty in ["/v1/invoices", "/v1/customers/cus_New/payment_methods"] {
        Mock::given(method("GET"))
            .and(path(empty))
            .respond_with(ResponseTemplate::new(200).set_body_json(list(vec![])))
            .mount(&app.stripe)
            .await;
    }

    app.store
        .record_checkout_session("cs_done", "org_new", "cus_New")
        .await
        .unwrap();
    let (status, _, body) = app
        .page("/organization?checkout=cs_done", &claims_v2("org_new"))
        .await;

    assert_eq!(status, 200);
    assert!(body.contains("Thank you! Your purchase is complete."));
    assert!(body.contains(">Active</span>"), "{body}");

    let (_, _, slow) = app
        .page("/organization?checkout=cs_unknown", &claims_v2("org_other"))
        .await;
    assert!(slow.contains("still syncing"));
}

async fn subscribe(app: &TestApp, org: &str, price: &str) -> reqwest::Response {
    // A page that shows no form gives no CSRF token: take one where a form
    // is, as a forged or stale form would.
    let mut session = app.form_session(&claims_v2("org_blank")).await;
    session.token = sign(&claims_v2(org));
    app.submit_form(
        "/organization/checkout/subscription",
        &session,
        &[("price", price)],
    )
    .await
}

/// An organization that still has a plan changes it in the portal; it is
/// never sold a second subscription.
#[tokio::test]
async fn a_paying_organization_is_not_sold_a_second_subscription() {
    let app = TestApp::builder()
        .env("STRIPE_PRICE_IDS", "price_basic")
        .spawn()
        .await;
    stripe_checkout(&app).await;
    for (i, status) in ["active", "trialing", "past_due"].into_iter().enumerate() {
        let org = format!("org_paying{i}");
        let customer = format!("cus_Paying{i}");
        app.org_with_customer(&org, &customer).await;
        let sub = subscription(&format!("sub_paying{i}"), &customer, status);
        app.post_events(&[event(
            &format!("evt_paying{i}"),
            "customer.subscription.created",
            1,
            sub,
        )])
        .await;
        assert!(
            !app.plans_html(&org).await.contains(">Subscribe</button>"),
            "{status}"
        );
        let response = subscribe(&app, &org, "price_basic").await;
        assert_eq!(response.status().as_u16(), 409, "{status}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("already has a plan")
        );
    }
    assert!(
        app.stripe_requests("/v1/checkout/sessions")
            .await
            .is_empty()
    );
}

/// A churned organization (its customer kept, its subscription canceled)
/// sees the plans again and can come back.
#[tokio::test]
async fn a_churned_organization_sees_plans_and_can_subscribe_again() {
    let app = TestApp::builder()
        .env("STRIPE_PRICE_IDS", "price_basic")
        .spawn()
        .await;
    stripe_checkout(&app).await;
    app.org_with_customer("org_churned", "cus_Churned").await;
    let gone = subscription("sub_gone", "cus_Churned", "canceled");
    app.post_events(&[event("evt_gone", "customer.subscription.deleted", 1, gone)])
        .await;
    let body = app.plans_html("org_churned").await;
    assert!(body.contains("Choose one to come back"), "{body}");
    assert!(body.contains(r#"name="price" value="price_basic""#));
    let response = subscribe(&app, "org_churned", "price_basic").await;
    assert_eq!(response.status().as_u16(), 303);
}

/// Only active prices of the synced catalog are on offer.
#[tokio::test]
async fn an_archived_or_deleted_price_is_not_on_offer() {
    let app = TestApp::spawn().await;
    stripe_checkout(&app).await;
    let mut live = object("price");
    live["id"] = "price_live".into();
    live["product"] = "prod_pro".into();
    let mut archived = live.clone();
    archived["id"] = "price_archived".into();
    archived["active"] = false.into();
    let deleted = live.clone();
    let mut deleted_deleted = deleted.clone();
    deleted_deleted["id"] = "price_deleted".into();
    app.post_events(&[
        event("evt_prod", "product.created", 1, product("prod_pro", "Pro")),
        event("evt_live", "price.created", 2, live),
        event("evt_arch", "price.updated", 2, archived),
        event("evt_del", "price.deleted", 2, deleted_deleted),
    ])
    .await;
    for price in ["price_archived", "price_deleted", "price_nope"] {
        let response = subscribe(&app, "org_new", price).await;
        assert_eq!(response.status().as_u16(), 400, "{price}");
    }
    assert_eq!(
        subscribe(&app, "org_new", "price_live")
            .await
            .status()
            .as_u16(),
        303
    );
}

/// A return link is a Checkout session id or nothing: another path, a line
/// break, a session not created for the organization never reach Stripe.
#[tokio::test]
async fn a_return_link_that_is_not_our_session_never_reaches_stripe() {
    let app = TestApp::spawn().await;
    for link in [
        "cs_%2F..%2F..%2Fv1%2Fcustomers%2Fcus_victim",
        "cs_/../../v1/customers/cus_victim",
        "cs_abc%0D%0Aforged%20log%20line",
        "cs_not_created_here",
    ] {
        let (status, _, _) = app
            .page(
                &format!("/organization?checkout={link}"),
                &claims_v2("org_new"),
            )
            .await;
        assert_eq!(status, 200, "{link}");
    }
    let asked = app.stripe.received_requests().await.unwrap();
    assert!(asked.is_empty(), "{asked:?}");
}

/// A session is fetched until a refresh applies it, then never again, and
/// a reload loop while Stripe fails spends at most a small budget.
#[tokio::test]
async fn reloading_a_return_link_costs_one_stripe_call_or_a_small_budget() {
    let app = TestApp::spawn().await;
    let list = |data: Vec<Value>| json!({"object": "list", "data": data, "has_more": false});
    let session = checkout(
        "cs_once",
        "org_once",
        "cus_Once",
        "subscription",
        "paid",
        None,
    );
    let mounts = [
        ("/v1/checkout/sessions/cs_once", session),
        (
            "/v1/customers/cus_Once",
            customer("cus_Once", Some("org_once"), None),
        ),
        ("/v1/subscriptions", list(vec![])),
        ("/v1/invoices", list(vec![])),
        ("/v1/customers/cus_Once/payment_methods", list(vec![])),
        ("/v1/entitlements/active_entitlements", list(vec![])),
    ];
    for (at, body) in mounts {
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&app.stripe)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/v1/checkout/sessions/cs_failing"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.stripe)
        .await;
    for (session, org, customer) in [
        ("cs_once", "org_once", "cus_Once"),
        ("cs_failing", "org_fail", "cus_Fail"),
    ] {
        app.store
            .record_checkout_session(session, org, customer)
            .await
            .unwrap();
    }
    for _ in 0..30 {
        let (status, _, body) = app
            .page("/organization?checkout=cs_once", &claims_v2("org_once"))
            .await;
        assert_eq!(status, 200);
        assert!(body.contains("Thank you!"));
    }
    assert_eq!(
        app.stripe_requests("/v1/checkout/sessions/cs_once")
            .await
            .len(),
        1
    );

    for _ in 0..30 {
        app.page("/organization?checkout=cs_failing", &claims_v2("org_fail"))
            .await;
    }
    // Each refresh may retry (STRIPE_MAX_RETRIES=2): at most five refreshes.
    let spent = app
        .stripe_requests("/v1/checkout/sessions/cs_failing")
        .await
        .len();
    assert!((1..=15).contains(&spent), "{spent} calls");
}

/// Stripe replays a request's answer for 24 hours by its idempotency key: an
/// organization whose customer was deleted gets a new customer under a new
/// key, never the deleted one back, and a deleted customer is never linked.
#[tokio::test]
async fn a_deleted_customer_is_neither_replayed_nor_linked_again() {
    let app = TestApp::builder()
        .env("STRIPE_PRICE_IDS", "price_basic")
        .spawn()
        .await;
    stripe_checkout(&app).await;
    app.org_with_customer("org_again", "cus_Gone").await;
    let mut gone = customer("cus_Gone", Some("org_again"), None);
    gone["deleted"] = true.into();
    app.post_events(&[event("evt_gone", "customer.deleted", 1, gone)])
        .await;

    assert_eq!(
        subscribe(&app, "org_again", "price_basic")
            .await
            .status()
            .as_u16(),
        303
    );
    let created = &app.stripe_requests("/v1/customers").await[0];
    assert_eq!(
        created.headers["idempotency-key"],
        "customer-for-org_again-1"
    );

    let relinked = app
        .store
        .link_customer(
            &lance_billing::domain::OrgId::parse("org_other").unwrap(),
            &lance_billing::domain::StripeCustomerId::parse("cus_Gone").unwrap(),
            false,
        )
        .await;
    assert!(
        matches!(relinked, Err(lance_billing::store::LinkError::Deleted(_))),
        "{relinked:?}"
    );
}
