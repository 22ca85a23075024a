//! Usage for Stripe's meters: stored at once, sent once under its
//! identifier, retried while Stripe is busy, kept with Stripe's reason when
//! refused for good, and never sent faster than the configured rate.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use lance_billing::domain::{OrgId, unix_now};
use lance_billing::store::{NewUsage, Recorded};

use crate::helpers::*;

const TOKEN: &str = "svc_0123456789abcdef0123456789abcdef";
const METER_EVENTS: &str = "/v1/billing/meter_events";

async fn usage_app(extra: &[(&str, &str)]) -> TestApp {
    let mut builder = TestApp::builder()
        .env("INTERNAL_API_TOKENS", TOKEN)
        .env("STRIPE_METERS", "api_calls,old_meter")
        .env("STRIPE_MAX_RETRIES", "0");
    for (key, value) in extra {
        builder = builder.env(key, value);
    }
    let app = builder.spawn().await;
    app.org_with_customer("org_acme", "cus_A").await;
    app
}

async fn stripe_accepts_meter_events(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path(METER_EVENTS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "billing.meter_event", "identifier": "x", "event_name": "api_calls"
        })))
        .mount(&app.stripe)
        .await;
}

async fn report(app: &TestApp, org: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!(
            "{}/api/v1/internal/organizations/{org}/usage",
            app.address
        ))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn usage_is_stored_at_once_and_sent_to_its_meter_once() {
    let app = usage_app(&[]).await;
    stripe_accepts_meter_events(&app).await;
    let usage = json!({"meter": "api_calls", "value": 3, "identifier": "u1"});
    let (status, body) = report(&app, "org_acme", &usage).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["identifier"], "u1");
    let (status, body) = report(&app, "org_acme", &usage).await;
    assert_eq!(
        (status, &body["status"]),
        (202, &json!("duplicate")),
        "{body}"
    );
    let other = json!({"meter": "api_calls", "value": 4, "identifier": "u1"});
    let (status, body) = report(&app, "org_acme", &other).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "CONFLICT");

    app.count_reaches(
        "SELECT COUNT(*) FROM usage_records WHERE status = 'sent'",
        1,
    )
    .await;
    let sent = app.stripe_requests(METER_EVENTS).await;
    assert_eq!(sent.len(), 1);
    let fields = form_fields(&sent[0]);
    for expected in [
        ("event_name", "api_calls"),
        ("identifier", "u1"),
        ("payload[stripe_customer_id]", "cus_A"),
        ("payload[value]", "3"),
    ] {
        assert!(
            fields.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {fields:?}"
        );
    }
    assert!(fields.iter().any(|(k, _)| k == "timestamp"));
    assert_eq!(sent[0].headers["idempotency-key"], "u1");

    let (status, period) = app
        .get_json("/api/v1/operations/payment/usage", "org_acme")
        .await;
    assert_eq!(status, 200, "{period}");
    assert_eq!(
        period["meters"],
        json!([{"meter": "api_calls", "sent": 3, "pending": 0, "failed": 0}])
    );
    assert!(period["period_start"].as_i64() < period["period_end"].as_i64());
    let (_, _, page) = app.page("/organization", &claims_v2("org_acme")).await;
    assert!(
        page.contains("Usage this period") && page.contains("api_calls"),
        "{page}"
    );
}

/// The meter's row on the Plans tab: what was sent, and what waits.
fn usage_row(page: &str, meter: &str) -> Option<(String, String)> {
    let row = page
        .split("<tr>")
        .find(|r| r.contains(&format!("<code>{meter}</code>")))?;
    let numbers: Vec<String> = row
        .split("<td class=\"num\">")
        .skip(1)
        .filter_map(|cell| cell.split("</td>").next().map(str::to_owned))
        .collect();
    Some((numbers.first()?.clone(), numbers.get(1)?.clone()))
}

