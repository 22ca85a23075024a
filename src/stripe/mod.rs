//! Everything about Stripe's wire format: the API client, its request and
//! response types, paged lists, webhook endpoints and webhook signatures. Sync rules live in `billing`.

mod checkout;
mod client;
mod customer_lookup;
mod lists;
mod meter_events;
pub mod objects;
mod portal;
mod subscription_items;
pub mod webhook;
mod webhook_endpoints;

pub use checkout::{
    CreateCheckoutSession, CreateCustomer, CreatedCheckoutSession, LineItem, SubscriptionData,
};
pub use client::{ApiErrorBody, RetryPolicy, StripeClient, StripeError};
pub use customer_lookup::Customer;
pub use meter_events::MeterEvent;
pub use portal::{CreatePortalSession, FlowData, PortalSession};
pub use subscription_items::UpdateSubscriptionItem;
pub use webhook_endpoints::{CreateWebhookEndpoint, UpdateWebhookEndpoint, WebhookEndpoint};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, PercentEncode, utf8_percent_encode};

/// Everything but the characters of Stripe's ids is escaped, so an id
/// from outside (a return link, a payload) stays one segment of the path.
const OUTSIDE_ID: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-');

/// `id` as one segment of a request path.
pub fn path_segment(id: &str) -> PercentEncode<'_> {
    utf8_percent_encode(id, OUTSIDE_ID)
}
