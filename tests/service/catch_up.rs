//! Missed webhooks caught up through Stripe's Events API: by the command,
//! from a stored cursor, and by the server's own schedule on one instance.

use std::time::{Duration, Instant};

use lance_billing::billing::catchup::{OVERLAP_SECS, catch_up};
use lance_billing::domain::unix_now;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stripe_fixtures::*;

fn page(events: Vec<Value>, has_more: bool) -> Value {
    json!({"object": "list", "data": events, "has_more": has_more, "url": "/v1/events"})
}

/// Three recent events, newest first as Stripe lists them, over two pages.
/// The oldest was also delivered as a webhook.
fn recent_events(now: i64) -> (Vec<Value>, Vec<Value>) {
    let first = vec![
        event(
            "evt_c3",
            "customer.subscription.updated",
            now - 60,
            subscription("sub_c", "cus_C", "past_due"),
        ),
        event(
            "evt_c2",
            "customer.subscription.created",
            now - 120,
            subscription("sub_c", "cus_C", "active"),
        ),
    ];
    let second = vec![event(
        "evt_c1",
        "customer.created",
        now - 180,
        customer("cus_C", Some("org_caught"), None),
    )];
    (first, second)
}

async fn stripe_lists_events(app: &TestApp, now: i64) {
    let (first, second) = recent_events(now);
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param("limit", "100"))
        .and(query_param_is_missing("starting_after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(first, true)))
        .mount(&app.stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(query_param("starting_after", "evt_c2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(second, false)))
        .mount(&app.stripe)
        .await;
}

async fn subscription_status(app: &TestApp, org: &str) -> Value {
    let (_, state) = app
        .get_json("/api/v1/operations/payment/subscription", org)
        .await;
    state["subscriptions"][0]["status"].clone()
}

fn created_gt(request: &wiremock::Request) -> i64 {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == "created[gt]")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn catch_up_applies_what_no_webhook_delivered_once_and_resumes_from_its_cursor() {
    let app = TestApp::spawn().await;
    let now = unix_now();
    stripe_lists_events(&app, now).await;
    // The customer event did arrive as a webhook.
    let (_, second) = recent_events(now);
    assert_eq!(app.post_event(&second[0]).await.status(), 200);

    let report = catch_up(&app.store, &app.stripe_client(0), None)
        .await
        .unwrap();

    assert_eq!(
        (
            report.seen,
            report.applied,
            report.already_had,
            report.failed
        ),
        (3, 2, 1, 0),
        "{report}"
    );
    assert_eq!(subscription_status(&app, "org_caught").await, "past_due");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stripe_events").await,
        3,
        "each event recorded once"
    );
    let requests = app.stripe_requests("/v1/events").await;
    assert_eq!(requests.len(), 2, "two pages");
    let first_since = created_gt(&requests[0]);
    assert!(
        (now - 72 * 3600 - first_since).abs() <= 2,
        "a first run looks back 72 h"
    );

    // Again: from the cursor (the newest event seen) minus the overlap, and
    // nothing is applied twice.
    let again = catch_up(&app.store, &app.stripe_client(0), None)
        .await
        .unwrap();
    assert_eq!((again.applied, again.already_had), (0, 3), "{again}");
    let requests = app.stripe_requests("/v1/events").await;
    assert_eq!(created_gt(&requests[2]), now - 60 - OVERLAP_SECS);
    assert_eq!(app.count("SELECT COUNT(*) FROM stripe_events").await, 3);
}

#[tokio::test]
async fn a_failed_catch_up_keeps_its_cursor_and_says_why() {
    let app = TestApp::spawn().await;
    let now = unix_now();
    stripe_lists_events(&app, now).await;
    catch_up(&app.store, &app.stripe_client(0), None)
        .await
        .unwrap();
    let cursor = app.count("SELECT cursor_created FROM events_catchup").await;
    assert_eq!(cursor, now - 60);

    app.stripe.reset().await;
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream trouble"))
        .mount(&app.stripe)
        .await;
    let err = catch_up(&app.store, &app.stripe_client(0), None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("500"), "{err:#}");
    assert_eq!(
        app.count("SELECT cursor_created FROM events_catchup").await,
        cursor
    );
    let state = app.store.catch_up_state().await.unwrap().unwrap();
    assert!(state.last_error.unwrap().contains("500"));
}

#[tokio::test]
async fn the_server_catches_up_on_its_own_schedule() {
    let app = TestApp::builder()
        .env("STRIPE_CATCHUP_INTERVAL", "1s")
        .env("ADMIN_USER_IDS", "user_operator")
        .spawn()
        .await;
    stripe_lists_events(&app, unix_now()).await;
    let started = Instant::now();
    while subscription_status(&app, "org_caught").await != "past_due" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the scheduled catch-up did not apply the missed events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The admin page tells when it last ran. A run is recorded once its
    // events are applied, so the page may lag the rows by a moment.
    loop {
        let (_, _, html) = app.page("/admin/webhooks", &operator_claims()).await;
        if html.contains("saw 3, applied") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the admin page does not show the run: {html}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// On PostgreSQL (several instances share it) one instance pages Stripe per
/// interval; SQLite serves a single instance.
#[tokio::test]
async fn two_instances_catch_up_once_not_twice() {
    let postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    if !postgres {
        return;
    }
    let a = TestApp::builder()
        .env("STRIPE_CATCHUP_INTERVAL", "3s")
        .spawn()
        .await;
    let a_started = Instant::now();
    let stripe = a.stripe.uri();
    let _b = TestApp::builder()
        .env("STRIPE_CATCHUP_INTERVAL", "3s")
        .env("DATABASE_URL", &a.database_url)
        .env("STRIPE_API_BASE", &stripe)
        .spawn()
        .await;
    stripe_lists_events(&a, unix_now()).await;
    // Both first runs (3 s after each start) are past; a's second (at 6 s) is not.
    tokio::time::sleep(Duration::from_millis(5_500).saturating_sub(a_started.elapsed())).await;
    let first_pages = a
        .stripe_requests("/v1/events")
        .await
        .into_iter()
        .filter(|r| !r.url.query().unwrap_or_default().contains("starting_after"))
        .count();
    assert_eq!(first_pages, 1, "one instance caught up, the other skipped");
    assert_eq!(subscription_status(&a, "org_caught").await, "past_due");
}

fn operator_claims() -> Value {
    let mut claims = claims_v2("org_ops");
    claims["sub"] = "user_operator".into();
    claims
}
