//! `POST /v1/billing/meter_events`: usage reported to a meter, under an
//! identifier Stripe deduplicates (within a day).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{StripeClient, StripeError};

#[derive(Debug, Serialize)]
pub struct CreateMeterEvent<'a> {
    pub event_name: &'a str,
    pub identifier: &'a str,
    /// Unix seconds: within the past 35 days, at most 5 minutes ahead.
    pub timestamp: i64,
    /// `stripe_customer_id` and `value` (Stripe reads both as strings).
    pub payload: BTreeMap<&'a str, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MeterEvent {
    pub identifier: String,
}

impl StripeClient {
    /// Reports `value` of `event_name` for `customer`; the identifier is also
    /// the request's idempotency key.
    pub async fn create_meter_event(
        &self,
        event_name: &str,
        identifier: &str,
        customer: &str,
        value: i64,
        timestamp: i64,
    ) -> Result<MeterEvent, StripeError> {
        let params = CreateMeterEvent {
            event_name,
            identifier,
            timestamp,
            payload: BTreeMap::from([
                ("stripe_customer_id", customer.to_owned()),
                ("value", value.to_string()),
            ]),
        };
        self.post("/v1/billing/meter_events", &params, identifier)
            .await
    }
}
