//! Integration tests: the real HTTP surface, run on SQLite and, with
//! TEST_DATABASE_URL=postgres://…, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/db.rs"]
mod db;

mod admin;
mod api_versions;
mod auth;
mod batches;
mod browser;
mod catch_up;
mod clerk_sync;
mod clerk_webhooks;
mod contract;
mod credit_expiry;
mod credits;
mod doctor;
mod entitlements;
mod event_log;
mod health;
mod helpers;
mod kept_plans;
mod metrics;
mod openapi;
mod ordering;
mod org_link;
mod overview;
mod pages;
mod portal;
mod reconcile;
mod seats;
mod slow_clients;
mod stop;
mod stripe_fixtures;
mod usage;
mod webhook_setup;
mod webhooks;
