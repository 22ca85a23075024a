//! `lance-billing doctor`: a healthy deployment is all ok, and each thing
//! that can be wrong fails (or warns) with what to do. Stripe and Clerk are
//! stand-ins on loopback.

use lance_billing::config::{Env, StripeSettings};
use lance_billing::doctor::{Check, SYNC_RESOURCES, Verdict, run};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

const PUBLIC_URL: &str = "http://localhost:8080";

fn empty_list() -> Value {
    json!({"object": "list", "data": [], "has_more": false})
}

fn endpoint(status: &str, events: Value, version: &str) -> Value {
    json!({"object": "list", "has_more": false, "data": [{"id": "we_1", "object": "webhook_endpoint",
        "url": format!("{PUBLIC_URL}/api/v1/webhooks/stripe"), "enabled_events": events,
        "api_version": version, "status": status}]})
}

/// The parameters of Stripe's list endpoints the doctor may send.
const LIST_PARAMETERS: [&str; 4] = ["limit", "starting_after", "is_default", "active"];

/// Stripe refuses a request with a parameter it does not know (400,
/// `parameter_unknown`): the stand-in answers only queries of known names.
struct KnownParameters;

impl Match for KnownParameters {
    fn matches(&self, request: &Request) -> bool {
        request
            .url
            .query_pairs()
            .all(|(name, _)| LIST_PARAMETERS.contains(&name.as_ref()))
    }
}

/// Stripe and Clerk as a healthy deployment sees them; `overrides` answer
/// first.
struct Stand {
    stripe: MockServer,
    clerk: MockServer,
}

impl Stand {
    async fn healthy() -> Self {
        let stand = Self {
            stripe: MockServer::start().await,
            clerk: MockServer::start().await,
        };
        let answers = [
            (
                "/v1/webhook_endpoints",
                endpoint("enabled", json!(["*"]), StripeSettings::DEFAULT_API_VERSION),
            ),
            (
                "/v1/billing_portal/configurations",
                json!({"object": "list", "has_more": false,
                    "data": [{"id": "bpc_1", "active": true, "is_default": true}]}),
            ),
        ];
        for (at, body) in answers {
            stand.answer(at, 200, body, 5).await;
        }
        for (_, at) in SYNC_RESOURCES {
            stand.answer(at, 200, empty_list(), 5).await;
        }
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
                "type": "invalid_request_error", "code": "parameter_unknown",
                "message": "Received unknown parameter"}})))
            .with_priority(10)
            .mount(&stand.stripe)
            .await;
        Mock::given(method("GET"))
            .and(path("/.well-known/jwks.json"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"keys": [{"kid": "ins_1"}]})),
            )
            .mount(&stand.clerk)
            .await;
        stand
    }

    /// Stripe answers `status` and `body` at `at`; priority 1 overrides.
    async fn answer(&self, at: &str, status: u16, body: Value, priority: u8) {
        Mock::given(method("GET"))
            .and(path(at))
            .and(KnownParameters)
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .with_priority(priority)
            .mount(&self.stripe)
            .await;
    }

    async fn doctor(&self, app: &TestApp, extra: &[(&str, &str)]) -> Vec<Check> {
        let stripe = self.stripe.uri();
        let jwks = format!("{}/.well-known/jwks.json", self.clerk.uri());
        let mut pairs = vec![
            ("DATABASE_URL", app.database_url.as_str()),
            ("PUBLIC_URL", PUBLIC_URL),
            ("STRIPE_SECRET_KEY", "sk_test_doctor"),
            ("STRIPE_API_BASE", stripe.as_str()),
            ("STRIPE_MAX_RETRIES", "0"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_doctor"),
            ("CLERK_JWKS_URL", jwks.as_str()),
            ("SESSION_KEY", SESSION_KEY),
        ];
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend_from_slice(extra);
        run(&Env::from_pairs(pairs)).await
    }
}

const SESSION_KEY: &str =
    "doctor-session-key-0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

/// The verdict and detail of check `name`.
fn verdict(checks: &[Check], name: &str) -> (Verdict, String) {
    checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| (c.verdict, c.detail.clone()))
        .unwrap_or((Verdict::Ok, "not run".to_owned()))
}

#[tokio::test]
async fn a_healthy_deployment_is_all_ok() {
    let app = TestApp::spawn().await;
    let stand = Stand::healthy().await;
    let checks = stand.doctor(&app, &[]).await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "configuration",
            "database",
            "session key",
            "stripe key",
            "stripe resources",
            "webhook endpoint",
            "customer portal",
            "clerk keys"
        ]
    );
    let not_ok: Vec<String> = checks
        .iter()
        .filter(|c| c.verdict != Verdict::Ok)
        .map(ToString::to_string)
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:?}");
}

