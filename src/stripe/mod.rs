//! Everything about Stripe's wire format: the API client, its request and
//! response types, paged lists, webhook endpoints and webhook signatures. Sync rules live in `billing`.

mod checkout;
mod client;
mod customers;
mod lists;
pub mod objects;
mod portal;
pub mod webhook;
mod webhook_endpoints;

pub use checkout::{
    CreateCheckoutSession, CreateCustomer, CreatedCheckoutSession, LineItem, SubscriptionData,
};
pub use client::{ApiErrorBody, RetryPolicy, StripeClient, StripeError};
pub use customers::Customer;
pub use portal::{CreatePortalSession, FlowData, PortalSession};
pub use webhook_endpoints::{CreateWebhookEndpoint, UpdateWebhookEndpoint, WebhookEndpoint};
