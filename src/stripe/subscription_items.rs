//! A subscription read back, and one item's quantity set: what seats that
//! follow members need.

use serde::Serialize;

use super::objects::Subscription;
use super::{StripeClient, StripeError, path_segment};

/// `POST /v1/subscription_items/{id}`: the new quantity.
#[derive(Debug, Serialize)]
pub struct UpdateSubscriptionItem<'a> {
    pub quantity: i64,
    pub proration_behavior: &'a str,
}

impl StripeClient {
    pub async fn retrieve_subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        self.get(&format!("/v1/subscriptions/{}", path_segment(id)))
            .await
    }

    pub async fn update_subscription_item(
        &self,
        item: &str,
        update: &UpdateSubscriptionItem<'_>,
        idempotency_key: &str,
    ) -> Result<serde_json::Value, StripeError> {
        let path = format!("/v1/subscription_items/{}", path_segment(item));
        self.post(&path, update, idempotency_key).await
    }
}
