//! lance-billing: the billing side of lance. Organizations (from Clerk) pay
//! through Stripe; this service opens Stripe's Customer Portal for them,
//! syncs Stripe's state back through webhooks, and renders billing pages.
//!
//! From the top down: `cli` (commands) → `server` (the HTTP server around
//! the route table) → `web` (routes, guards, handlers) → `state` (what the
//! handlers share), `views` (page models) and `billing` (sync rules,
//! checkout) → `store` (SQL, caches) and `stripe` (the API client) → `auth`,
//! `config`, `domain`, `logging`.

pub mod auth;
pub mod billing;
pub mod clerk;
pub mod cli;
pub mod config;
pub mod cores;
pub mod doctor;
pub mod domain;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod state;
pub mod store;
pub mod stripe;
pub mod views;
pub mod web;

/// The property-based fuzz tests' case count: 4,096 by default (a few
/// seconds in CI), `FUZZ_CASES` for longer runs.
#[cfg(test)]
pub(crate) fn fuzz_config() -> proptest::test_runner::Config {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4096);
    proptest::test_runner::Config::with_cases(cases)
}
