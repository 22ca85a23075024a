//! `POST /v1/customers`, `POST /v1/checkout/sessions` and
//! `GET /v1/checkout/sessions/{id}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::objects::CheckoutSession;
use super::{StripeClient, StripeError};

#[derive(Debug, Serialize)]
pub struct CreateCustomer<'a> {
    pub name: &'a str,
    pub metadata: BTreeMap<&'a str, &'a str>,
}

#[derive(Debug, Deserialize)]
pub struct CreatedCustomer {
    pub id: String,
}

#[derive(Debug, Serialize)]
pub struct LineItem<'a> {
    pub price: &'a str,
    pub quantity: i64,
}

#[derive(Debug, Serialize)]
pub struct SubscriptionData<'a> {
    pub metadata: BTreeMap<&'a str, &'a str>,
}

#[derive(Debug, Serialize)]
pub struct CreateCheckoutSession<'a> {
    /// `subscription` or `payment`.
    pub mode: &'a str,
    pub customer: &'a str,
    pub client_reference_id: &'a str,
    pub line_items: Vec<LineItem<'a>>,
    /// May contain Stripe's `{CHECKOUT_SESSION_ID}` placeholder.
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub metadata: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data: Option<SubscriptionData<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct CreatedCheckoutSession {
    pub id: String,
    pub url: Option<String>,
}

impl StripeClient {
    pub async fn create_customer(
        &self,
        params: &CreateCustomer<'_>,
        idempotency_key: &str,
    ) -> Result<CreatedCustomer, StripeError> {
        self.post("/v1/customers", params, idempotency_key).await
    }

    pub async fn create_checkout_session(
        &self,
        params: &CreateCheckoutSession<'_>,
        idempotency_key: &str,
    ) -> Result<CreatedCheckoutSession, StripeError> {
        self.post("/v1/checkout/sessions", params, idempotency_key)
            .await
    }

    pub async fn retrieve_checkout_session(
        &self,
        id: &str,
    ) -> Result<CheckoutSession, StripeError> {
        self.get(&format!(
            "/v1/checkout/sessions/{}",
            super::path_segment(id)
        ))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_params_use_stripes_bracketed_keys() {
        let params = CreateCheckoutSession {
            mode: "subscription",
            customer: "cus_1",
            client_reference_id: "org_1",
            line_items: vec![LineItem {
                price: "price_1",
                quantity: 1,
            }],
            success_url: "https://a.test/organization?checkout={CHECKOUT_SESSION_ID}#/plans",
            cancel_url: "https://a.test/organization#/plans",
            metadata: BTreeMap::from([("org_id", "org_1".to_owned())]),
            subscription_data: Some(SubscriptionData {
                metadata: BTreeMap::from([("org_id", "org_1")]),
            }),
        };
        let encoded = serde_qs::to_string(&params).unwrap();
        let fields: BTreeMap<String, String> = url::form_urlencoded::parse(encoded.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(fields["line_items[0][price]"], "price_1");
        assert_eq!(fields["line_items[0][quantity]"], "1");
        assert_eq!(fields["metadata[org_id]"], "org_1");
        assert_eq!(fields["subscription_data[metadata][org_id]"], "org_1");
        assert_eq!(
            fields["success_url"],
            "https://a.test/organization?checkout={CHECKOUT_SESSION_ID}#/plans"
        );
    }
}
