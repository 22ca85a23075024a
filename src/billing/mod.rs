//! Sync rules: what Stripe's events and fetched objects do to our state.
//! `rules` decides (pure), `apply` writes a batch's changes inside the
//! caller's transaction (a statement a table), `ingest` batches webhook
//! deliveries into durable commits, and `reconcile` repairs what webhooks
//! missed.

pub mod access;
mod apply;
pub mod batches;
pub mod budget;
pub mod catchup;
pub mod checkout;
pub mod credits;
pub mod ingest;
pub mod members;
pub mod reconcile;
pub mod refetch;
pub mod replay;
pub mod retention;
pub mod revenue;
pub mod rules;
pub mod seats;
pub mod snapshot;
pub mod synced_plans;
pub mod usage;
pub mod versions;
pub mod webhook_setup;
pub mod writers;

pub use ingest::{IngestError, Ingested, Ingestor};
pub use rules::{Change, PlanError, plan};

pub use apply::{apply_change, apply_changes};
