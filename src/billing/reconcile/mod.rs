//! Reconciliation: fetch the current objects from Stripe and apply them with
//! the same rules and code paths as webhooks. A fetched object counts as the
//! newest state (its version is the fetch time), so it overrides older
//! events and yields to events created after the fetch. Safe to run while
//! webhooks arrive, and idempotent: a second run reports no changes.
//!
//! It degrades instead of failing: a resource Stripe refuses (a restricted
//! key without that permission, a resource the account does not have, a
//! page that keeps failing after retries) is reported and skipped, and
//! everything else is still applied. Only a refused key (401) stops it.

mod catalog;
mod customers;
mod report;

pub use report::{Resource, ResourceLine, SyncReport};

use catalog::sync_catalog;
use customers::{customers_to_sync, sync_customer};

use anyhow::Context;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::apply_change;
use super::rules::{Change, checkout_changes};
use crate::domain::OrgId;
use crate::store::{Store, StoreError, SyncedRow, Tx};
use crate::stripe::objects::{CheckoutSession, FullCustomer};
use crate::stripe::{StripeClient, StripeError, path_segment};

/// Syncs every organization's customer (and the product catalog), or only `org`'s.
pub async fn sync(
    store: &Store,
    stripe: &StripeClient,
    org: Option<&OrgId>,
) -> anyhow::Result<SyncReport> {
    let mut report = SyncReport::default();
    if org.is_none() {
        sync_catalog(store, stripe, &mut report).await?;
    }
    for customer in customers_to_sync(store, stripe, org, &mut report).await? {
        sync_customer(store, stripe, &customer, &mut report)
            .await
            .with_context(|| format!("while syncing customer {}", customer.id))?;
        report.customers += 1;
    }
    Ok(report)
}

/// A read of `resource` that may be refused: its objects, or `None` after
/// noting the failure in `report`. A refused key (401) fails the whole sync:
/// nothing else could be read either.
async fn read<T>(
    report: &mut SyncReport,
    resource: Resource,
    fetched: impl Future<Output = anyhow::Result<Vec<T>>>,
) -> anyhow::Result<Option<Vec<T>>> {
    match fetched.await {
        Ok(objects) => {
            report.fetched(resource, objects.len());
            Ok(Some(objects))
        }
        Err(err) if is_refused_key(&err) => Err(err),
        Err(err) => {
            report.failed(resource, &err);
            Ok(None)
        }
    }
}

fn is_refused_key(err: &anyhow::Error) -> bool {
    err.downcast_ref::<StripeError>()
        .is_some_and(|e| e.status() == Some(StatusCode::UNAUTHORIZED))
}

/// Syncs one customer by id: what a page does when a user returns from Stripe.
pub async fn sync_customer_by_id(
    store: &Store,
    stripe: &StripeClient,
    customer: &str,
) -> anyhow::Result<SyncReport> {
    let mut report = SyncReport::default();
    let fetched: FullCustomer = stripe
        .get(&format!("/v1/customers/{}", path_segment(customer)))
        .await
        .with_context(|| format!("could not fetch customer {customer}"))?;
    report.fetched(Resource::Customers, 1);
    sync_customer(store, stripe, &fetched, &mut report).await?;
    report.customers = 1;
    // What was read is applied; what was not is named for the caller's log.
    Ok(report)
}

/// Applies a checkout session fetched from Stripe (the return from
/// checkout), with the same rules as `checkout.session.completed`.
pub async fn apply_checkout_session(
    store: &Store,
    session: &CheckoutSession,
) -> anyhow::Result<()> {
    let changes = checkout_changes(session)?;
    let mut tx = store.begin().await?;
    super::apply_changes(&mut tx, &changes).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies fetched changes, counting those that altered content (a newer
/// version with the same content is written, but is not a change).
pub(super) async fn apply_fetched(
    tx: &mut Tx,
    changes: &[Change],
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    for change in changes {
        let content_differs = match change {
            Change::Customer(row) => differs(tx, row).await?,
            Change::Subscription(row) => differs(tx, row).await?,
            Change::Invoice(row) => differs(tx, row).await?,
            Change::PaymentMethod(row) => differs(tx, row).await?,
            Change::Product(row) => differs(tx, row).await?,
            Change::Price(row) => differs(tx, row).await?,
            Change::Entitlements(row) => differs(tx, row).await?,
            Change::Feature(row) => differs(tx, row).await?,
            _ => false,
        };
        let applied = apply_change(tx, change).await?;
        if content_differs || (applied && is_side_effect(change)) {
            report.changed(Resource::of(change));
        }
    }
    Ok(())
}

fn is_side_effect(change: &Change) -> bool {
    matches!(
        change,
        Change::LinkCustomer { .. }
            | Change::UnverifiedCheckout { .. }
            | Change::UnlinkCustomer(_)
            | Change::GrantCredits(_)
            | Change::InvoiceCredits { .. }
    )
}

async fn differs<R: SyncedRow>(tx: &mut Tx, row: &R) -> Result<bool, StoreError> {
    let stored = tx.stored_hash::<R>(row.id()).await?;
    Ok(stored.as_deref() != Some(row.content_hash().as_str()))
}

/// Every page of a Stripe list.
async fn list_all<T: DeserializeOwned>(
    stripe: &StripeClient,
    path: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<Vec<T>> {
    stripe
        .list_all(path, params)
        .await
        .with_context(|| format!("could not list {path}"))
}
