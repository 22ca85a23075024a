//! Stripe's side of a test: the stand-in's answers and what it received.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use super::{PLANS_URL, STRIPE_KEY, TestApp};
use lance_billing::config::{Env, StripeSettings};
use lance_billing::stripe::StripeClient;

pub const PORTAL_URL: &str = "https://billing.stripe.com/p/session/test_abc123";

impl TestApp {
    /// Stripe answers every portal-session request with `PORTAL_URL`.
    pub async fn stripe_creates_portal_sessions(&self) {
        Mock::given(method("POST"))
            .and(path("/v1/billing_portal/sessions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(portal_session_json()))
            .mount(&self.stripe)
            .await;
    }

    /// The acme organization, linked to a customer, with Stripe creating sessions.
    pub async fn paying_org(&self) {
        self.org_with_customer("org_acme", "cus_NciAYcXfLnqBoz")
            .await;
        self.stripe_creates_portal_sessions().await;
    }

    /// Every portal-session request Stripe received.
    pub async fn portal_requests(&self) -> Vec<wiremock::Request> {
        self.stripe_requests("/v1/billing_portal/sessions").await
    }

    /// Every request Stripe received at `at`.
    pub async fn stripe_requests(&self, at: &str) -> Vec<wiremock::Request> {
        self.stripe
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == at)
            .collect()
    }

    /// A Stripe client aimed at this app's stand-in Stripe, as the CLI builds one.
    pub fn stripe_client(&self, max_retries: u32) -> StripeClient {
        let uri = self.stripe.uri();
        let retries = max_retries.to_string();
        let env = Env::from_pairs([
            ("STRIPE_SECRET_KEY", STRIPE_KEY),
            ("STRIPE_API_BASE", uri.as_str()),
            ("STRIPE_MAX_RETRIES", retries.as_str()),
        ]);
        let settings = StripeSettings::from_env(&env).unwrap();
        StripeClient::new(&settings).unwrap()
    }
}

/// The fields of a form-encoded request Stripe received.
pub fn form_fields(request: &wiremock::Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

pub fn portal_session_json() -> Value {
    json!({
        "id": "bps_1MqjBdLkdIwHu7ix", "object": "billing_portal.session",
        "configuration": "bpc_1MAhNDLkdIwHu7ixckACO1Jq", "created": 1680210737,
        "customer": "cus_NciAYcXfLnqBoz", "flow": null, "livemode": false, "locale": null,
        "on_behalf_of": null, "return_url": PLANS_URL, "url": PORTAL_URL,
    })
}
