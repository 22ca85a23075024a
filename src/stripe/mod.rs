//! Everything about Stripe's wire format: the API client, its request and
//! response types, and (later) webhook signatures. Sync rules live in `billing`.

mod client;
mod customers;
mod portal;

pub use client::{ApiErrorBody, RetryPolicy, StripeClient, StripeError};
pub use customers::Customer;
pub use portal::{CreatePortalSession, PortalSession};
