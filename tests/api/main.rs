//! Integration tests: the real HTTP surface, run on SQLite and, with
//! TEST_DATABASE_URL=postgres://…, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod auth;
mod browser;
mod health;
mod helpers;
mod org_link;
mod pages;
mod portal;
mod reconcile;
mod stripe_fixtures;
mod webhooks;
