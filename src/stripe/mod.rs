//! Everything about Stripe's wire format: the API client, its request and
//! response types, and (later) webhook signatures. Sync rules live in `billing`.

mod checkout;
mod client;
mod customers;
pub mod objects;
mod portal;
pub mod webhook;

pub use checkout::{
    CreateCheckoutSession, CreateCustomer, CreatedCheckoutSession, LineItem, SubscriptionData,
};
pub use client::{ApiErrorBody, RetryPolicy, StripeClient, StripeError};
pub use customers::Customer;
pub use portal::{CreatePortalSession, FlowData, PortalSession};
