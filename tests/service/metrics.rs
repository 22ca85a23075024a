//! `GET /metrics`: Prometheus' text, behind `METRICS_TOKEN` or on
//! `METRICS_ADDR` alone; requests counted by route template, never by id.

use crate::helpers::*;
use crate::stripe_fixtures::*;

const TOKEN: &str = "metrics_0123456789abcdef";

async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, String) {
    let mut request = app.client.get(format!("{}/metrics", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the service answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn metrics_need_the_token_and_carry_templates_not_ids() {
    let app = TestApp::builder().env("METRICS_TOKEN", TOKEN).spawn().await;
    app.stripe_creates_portal_sessions().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let portal = app.get_portal(&sign(&claims_v2("org_acme"))).await;
    assert_eq!(portal.status().as_u16(), 302);
    let paid = checkout("cs_1", "org_acme", "cus_A", "payment", "paid", Some(5));
    let delivered = event("evt_m1", "checkout.session.completed", 100, paid);
    assert_eq!(app.post_event(&delivered).await.status(), 200);
    let internal = "/api/v1/internal/organizations/org_acme/entitlements";
    assert_eq!(app.get_internal(internal, None).await.0, 404);

    assert_eq!(scrape(&app, None).await.0, 401);
    assert_eq!(scrape(&app, Some("metrics_wrong_token_0000")).await.0, 401);
    let (status, body) = scrape(&app, Some(TOKEN)).await;
    assert_eq!(status, 200);
    for expected in [
        "lance_billing_http_requests_total{method=\"GET\",route=\"/api/v1/operations/payment/customer-portal\",status=\"302\"}",
        "lance_billing_http_request_duration_seconds_bucket{route=\"/api/v1/webhooks/stripe\"",
        "lance_billing_http_requests_total{method=\"GET\",route=\"/api/v1/internal/organizations/{org_id}/entitlements\",status=\"404\"}",
        "lance_billing_webhook_events_total{outcome=\"applied\",source=\"stripe\",type=\"checkout.session.completed\"}",
        "lance_billing_stripe_requests_total{endpoint=\"/v1/billing_portal/sessions\",method=\"POST\",status=\"200\"}",
        "lance_billing_ingest_batch_events_bucket",
        "lance_billing_state{what=\"newest_event_age_seconds\"}",
        "lance_billing_state{what=\"refetch_queue\"} 0",
        "lance_billing_state{what=\"synced_plans_to_build\"}",
        "lance_billing_state{what=\"audit_queue\"}",
        "lance_billing_state{what=\"db_connections_open\"}",
    ] {
        assert!(body.contains(expected), "{expected} in\n{body}");
    }
    assert!(
        !body.contains("org_acme") && !body.contains("cus_A"),
        "no ids"
    );
}

#[tokio::test]
async fn batch_writers_report_their_batches_and_queues() {
    let app = TestApp::builder()
        .env("METRICS_TOKEN", TOKEN)
        .env("INTERNAL_API_TOKENS", crate::credits::TOKEN)
        .spawn()
        .await;
    crate::credits::bought(&app, "org_acme", "cus_A", "cs_m", 50).await;
    let take = serde_json::json!({"amount": 5, "reason": "export"});
    let (status, _) = crate::credits::debit(&app, "org_acme", Some("k1"), &take).await;
    assert_eq!(status, 200);

    let (status, body) = scrape(&app, Some(TOKEN)).await;
    assert_eq!(status, 200);
    for expected in [
        "lance_billing_batch_items_bucket{queue=\"debits\",le=\"1\"}",
        "lance_billing_batch_seconds_bucket{queue=\"debits\",le=\"0.0005\"}",
        "lance_billing_state{what=\"debit_queue\"} 0",
        "lance_billing_state{what=\"usage_queue\"} 0",
    ] {
        assert!(body.contains(expected), "{expected} in\n{body}");
    }
}

#[tokio::test]
async fn without_a_token_the_main_address_has_no_metrics() {
    let app = TestApp::spawn().await;
    assert_eq!(scrape(&app, None).await.0, 404);
}

#[tokio::test]
async fn metrics_addr_serves_them_alone_without_a_token() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let app = TestApp::builder()
        .env("METRICS_ADDR", &format!("127.0.0.1:{port}"))
        .spawn()
        .await;
    let response = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("the metrics listener answers");
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.unwrap_or_default();
    assert!(body.contains("lance_billing_state"), "{body}");
    let other = app
        .client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(other.status().as_u16(), 404, "only the metrics there");
}
