//! `POST /v1/billing_portal/sessions`.

use serde::{Deserialize, Serialize};

use super::{StripeClient, StripeError};

#[derive(Debug, Serialize)]
pub struct CreatePortalSession<'a> {
    pub customer: &'a str,
    pub return_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<&'a str>,
    /// A deep link into one portal flow instead of the portal's home page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_data: Option<FlowData<'a>>,
}

/// `flow_data` of a portal session.
#[derive(Debug, Serialize)]
pub struct FlowData<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_cancel: Option<SubscriptionRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_update: Option<SubscriptionRef<'a>>,
    pub after_completion: AfterCompletion<'a>,
}

#[derive(Debug, Serialize)]
pub struct SubscriptionRef<'a> {
    pub subscription: &'a str,
}

#[derive(Debug, Serialize)]
pub struct AfterCompletion<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub redirect: Redirect<'a>,
}

#[derive(Debug, Serialize)]
pub struct Redirect<'a> {
    pub return_url: &'a str,
}

impl<'a> FlowData<'a> {
    /// `payment_method_update`, `subscription_cancel` or `subscription_update`,
    /// returning to `return_url` when done.
    pub fn new(kind: &'static str, subscription: Option<&'a str>, return_url: &'a str) -> Self {
        let target = subscription.map(|subscription| SubscriptionRef { subscription });
        let (cancel, update) = match kind {
            "subscription_cancel" => (target, None),
            "subscription_update" => (None, target),
            _ => (None, None),
        };
        Self {
            kind,
            subscription_cancel: cancel,
            subscription_update: update,
            after_completion: AfterCompletion {
                kind: "redirect",
                redirect: Redirect { return_url },
            },
        }
    }
}

/// The fields of Stripe's `billing_portal.session` we use; the URL is a bearer
/// credential for the customer's billing, so it is never logged.
#[derive(Debug, Clone, Deserialize)]
pub struct PortalSession {
    pub id: String,
    pub url: String,
    pub customer: String,
    pub return_url: Option<String>,
    #[serde(default)]
    pub livemode: bool,
}

impl StripeClient {
    pub async fn create_portal_session(
        &self,
        params: &CreatePortalSession<'_>,
        idempotency_key: &str,
    ) -> Result<PortalSession, StripeError> {
        self.post("/v1/billing_portal/sessions", params, idempotency_key)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_encode_as_stripe_form_fields() {
        let with_config = CreatePortalSession {
            customer: "cus_1",
            return_url: "https://app.example.com/organization#/plans",
            configuration: Some("bpc_1"),
            flow_data: None,
        };
        let encoded = serde_qs::to_string(&with_config).unwrap();
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(encoded.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            fields,
            [
                ("customer".into(), "cus_1".into()),
                (
                    "return_url".into(),
                    "https://app.example.com/organization#/plans".into()
                ),
                ("configuration".into(), "bpc_1".into()),
            ]
        );
        let without = CreatePortalSession {
            configuration: None,
            ..with_config
        };
        assert!(
            !serde_qs::to_string(&without)
                .unwrap()
                .contains("configuration")
        );
    }

    #[test]
    fn stripes_example_session_parses() {
        let fixture = r#"{"configuration":"bpc_1","created":1234567890,"customer":"cus_QXg1o8vcGmoR32","flow":null,"id":"bps_1","livemode":false,"locale":null,"object":"billing_portal.session","on_behalf_of":null,"return_url":"https://example.com/account","url":"https://billing.stripe.com/p/session/test_abc"}"#;
        let session: PortalSession = serde_json::from_str(fixture).unwrap();
        assert_eq!(session.url, "https://billing.stripe.com/p/session/test_abc");
        assert_eq!(session.customer, "cus_QXg1o8vcGmoR32");
    }
}
