//! Versions whose order Stripe's data cannot tell (same second, same state
//! rank, ids that are not time-ordered; a fetch and an event of one second)
//! never decide silently: the server fetches the object again and ends as
//! Stripe has it.

use std::time::{Duration, Instant};

use lance_billing::billing::reconcile::sync_customer_by_id;
use lance_billing::domain::unix_now;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stripe_fixtures::*;

fn seats(quantity: i64) -> Value {
    let mut sub = subscription("sub_tie", "cus_tie", "active");
    sub["items"]["data"][0]["quantity"] = quantity.into();
    sub
}

fn list(data: Vec<Value>) -> Value {
    json!({"object": "list", "data": data, "has_more": false, "url": "/v1/x"})
}

async fn stripe_answers(app: &TestApp, at: &str, body: Value, times: Option<u64>) {
    let mock = Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(body));
    match times {
        Some(n) => mock.up_to_n_times(n).mount(&app.stripe).await,
        None => mock.mount(&app.stripe).await,
    }
}

/// Waits (up to 10 s) for the synced quantity to become `expected`.
async fn quantity_reaches(app: &TestApp, expected: i64) {
    let sql = "SELECT COALESCE(MAX(quantity), -1) FROM subscriptions WHERE id = 'sub_tie'";
    let started = Instant::now();
    while app.count(sql).await != expected && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.count(sql).await, expected);
}

#[tokio::test]
async fn a_newer_edit_of_the_same_second_with_a_smaller_id_ends_as_stripe_has_it() {
    let app = TestApp::spawn().await;
    stripe_answers(&app, "/v1/subscriptions/sub_tie", seats(5), None).await;
    let second = unix_now() - 30;
    let updated = "customer.subscription.updated";
    let older = event("evt_1Zz", updated, second, seats(2));
    let newer = event("evt_1Aa", updated, second, seats(5));
    assert_eq!(app.post_event(&older).await.status(), 200);
    assert_eq!(app.post_event(&newer).await.status(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM refetch_queue").await, 1);

    quantity_reaches(&app, 5).await;
    app.count_reaches("SELECT COUNT(*) FROM refetch_queue", 0)
        .await;
    assert_eq!(
        app.stripe_requests("/v1/subscriptions/sub_tie").await.len(),
        1
    );
}

#[tokio::test]
async fn an_edit_created_in_the_second_of_a_fetch_is_not_hidden_by_it() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_tie", "cus_tie").await;
    stripe_answers(
        &app,
        "/v1/customers/cus_tie",
        customer("cus_tie", Some("org_tie"), None),
        None,
    )
    .await;
    stripe_answers(&app, "/v1/subscriptions", list(vec![seats(2)]), None).await;
    for empty in [
        "/v1/invoices",
        "/v1/customers/cus_tie/payment_methods",
        "/v1/entitlements/active_entitlements",
    ] {
        stripe_answers(&app, empty, list(vec![]), None).await;
    }
    let stripe = app.stripe_client(0);
    sync_customer_by_id(&app.store, &stripe, "cus_tie")
        .await
        .unwrap();
    quantity_reaches(&app, 2).await;
    let fetched_in = app
        .count("SELECT event_created FROM subscriptions WHERE id = 'sub_tie'")
        .await;

    // The edit's event was created in the second the fetch read the state.
    stripe_answers(&app, "/v1/subscriptions/sub_tie", seats(5), None).await;
    let edit = event(
        "evt_edit",
        "customer.subscription.updated",
        fetched_in,
        seats(5),
    );
    assert_eq!(app.post_event(&edit).await.status(), 200);

    quantity_reaches(&app, 5).await;
}
