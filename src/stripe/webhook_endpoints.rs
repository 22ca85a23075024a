//! `/v1/webhook_endpoints`: where Stripe delivers, which events, at which
//! API version. The version can be chosen only when an endpoint is created.

use serde::{Deserialize, Serialize};

use super::{StripeClient, StripeError};

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub enabled_events: Vec<String>,
    /// `None`: events come at the account's default version.
    pub api_version: Option<String>,
    /// `enabled` or `disabled` (Stripe disables an endpoint that keeps failing).
    pub status: Option<String>,
    /// Only in the answer to the creation.
    pub secret: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CreateWebhookEndpoint<'a> {
    pub url: &'a str,
    pub enabled_events: &'a [&'a str],
    pub api_version: &'a str,
    pub description: &'a str,
}

#[derive(Debug, Serialize)]
pub struct UpdateWebhookEndpoint<'a> {
    pub enabled_events: &'a [&'a str],
    /// `Some(false)` re-enables an endpoint Stripe disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

impl StripeClient {
    pub async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StripeError> {
        self.list_all("/v1/webhook_endpoints", &[]).await
    }

    pub async fn create_webhook_endpoint(
        &self,
        params: &CreateWebhookEndpoint<'_>,
        idempotency_key: &str,
    ) -> Result<WebhookEndpoint, StripeError> {
        self.post("/v1/webhook_endpoints", params, idempotency_key)
            .await
    }

    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        params: &UpdateWebhookEndpoint<'_>,
        idempotency_key: &str,
    ) -> Result<WebhookEndpoint, StripeError> {
        self.post(
            &format!("/v1/webhook_endpoints/{}", super::path_segment(id)),
            params,
            idempotency_key,
        )
        .await
    }
}