#[tokio::test]
async fn the_plans_tab_shows_usage_when_recorded_and_when_sent_even_while_cached() {
    let app = usage_app(&[("PLANS_CACHE_TTL", "3600")]).await;
    let claims = claims_v2("org_acme");
    let (_, _, page) = app.page("/organization", &claims).await;
    assert_eq!(usage_row(&page, "api_calls"), None);

    stripe_accepts_meter_events(&app).await;
    let usage = json!({"meter": "api_calls", "value": 3, "identifier": "u1"});
    assert_eq!(report(&app, "org_acme", &usage).await.0, 202);
    let (_, _, page) = app.page("/organization", &claims).await;
    let (sent, waiting) = usage_row(&page, "api_calls").expect("a row for the meter");
    assert_eq!(
        (sent.parse::<i64>().unwrap() + waiting.parse::<i64>().unwrap()),
        3,
        "recorded: {sent} sent, {waiting} waiting"
    );

    app.count_reaches(
        "SELECT COUNT(*) FROM usage_records WHERE status = 'sent'",
        1,
    )
    .await;
    let (_, _, page) = app.page("/organization", &claims).await;
    assert_eq!(
        usage_row(&page, "api_calls"),
        Some(("3".to_owned(), "0".to_owned()))
    );
}

#[tokio::test]
async fn bad_reports_are_refused_with_a_reason() {
    let app = usage_app(&[]).await;
    let no_customer = OrgId::parse("org_nocustomer").unwrap();
    app.store
        .ensure_organization(&no_customer, None)
        .await
        .unwrap();
    let cases = [
        ("org_acme", json!({"meter": "tokens", "value": 1}), 400),
        ("org_acme", json!({"meter": "api_calls", "value": 0}), 400),
        (
            "org_acme",
            json!({"meter": "api_calls", "value": 1, "timestamp": 1_000}),
            400,
        ),
        ("org_acme", json!({"meter": "api_calls"}), 400),
        ("org_nobody", json!({"meter": "api_calls", "value": 1}), 404),
        (
            "org_nocustomer",
            json!({"meter": "api_calls", "value": 1}),
            404,
        ),
    ];
    for (org, body, status) in cases {
        let (got, answer) = report(&app, org, &body).await;
        assert_eq!(got, status, "{org} {body}: {answer}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_records").await, 0);
}

#[tokio::test]
async fn a_busy_stripe_is_asked_again_and_a_refusal_is_kept_with_its_reason() {
    let app = usage_app(&[("ADMIN_USER_IDS", "user_2abc")]).await;
    Mock::given(method("POST"))
        .and(path(METER_EVENTS))
        .and(body_string_contains("old_meter"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "type": "invalid_request_error",
            "message": "No active meter was found matching event_name old_meter."
        }})))
        .mount(&app.stripe)
        .await;
    Mock::given(method("POST"))
        .and(path(METER_EVENTS))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {
            "type": "rate_limit_error", "message": "Too many requests"
        }})))
        .up_to_n_times(1)
        .mount(&app.stripe)
        .await;
    stripe_accepts_meter_events(&app).await;

    let busy = json!({"meter": "api_calls", "value": 2, "identifier": "busy"});
    assert_eq!(report(&app, "org_acme", &busy).await.0, 202);
    let refused = json!({"meter": "old_meter", "value": 5, "identifier": "gone"});
    assert_eq!(report(&app, "org_acme", &refused).await.0, 202);

    app.count_reaches(
        "SELECT COUNT(*) FROM usage_records WHERE status = 'failed' \
         AND identifier = 'gone' AND last_error LIKE 'No active meter%'",
        1,
    )
    .await;
    app.count_reaches(
        "SELECT COUNT(*) FROM usage_records WHERE status = 'sent' AND identifier = 'busy' \
         AND attempts = 2",
        1,
    )
    .await;
    let (_, _, page) = app
        .page("/admin/orgs/org_acme", &claims_v2("org_acme"))
        .await;
    assert!(page.contains("No active meter was found"), "{page}");
    let (_, period) = app
        .get_json("/api/v1/operations/payment/usage", "org_acme")
        .await;
    assert_eq!(period["meters"][1]["failed"], 5, "{period}");

    // After a fix, an operator sends the refused records again.
    let session = app
        .form_session_at("/admin/orgs/org_acme", &claims_v2("org_acme"))
        .await;
    let again = app
        .submit_form("/admin/orgs/org_acme/usage/retry", &session, &[])
        .await;
    assert_eq!(again.status().as_u16(), 303);
    let asked_about_gone = |requests: Vec<wiremock::Request>| {
        requests
            .iter()
            .filter(|r| form_fields(r).contains(&("identifier".into(), "gone".into())))
            .count()
    };
    let started = Instant::now();
    while asked_about_gone(app.stripe_requests(METER_EVENTS).await) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not sent again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Twelve records at five a second: the first goes at once, the others one
