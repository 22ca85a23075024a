//! GET /api/v1/operations/payment/customer-portal, as documented in
//! shared/spec/customer-portal.txt.

use std::time::Duration;

use lance_billing::domain::OrgId;
use lance_billing::store::AuditEntry;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(!message.is_empty());
    message
}

#[tokio::test]
async fn a_member_of_a_paying_organization_is_redirected_to_the_portal() {
    let app = TestApp::spawn().await;
    app.paying_org().await;

    let response = app.get_portal(&sign(&claims_v2("org_acme"))).await;

    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(response.headers()["location"], PORTAL_URL);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.text().await.unwrap().is_empty());
}

#[tokio::test]
async fn stripe_receives_exactly_the_documented_form_and_headers() {
    let app = TestApp::spawn().await;
    app.paying_org().await;

    app.get_portal(&sign(&claims_v2("org_acme"))).await;

    let requests = app.portal_requests().await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        form_fields(request),
        [
            ("customer".to_owned(), "cus_NciAYcXfLnqBoz".to_owned()),
            ("return_url".to_owned(), PLANS_URL.to_owned()),
        ]
    );
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("authorization"), format!("Bearer {STRIPE_KEY}"));
    assert_eq!(header("content-type"), "application/x-www-form-urlencoded");
    assert_eq!(header("stripe-version"), "2025-09-30.clover");
    let key = header("idempotency-key");
    assert!(key.starts_with("portal-") && key.len() <= 255, "{key}");
}

#[tokio::test]
async fn a_configured_portal_configuration_and_api_version_are_sent() {
    let app = TestApp::builder()
        .env("STRIPE_PORTAL_CONFIGURATION", "bpc_1MAhNDLkdIwHu7ix")
        .env("STRIPE_API_VERSION", "2025-03-31.basil")
        .spawn()
        .await;
    app.paying_org().await;

    app.get_portal(&sign(&claims_v2("org_acme"))).await;

    let request = &app.portal_requests().await[0];
    assert!(
        form_fields(request).contains(&("configuration".into(), "bpc_1MAhNDLkdIwHu7ix".into()))
    );
    assert_eq!(request.headers["stripe-version"], "2025-03-31.basil");
}

#[tokio::test]
async fn an_unauthenticated_request_gets_401_unauthorized() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.portal_url()).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_error(response, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn a_user_without_an_organization_gets_400_validation_error() {
    let app = TestApp::spawn().await;
    let response = app.get_portal(&sign(&claims_without_org())).await;
    assert_error(response, 400, "VALIDATION_ERROR").await;
    assert!(app.portal_requests().await.is_empty());
}

#[tokio::test]
async fn an_organization_without_a_stripe_customer_gets_404_and_its_row_is_created() {
    let app = TestApp::spawn().await;

    let response = app.get_portal(&sign(&claims_v2("org_newcomer"))).await;

    assert_error(response, 404, "NOT_FOUND").await;
    let org = app
        .store
        .find_organization(&OrgId::parse("org_newcomer").unwrap())
        .await
        .unwrap()
        .expect("first sight creates the organization");
    assert_eq!(org.slug.as_deref(), Some("acme"));
    assert_eq!(org.stripe_customer_id, None);
    assert!(app.portal_requests().await.is_empty());
}

#[tokio::test]
async fn the_session_cookie_authenticates_browser_navigation() {
    let app = TestApp::spawn().await;
    app.paying_org().await;

    let response = app
        .client
        .get(app.portal_url())
        .header(
            "Cookie",
            format!("__session={}", sign(&claims_v2("org_acme"))),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(response.headers()["location"], PORTAL_URL);
}

#[tokio::test]
async fn both_clerk_claim_formats_resolve_the_organization() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_one", "cus_One").await;
    app.org_with_customer("org_two", "cus_Two").await;
    app.stripe_creates_portal_sessions().await;

    assert_eq!(
        app.get_portal(&sign(&claims_v1("org_one")))
            .await
            .status()
            .as_u16(),
        302
    );
    assert_eq!(
        app.get_portal(&sign(&claims_v2("org_two")))
            .await
            .status()
            .as_u16(),
        302
    );

    let customers: Vec<String> = app
        .stripe_requests("/v1/billing_portal/sessions")
        .await
        .iter()
        .map(|r| form_fields(r)[0].1.clone())
        .collect();
    assert_eq!(customers, ["cus_One", "cus_Two"]);
}

#[tokio::test]
async fn a_forged_host_header_never_changes_the_return_url() {
    let app = TestApp::spawn().await;
    app.paying_org().await;

    let response = app
        .client
        .get(app.portal_url())
        .bearer_auth(sign(&claims_v2("org_acme")))
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "http")
        .header("Forwarded", "host=evil.example;proto=http")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 302);
    let request = &app.portal_requests().await[0];
    assert!(form_fields(request).contains(&("return_url".into(), PLANS_URL.into())));
}

#[tokio::test]
async fn a_stripe_outage_is_a_500_without_stripes_text_after_bounded_retries() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_NciAYcXfLnqBoz")
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(serde_json::json!({
            "error": {"type": "api_error", "message": "secret internal detail sk_live_leak"}
        })))
        .mount(&app.stripe)
        .await;

    let response = app.get_portal(&sign(&claims_v2("org_acme"))).await;

    let message = assert_error(response, 500, "INTERNAL_ERROR").await;
    assert!(!message.contains("secret internal detail") && !message.contains("sk_"));
    let requests = app.portal_requests().await;
    assert_eq!(
        requests.len(),
        3,
        "one attempt and STRIPE_MAX_RETRIES=2 retries"
    );
    let keys: Vec<_> = requests
        .iter()
        .map(|r| r.headers["idempotency-key"].clone())
        .collect();
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "every retry reuses the idempotency key"
    );
}

