//! lance-billing: the billing side of lance. Organizations (from Clerk) pay
//! through Stripe; this service opens Stripe's Customer Portal for them,
//! syncs Stripe's state back through webhooks, and renders billing pages.

pub mod auth;
pub mod billing;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod pages;
pub mod routes;
pub mod startup;
pub mod store;
pub mod stripe;
