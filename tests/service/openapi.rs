//! The published OpenAPI description: served, committed, and in step.

use serde_json::Value;

use crate::helpers::*;

/// `UPDATE_OPENAPI=1 cargo test --test service openapi` rewrites the committed copy.
#[tokio::test]
async fn the_served_description_is_the_committed_one_and_covers_every_json_route() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let served = response.text().await.unwrap();
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(committed_path, format!("{served}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert_eq!(
        committed.trim_end(),
        served,
        "docs/openapi.json is out of date: run UPDATE_OPENAPI=1 cargo test --test service openapi"
    );

    let doc: Value = serde_json::from_str(&served).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, method) in [
        ("/api/v1/operations/payment/customer-portal", "get"),
        ("/api/v1/operations/payment/subscription", "get"),
        ("/api/v1/operations/payment/invoices", "get"),
        ("/api/v1/operations/payment/entitlements", "get"),
        (
            "/api/v1/internal/organizations/{org_id}/entitlements",
            "get",
        ),
        ("/api/v1/webhooks/stripe", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    for scheme in ["clerk_bearer", "clerk_session_cookie", "service_token"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

/// Found by schemathesis: a query that does not parse answered actix's
/// plain-text 400 instead of the contract's JSON.
#[tokio::test]
async fn a_query_that_does_not_parse_gets_the_json_error() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .get_json(
            "/api/v1/operations/payment/invoices?limit=null&limit=null",
            "org_q",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
}