#[tokio::test]
async fn a_rate_limited_request_is_retried_with_the_same_key_and_succeeds() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_NciAYcXfLnqBoz")
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(429).set_body_json(serde_json::json!({
            "error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.stripe)
        .await;
    app.stripe_creates_portal_sessions().await;

    let response = app.get_portal(&sign(&claims_v2("org_acme"))).await;

    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(response.headers()["location"], PORTAL_URL);
    let requests = app.portal_requests().await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].headers["idempotency-key"],
        requests[1].headers["idempotency-key"]
    );
}

#[tokio::test]
async fn a_stripe_timeout_is_a_500_within_the_configured_bound() {
    let app = TestApp::builder()
        .env("STRIPE_TIMEOUT", "300ms")
        .env("STRIPE_MAX_RETRIES", "1")
        .spawn()
        .await;
    app.org_with_customer("org_acme", "cus_NciAYcXfLnqBoz")
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(portal_session_json())
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&app.stripe)
        .await;

    let started = std::time::Instant::now();
    let response = app.get_portal(&sign(&claims_v2("org_acme"))).await;

    assert_error(response, 500, "INTERNAL_ERROR").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.portal_requests().await.len(), 2);
}

#[tokio::test]
async fn a_stripe_client_error_is_not_retried() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_Deleted").await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": {"type": "invalid_request_error", "code": "resource_missing",
                      "message": "No such customer: 'cus_Deleted'", "param": "customer"}
        })))
        .mount(&app.stripe)
        .await;

    let response = app.get_portal(&sign(&claims_v2("org_acme"))).await;

    let message = assert_error(response, 500, "INTERNAL_ERROR").await;
    assert!(!message.contains("cus_Deleted"));
    assert_eq!(app.portal_requests().await.len(), 1);
}

#[tokio::test]
async fn an_unusable_portal_url_from_stripe_is_a_500() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_acme", "cus_NciAYcXfLnqBoz")
        .await;
    let mut body = portal_session_json();
    body["url"] = "javascript:alert(1)".into();
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&app.stripe)
        .await;

    let response = app.get_portal(&sign(&claims_v2("org_acme"))).await;

    assert!(response.headers().get("location").is_none());
    assert_error(response, 500, "INTERNAL_ERROR").await;
}

#[tokio::test]
async fn a_broken_database_is_a_500_internal_error() {
    let app = TestApp::spawn().await;
    app.execute("DROP TABLE organizations").await;

    let response = app.get_portal(&sign(&claims_v2("org_acme"))).await;

    let message = assert_error(response, 500, "INTERNAL_ERROR").await;
    assert!(
        !message.to_lowercase().contains("organizations"),
        "no SQL detail leaks: {message}"
    );
}

#[tokio::test]
async fn an_organization_that_just_got_its_customer_opens_the_portal_at_once() {
    let app = TestApp::spawn().await;
    app.stripe_creates_portal_sessions().await;
    let token = sign(&claims_v2("org_acme"));
    assert_eq!(app.get_portal(&token).await.status().as_u16(), 404);

    app.org_with_customer("org_acme", "cus_NciAYcXfLnqBoz")
        .await;

    assert_eq!(app.get_portal(&token).await.status().as_u16(), 302);
}

#[tokio::test]
async fn every_concurrent_portal_session_is_audited_once() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_busy", "cus_Busy").await;
    app.stripe_creates_portal_sessions().await;
    let token = sign(&claims_v2("org_busy"));
    let clicks = (0..40).map(|_| app.get_portal(&token));
    for response in futures_util::future::join_all(clicks).await {
        assert_eq!(response.status().as_u16(), 302);
    }
    // Written off the request path: wait for the writer's batch.
    let audited = "SELECT COUNT(*) FROM billing_audit WHERE action = 'portal' AND org_id = 'org_busy' \
                   AND stripe_session_id IS NOT NULL AND user_id <> ''";
    app.count_reaches(audited, 40).await;
    assert_eq!(
        app.count("SELECT COUNT(DISTINCT id) FROM billing_audit")
            .await,
        40
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM portal_visits WHERE org_id = 'org_busy' \
             AND visited_at = (SELECT MAX(created_at) FROM billing_audit WHERE org_id = 'org_busy')"
        )
        .await,
        1,
        "the newest visit is kept beside the entries"
    );
}

#[tokio::test]
async fn an_older_audit_batch_committed_late_leaves_the_newest_portal_visit() {
    let app = TestApp::spawn().await;
    let entry = |org: &str, action: &'static str| AuditEntry {
        org_id: org.to_owned(),
        user_id: "user_1".to_owned(),
        action,
        stripe_session_id: None,
    };

    app.store
        .record_audits(&[
            (entry("org_a", "portal"), 200),
            (entry("org_a", "portal"), 150),
            (entry("org_b", "checkout_subscription"), 300),
        ])
        .await
        .unwrap();
    app.store
        .record_audits(&[
            (entry("org_a", "portal"), 100),
            (entry("org_b", "seats"), 400),
        ])
        .await
        .unwrap();
    app.store
        .record_audits(&[(entry("org_b", "portal"), 500)])
        .await
        .unwrap();

    assert_eq!(app.count("SELECT COUNT(*) FROM billing_audit").await, 6);
    assert_eq!(
        app.count("SELECT visited_at FROM portal_visits WHERE org_id = 'org_a'")
            .await,
        200
    );
    assert_eq!(
        app.count("SELECT visited_at FROM portal_visits WHERE org_id = 'org_b'")
            .await,
        500,
        "only a portal visit counts as one"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM portal_visits").await, 2);
}
