//! The log of Stripe events: whose each is (found by index, never by
//! searching payloads), what the catch-up keeps of other integrations'
//! events, and how long payloads are kept.

use std::time::Duration;

use lance_billing::billing::catchup::catch_up;
use lance_billing::billing::retention::prune;
use lance_billing::domain::unix_now;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stripe_fixtures::*;

#[tokio::test]
async fn a_customers_events_are_its_own_not_those_a_wildcard_would_match() {
    let app = TestApp::builder()
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await;
    app.org_with_customer("org_under", "cus_A_1").await;
    let own = event(
        "evt_own",
        "customer.updated",
        100,
        customer("cus_A_1", None, None),
    );
    let other = event(
        "evt_other",
        "customer.updated",
        100,
        customer("cus_AX1", None, None),
    );
    let mut mention = invoice("in_m", "cus_AX1", "sub_m", "paid", 100);
    mention["description"] = "for \"cus_A_1\"".into();
    let mentioned = event("evt_mention", "invoice.paid", 101, mention);
    for e in [&own, &other, &mentioned] {
        assert_eq!(app.post_event(e).await.status(), 200);
    }
    let (status, _, html) = app
        .page("/admin/orgs/org_under", &claims_v2("org_ops"))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("evt_own"), "{html}");
    assert!(!html.contains("evt_other") && !html.contains("evt_mention"));
}

#[tokio::test]
async fn the_catch_up_keeps_ids_but_not_payloads_of_types_it_does_not_handle() {
    let app = TestApp::spawn().await;
    let now = unix_now();
    let listed = json!({"object": "list", "has_more": false, "url": "/v1/events", "data": [
        event("evt_charge", "charge.succeeded", now - 60,
              json!({"id": "ch_1", "object": "charge", "customer": "cus_X",
                     "billing_details": {"email": "someone@example.com"}})),
        event("evt_cus", "customer.created", now - 90, customer("cus_X", None, None)),
    ]});
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(listed))
        .mount(&app.stripe)
        .await;
    catch_up(&app.store, &app.stripe_client(0), None)
        .await
        .unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_charge' AND payload = ''")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_cus' AND payload <> ''")
            .await,
        1
    );
}

#[tokio::test]
async fn payloads_past_their_retention_are_emptied_but_ids_and_failures_stay() {
    let app = TestApp::spawn().await;
    let applied = event(
        "evt_old",
        "customer.created",
        100,
        customer("cus_R", None, None),
    );
    assert_eq!(app.post_event(&applied).await.status(), 200);
    let broken = event("evt_broken", "invoice.paid", 100, json!({"id": "in_x"}));
    assert_eq!(app.post_event(&broken).await.status(), 200);

    let kept = Duration::from_secs(90 * 86_400);
    assert_eq!(
        prune(&app.store, kept, unix_now()).await.unwrap(),
        0,
        "too young"
    );
    let later = unix_now() + 91 * 86_400;
    assert_eq!(prune(&app.store, kept, later).await.unwrap(), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stripe_events WHERE payload = ''")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_broken' AND payload <> ''")
            .await,
        1,
        "a failed event keeps what replay needs"
    );
    // The id still makes a late redelivery a duplicate.
    let again = app.post_event(&applied).await;
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["status"], "duplicate");
}