/// every 200 ms at the soonest, so they take 2.2 s or more, never less.
#[tokio::test]
async fn the_outbox_never_sends_faster_than_its_rate() {
    let app = usage_app(&[("STRIPE_METER_EVENTS_PER_SECOND", "5")]).await;
    stripe_accepts_meter_events(&app).await;
    for i in 0..12 {
        let usage = json!({"meter": "api_calls", "value": 1, "identifier": format!("r{i}")});
        assert_eq!(report(&app, "org_acme", &usage).await.0, 202);
    }
    let started = Instant::now();
    let mut first_sent = None;
    loop {
        let sent = app
            .count("SELECT COUNT(*) FROM usage_records WHERE status = 'sent'")
            .await;
        if sent >= 1 && first_sent.is_none() {
            first_sent = Some(Instant::now());
        }
        if sent == 12 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{sent} sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = first_sent.unwrap().elapsed();
    assert!(took >= Duration::from_millis(2_000), "12 sent in {took:?}");
    assert_eq!(app.stripe_requests(METER_EVENTS).await.len(), 12);
}

#[tokio::test]
async fn one_identifier_reported_at_once_is_stored_once() {
    let app = usage_app(&[]).await;
    stripe_accepts_meter_events(&app).await;
    let bodies = [
        json!({"meter": "api_calls", "value": 1, "identifier": "same", "timestamp": unix_now()}),
        json!({"meter": "api_calls", "value": 2, "identifier": "same", "timestamp": unix_now()}),
    ];
    let answers =
        futures_util::future::join_all((0..10).map(|i| report(&app, "org_acme", &bodies[i % 2])))
            .await;
    let stored = answers
        .iter()
        .filter(|a| a.1["status"] == "pending")
        .count();
    assert_eq!(stored, 1, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.0 == 202 || a.0 == 409),
        "{answers:?}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_records").await, 1);
}

#[tokio::test]
async fn a_retry_without_a_timestamp_in_a_later_second_is_a_duplicate() {
    let app = usage_app(&[]).await;
    let usage = json!({"meter": "api_calls", "value": 3, "identifier": "retry-1"});
    let (status, first) = report(&app, "org_acme", &usage).await;
    assert_eq!(
        (status, &first["status"]),
        (202, &json!("pending")),
        "{first}"
    );
    let next_second = (first["timestamp"].as_i64().unwrap() + 1) as u64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(Duration::from_secs(next_second).saturating_sub(now)).await;

    let (status, retry) = report(&app, "org_acme", &usage).await;
    assert_eq!(
        (status, &retry["status"]),
        (202, &json!("duplicate")),
        "{retry}"
    );
    assert_eq!(retry["timestamp"], first["timestamp"], "the stored time");
    let stated = json!({"meter": "api_calls", "value": 3, "identifier": "retry-1",
        "timestamp": first["timestamp"].as_i64().unwrap() - 60});
    assert_eq!(report(&app, "org_acme", &stated).await.0, 409);
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_records").await, 1);
}

#[tokio::test]
async fn a_batch_larger_than_one_statement_is_stored_whole_once() {
    let app = usage_app(&[]).await;
    let now = unix_now();
    let usage = |i: usize, value: i64| NewUsage {
        id: format!("u_{i:05}"),
        identifier: format!("id_{i:05}"),
        org_id: "org_acme".to_owned(),
        customer_id: "cus_A".to_owned(),
        meter: "api_calls".to_owned(),
        value,
        occurred_at: now,
        time_stated: true,
        received_at: now,
    };
    // More rows than one SQLite statement's parameters can carry.
    let batch: Vec<NewUsage> = (0..3_500).map(|i| usage(i, 1)).collect();
    let recorded = app.store.record_usage(&batch).await.unwrap();
    assert!(recorded.iter().all(|r| *r == Recorded::New));
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_records").await, 3_500);

    let again = vec![usage(7, 1), usage(8, 2), usage(9_000, 1)];
    let recorded = app.store.record_usage(&again).await.unwrap();
    assert_eq!(
        recorded,
        vec![
            Recorded::Duplicate { occurred_at: now },
            Recorded::Conflict,
            Recorded::New
        ]
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM usage_records").await, 3_501);
}