#[tokio::test]
async fn each_broken_part_fails_with_what_to_do() {
    let app = TestApp::spawn().await;

    let stand = Stand::healthy().await;
    let checks = stand.doctor(&app, &[("BIND_ADDR", "nowhere")]).await;
    assert_eq!(verdict(&checks, "configuration").0, Verdict::Failed);

    let refused = json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key"}});
    stand.answer("/v1/customers", 401, refused, 1).await;
    let checks = stand.doctor(&app, &[]).await;
    let (v, detail) = verdict(&checks, "stripe key");
    assert_eq!(v, Verdict::Failed, "{detail}");
    assert!(detail.contains("STRIPE_SECRET_KEY"), "{detail}");

    let stand = Stand::healthy().await;
    let forbidden = json!({"error": {"type": "invalid_request_error", "message": "restricted"}});
    stand.answer("/v1/invoices", 403, forbidden, 1).await;
    let (v, detail) = verdict(&stand.doctor(&app, &[]).await, "stripe resources");
    assert_eq!(v, Verdict::Failed);
    assert!(detail.contains("invoices (403"), "{detail}");

    let stand = Stand::healthy().await;
    stand
        .answer("/v1/webhook_endpoints", 200, empty_list(), 1)
        .await;
    let (v, detail) = verdict(&stand.doctor(&app, &[]).await, "webhook endpoint");
    assert_eq!(v, Verdict::Failed);
    assert!(detail.contains("webhooks setup"), "{detail}");

    let stand = Stand::healthy().await;
    let disabled = endpoint(
        "disabled",
        json!(["*"]),
        StripeSettings::DEFAULT_API_VERSION,
    );
    stand
        .answer("/v1/webhook_endpoints", 200, disabled, 1)
        .await;
    let (v, detail) = verdict(&stand.doctor(&app, &[]).await, "webhook endpoint");
    assert_eq!(
        (v, detail.contains("disabled")),
        (Verdict::Failed, true),
        "{detail}"
    );

    let stand = Stand::healthy().await;
    let partial = endpoint(
        "enabled",
        json!(["invoice.paid"]),
        StripeSettings::DEFAULT_API_VERSION,
    );
    stand.answer("/v1/webhook_endpoints", 200, partial, 1).await;
    let (v, detail) = verdict(&stand.doctor(&app, &[]).await, "webhook endpoint");
    assert_eq!(v, Verdict::Failed);
    assert!(detail.contains("customer.subscription.updated"), "{detail}");

    let stand = Stand::healthy().await;
    let old = endpoint("enabled", json!(["*"]), "2020-08-27");
    stand.answer("/v1/webhook_endpoints", 200, old, 1).await;
    let (v, detail) = verdict(&stand.doctor(&app, &[]).await, "webhook endpoint");
    assert_eq!(
        (v, detail.contains("2020-08-27")),
        (Verdict::Warning, true),
        "{detail}"
    );

    let stand = Stand::healthy().await;
    stand
        .answer("/v1/billing_portal/configurations", 200, empty_list(), 1)
        .await;
    let (v, detail) = verdict(&stand.doctor(&app, &[]).await, "customer portal");
    assert_eq!(v, Verdict::Failed);
    assert!(detail.contains("dashboard"), "{detail}");

    let stand = Stand::healthy().await;
    let checks = stand
        .doctor(&app, &[("STRIPE_SECRET_KEY", "sk_live_doctor")])
        .await;
    assert_eq!(
        verdict(&checks, "stripe key").0,
        Verdict::Warning,
        "live key, local URL"
    );

    let stand = Stand::healthy().await;
    let elsewhere = "https://clerk.other.example";
    let (v, detail) = verdict(
        &stand.doctor(&app, &[("CLERK_ISSUER", elsewhere)]).await,
        "clerk keys",
    );
    assert_eq!(v, Verdict::Failed, "{detail}");
}

#[tokio::test]
async fn an_unmigrated_database_and_an_empty_key_set_fail() {
    let app = TestApp::spawn().await;
    let stand = Stand::healthy().await;
    let dir = tempfile::tempdir().expect("a directory");
    let fresh = format!("sqlite://{}/fresh.db", dir.path().display());
    let checks = if app.database_url.starts_with("postgres") {
        app.execute("DELETE FROM _sqlx_migrations WHERE version = 20261208000002")
            .await;
        stand.doctor(&app, &[]).await
    } else {
        stand
            .doctor(&app, &[("DATABASE_URL", fresh.as_str())])
            .await
    };
    let (v, detail) = verdict(&checks, "database");
    assert_eq!(v, Verdict::Failed, "{detail}");
    assert!(detail.contains("lance-billing migrate"), "{detail}");

    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": []})))
        .with_priority(1)
        .mount(&stand.clerk)
        .await;
    let (v, detail) = verdict(&stand.doctor(&app, &[]).await, "clerk keys");
    assert_eq!(
        (v, detail.contains("no keys")),
        (Verdict::Failed, true),
        "{detail}"
    );
}
