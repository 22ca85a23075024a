//! Converging on Stripe's own state where the order of two versions cannot
//! be known (`store::Uncertain`): each queued object is fetched from Stripe
//! a moment after its tie and written as a fetch, a second later than the
//! tie, so it outranks both. Off the webhook's answer path, a few objects a
//! tick, durable across restarts (the queue is a table), and skipped when a
//! newer version arrived meanwhile.

use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use super::reconcile::{SyncReport, apply_fetched};
use super::rules::{
    Change, customer_changes, entitlements_row, feature_row, fetched_version, invoice_changes,
    invoice_status_rank, payment_method_row, price_row, product_row, subscription_row,
    subscription_status_rank,
};
use crate::domain::unix_now;
use crate::store::{Refetch, Store};
use crate::stripe::objects::{
    ActiveEntitlement, Feature, FullCustomer, Invoice, PaymentMethod, Price, Product, Subscription,
};
use crate::stripe::{StripeClient, StripeError, path_segment};

/// Objects fetched a tick, so a burst of ties cannot spend the account's
/// rate limit, which every organization shares.
const PER_TICK: i64 = 20;
const TICK: Duration = Duration::from_secs(1);
/// How long a claimed object is left to the instance that claimed it.
const LEASE_SECS: i64 = 60;
const MAX_BACKOFF_SECS: i64 = 3600;

/// What one drain did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub fetched: usize,
    /// A newer version had arrived: nothing to fetch.
    pub superseded: usize,
    /// Stripe no longer has the object.
    pub gone: usize,
    pub failed: usize,
}

/// Fetches the objects due by `now`, once each.
pub async fn drain_due(store: &Store, stripe: &StripeClient, now: i64) -> anyhow::Result<Drained> {
    let mut drained = Drained::default();
    for job in store.claim_refetches(now, PER_TICK, LEASE_SECS).await? {
        match refetch(store, stripe, &job).await {
            Ok(outcome) => {
                match outcome {
                    Outcome::Fetched => drained.fetched += 1,
                    Outcome::Superseded => drained.superseded += 1,
                    Outcome::Gone => drained.gone += 1,
                }
                store.finish_refetch(&job).await?;
            }
            Err(err) => {
                drained.failed += 1;
                let error = format!("{err:#}");
                log::warn!(
                    "fetching {} {} again failed: {error}",
                    job.object_table,
                    job.object_id
                );
                store
                    .retry_refetch(&job, now + backoff_secs(job.attempts), &error)
                    .await?;
            }
        }
    }
    Ok(drained)
}

/// Drains the queue every tick until `stop`.
pub async fn run(store: Store, stripe: StripeClient, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let drained = tokio::select! {
            () = stop.cancelled() => return,
            drained = drain_due(&store, &stripe, unix_now()) => drained,
        };
        if let Err(err) = drained {
            log::warn!("the refetch queue could not be drained: {err:#}");
        }
    }
}

fn backoff_secs(attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.clamp(0, 12)).unwrap_or(12);
    5i64.saturating_mul(2i64.saturating_pow(exponent))
        .min(MAX_BACKOFF_SECS)
}

enum Outcome {
    Fetched,
    Superseded,
    Gone,
}

async fn refetch(store: &Store, stripe: &StripeClient, job: &Refetch) -> anyhow::Result<Outcome> {
    // A read: SQLite's write lock is taken only to write what was fetched.
    let stored = store
        .stored_created(&job.object_table, &job.object_id)
        .await?;
    if stored.is_some_and(|created| created > job.tie_created) {
        return Ok(Outcome::Superseded);
    }
    let changes = match fetch(stripe, &job.object_table, &job.object_id).await {
        Ok(changes) => changes,
        Err(err) if is_missing(&err) => {
            log::info!("{} {} is gone from Stripe", job.object_table, job.object_id);
            return Ok(Outcome::Gone);
        }
        Err(err) => return Err(err),
    };
    // Only the object itself: links and credits are an event's to make.
    let changes: Vec<Change> = changes.into_iter().filter(is_synced_row).collect();
    let mut tx = store.begin().await?;
    apply_fetched(&mut tx, &changes, &mut SyncReport::default()).await?;
    tx.commit().await?;
    Ok(Outcome::Fetched)
}

fn is_synced_row(change: &Change) -> bool {
    matches!(
        change,
        Change::Customer(_)
            | Change::Subscription(_)
            | Change::Invoice(_)
            | Change::PaymentMethod(_)
            | Change::Product(_)
            | Change::Price(_)
            | Change::Entitlements(_)
            | Change::Feature(_)
    )
}

fn is_missing(err: &anyhow::Error) -> bool {
    err.downcast_ref::<StripeError>()
        .is_some_and(|e| e.status() == Some(StatusCode::NOT_FOUND))
}

/// The object's current state from Stripe, as the changes a fetch makes.
async fn fetch(stripe: &StripeClient, table: &str, id: &str) -> anyhow::Result<Vec<Change>> {
    let segment = path_segment(id);
    let fetched_at = unix_now();
    let version = |rank| fetched_version(fetched_at, rank);
    let changes = match table {
        "customers" => {
            let customer: FullCustomer = get(stripe, &format!("/v1/customers/{segment}")).await?;
            customer_changes(&customer, version(0), customer.deleted)
        }
        "subscriptions" => {
            let sub: Subscription = get(stripe, &format!("/v1/subscriptions/{segment}")).await?;
            let rank = subscription_status_rank(&sub.status);
            vec![Change::Subscription(subscription_row(&sub, version(rank))?)]
        }
        "invoices" => {
            let invoice: Invoice = get(stripe, &format!("/v1/invoices/{segment}")).await?;
            let rank = invoice_status_rank(invoice.status());
            invoice_changes(&invoice, version(rank), false)?
        }
        "payment_methods" => {
            let method: PaymentMethod =
                get(stripe, &format!("/v1/payment_methods/{segment}")).await?;
            vec![Change::PaymentMethod(payment_method_row(
                &method,
                version(0),
            ))]
        }
        "products" => {
            let product: Product = get(stripe, &format!("/v1/products/{segment}")).await?;
            vec![Change::Product(product_row(&product, version(0), false))]
        }
        "prices" => {
            let price: Price = get(stripe, &format!("/v1/prices/{segment}")).await?;
            vec![Change::Price(price_row(&price, version(0), false))]
        }
        "features" => {
            let feature: Feature =
                get(stripe, &format!("/v1/entitlements/features/{segment}")).await?;
            vec![Change::Feature(feature_row(&feature, version(0)))]
        }
        "customer_entitlements" => {
            let active: Vec<ActiveEntitlement> = stripe
                .list_all("/v1/entitlements/active_entitlements", &[("customer", id)])
                .await
                .with_context(|| format!("could not list the active entitlements of {id}"))?;
            vec![Change::Entitlements(entitlements_row(
                id,
                &active,
                version(0),
            ))]
        }
        other => anyhow::bail!("no way to fetch a row of {other}"),
    };
    Ok(changes)
}

async fn get<T: serde::de::DeserializeOwned>(
    stripe: &StripeClient,
    path: &str,
) -> anyhow::Result<T> {
    Ok(stripe.get(path).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff_secs(0), 5);
        assert_eq!(backoff_secs(1), 10);
        assert_eq!(backoff_secs(30), MAX_BACKOFF_SECS);
    }
}
