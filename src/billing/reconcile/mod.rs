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

mod report;

pub use report::{Resource, ResourceLine, SyncReport};

use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::apply_change;
use super::rules::{
    Change, checkout_changes, customer_changes, entitlements_row, feature_row, fetched_version,
    invoice_changes, invoice_status_rank, payment_method_row, price_row, product_row,
    subscription_row, subscription_status_rank,
};
use crate::domain::{OrgId, unix_now};
use crate::store::{Store, StoreError, SyncedRow, Tx};
use crate::stripe::objects::{
    ActiveEntitlement, CheckoutSession, FullCustomer, Invoice, List, PaymentMethod, Price, Product,
    ProductFeature as StripeProductFeature, Subscription,
};
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

async fn sync_catalog(
    store: &Store,
    stripe: &StripeClient,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let fetched_at = unix_now();
    let version = || fetched_version(fetched_at, 0);
    let products: Vec<Product> = read(
        report,
        Resource::Products,
        list_all(stripe, "/v1/products", &[]),
    )
    .await?
    .unwrap_or_default();
    // Plans are listed here too: a plan is the price of the same id.
    let prices: Vec<Price> = read(
        report,
        Resource::Prices,
        list_all(stripe, "/v1/prices", &[]),
    )
    .await?
    .unwrap_or_default();
    let features = product_features(stripe, &products, report).await?;
    let mut changes: Vec<Change> = products
        .iter()
        .map(|p| Change::Product(product_row(p, version(), false)))
        .collect();
    changes.extend(
        prices
            .iter()
            .map(|p| Change::Price(price_row(p, version(), false))),
    );
    for listed in features.values().flatten() {
        changes.push(Change::Feature(feature_row(
            &listed.entitlement_feature,
            version(),
        )));
    }
    let mut tx = store.begin().await?;
    apply_fetched(&mut tx, &changes, report).await?;
    for (product, listed) in &features {
        let ids: Vec<String> = listed
            .iter()
            .map(|f| f.entitlement_feature.id.clone())
            .collect();
        if tx.replace_product_features(product, &ids).await? {
            report.changed(Resource::Features);
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Each active product's features (`GET /v1/products/{id}/features`); a
/// product whose list is refused keeps the features it had.
async fn product_features(
    stripe: &StripeClient,
    products: &[Product],
    report: &mut SyncReport,
) -> anyhow::Result<BTreeMap<String, Vec<StripeProductFeature>>> {
    let mut features = BTreeMap::new();
    for product in products.iter().filter(|p| p.active && !p.deleted) {
        let path = format!("/v1/products/{}/features", path_segment(&product.id));
        if let Some(listed) = read(report, Resource::Features, list_all(stripe, &path, &[])).await?
        {
            features.insert(product.id.clone(), listed);
        }
    }
    Ok(features)
}

/// The customers to sync: one organization's, or the account's.
async fn customers_to_sync(
    store: &Store,
    stripe: &StripeClient,
    org: Option<&OrgId>,
    report: &mut SyncReport,
) -> anyhow::Result<Vec<FullCustomer>> {
    let linked = store.linked_customers().await?;
    match org {
        Some(org) => {
            let ids: Vec<String> = linked
                .into_iter()
                .filter(|(o, _)| o == org.as_str())
                .map(|(_, id)| id)
                .collect();
            customers_of_org(stripe, org, &ids, report).await
        }
        None => customers_of_account(stripe, &linked, report).await,
    }
}

/// One organization's customer: the linked one, read by id; when none is
/// linked, the one Stripe's search finds tagged with its `metadata.org_id`.
/// Never a list of the account's customers.
async fn customers_of_org(
    stripe: &StripeClient,
    org: &OrgId,
    linked: &[String],
    report: &mut SyncReport,
) -> anyhow::Result<Vec<FullCustomer>> {
    if linked.is_empty() {
        // An OrgId holds no quote, so it cannot break out of the query.
        let query = format!("metadata['org_id']:'{org}'");
        let search = async {
            let params = BTreeMap::from([("query", query.as_str()), ("limit", "100")]);
            let found: List<FullCustomer> = stripe
                .get_with_query("/v1/customers/search", &params)
                .await
                .with_context(|| format!("could not search the customers of {org}"))?;
            Ok(found.data)
        };
        let found = read(report, Resource::Customers, search)
            .await?
            .unwrap_or_default();
        return Ok(found
            .into_iter()
            .filter(|c| c.org_id() == Some(org.as_str()))
            .collect());
    }
    let mut customers = Vec::new();
    for id in linked {
        if let Some(found) = read(report, Resource::Customers, customer_by_id(stripe, id)).await? {
            customers.extend(found);
        }
    }
    Ok(customers)
}

async fn customer_by_id(stripe: &StripeClient, id: &str) -> anyhow::Result<Vec<FullCustomer>> {
    let customer: FullCustomer = stripe
        .get(&format!("/v1/customers/{}", path_segment(id)))
        .await
        .with_context(|| format!("could not fetch customer {id}"))?;
    Ok(vec![customer])
}

/// Customers tagged with `metadata.org_id`, plus those linked in our database
/// (for example by `org link`) whether tagged or not. When the list is
/// refused, the linked customers are still fetched one by one.
async fn customers_of_account(
    stripe: &StripeClient,
    linked: &[(String, String)],
    report: &mut SyncReport,
) -> anyhow::Result<Vec<FullCustomer>> {
    let listed = read(
        report,
        Resource::Customers,
        list_all::<FullCustomer>(stripe, "/v1/customers", &[]),
    )
    .await?
    .unwrap_or_default();
    let mut customers: Vec<FullCustomer> = listed
        .into_iter()
        .filter(|c| c.org_id().is_some() || linked.iter().any(|(_, id)| *id == c.id))
        .collect();
    // Linked customers the list did not return (deleted ones are not listed).
    let listed: HashSet<String> = customers.iter().map(|c| c.id.clone()).collect();
    for (_, id) in linked.iter().filter(|(_, id)| !listed.contains(id)) {
        if let Some(found) = read(report, Resource::Customers, customer_by_id(stripe, id)).await? {
            customers.extend(found);
        }
    }
    Ok(customers)
}

async fn sync_customer(
    store: &Store,
    stripe: &StripeClient,
    customer: &FullCustomer,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let id = customer.id.as_str();
    let fetched_at = unix_now();
    let mut changes = customer_changes(customer, fetched_version(fetched_at, 0), customer.deleted);
    let mut methods_listed = false;
    if !customer.deleted {
        let fetched = fetch_customer_objects(stripe, id, fetched_at, report).await?;
        methods_listed = fetched.methods_listed;
        changes.extend(fetched.changes);
    }
    // Fetch first, then write: the write lock is never held across the network.
    let mut tx = store.begin().await?;
    // Only a complete list of cards can tell which ones were detached.
    if methods_listed {
        changes.extend(detached_elsewhere(&mut tx, id, &changes, fetched_at).await?);
    }
    apply_fetched(&mut tx, &changes, report).await?;
    tx.commit().await?;
    Ok(())
}

struct CustomerObjects {
    changes: Vec<Change>,
    /// The payment methods were listed in full.
    methods_listed: bool,
}

async fn fetch_customer_objects(
    stripe: &StripeClient,
    customer: &str,
    fetched_at: i64,
    report: &mut SyncReport,
) -> anyhow::Result<CustomerObjects> {
    let of_customer = [("customer", customer)];
    let subscriptions: Vec<Subscription> = read(
        report,
        Resource::Subscriptions,
        list_all(
            stripe,
            "/v1/subscriptions",
            &[("customer", customer), ("status", "all")],
        ),
    )
    .await?
    .unwrap_or_default();
    let invoices: Vec<Invoice> = read(
        report,
        Resource::Invoices,
        list_all(stripe, "/v1/invoices", &of_customer),
    )
    .await?
    .unwrap_or_default();
    let methods: Option<Vec<PaymentMethod>> = read(
        report,
        Resource::PaymentMethods,
        list_all(
            stripe,
            &format!("/v1/customers/{}/payment_methods", path_segment(customer)),
            &[],
        ),
    )
    .await?;
    let mut changes = Vec::new();
    for sub in &subscriptions {
        let version = fetched_version(fetched_at, subscription_status_rank(&sub.status));
        let mut row = subscription_row(sub, version)?;
        if row.status == "past_due" {
            row.past_due_since = oldest_unpaid(&invoices, &sub.id);
        }
        changes.push(Change::Subscription(row));
    }
    for invoice in &invoices {
        let version = fetched_version(fetched_at, invoice_status_rank(invoice.status()));
        changes.extend(invoice_changes(invoice, version, false)?);
    }
    let entitlements: Option<Vec<ActiveEntitlement>> = read(
        report,
        Resource::Entitlements,
        list_all(stripe, "/v1/entitlements/active_entitlements", &of_customer),
    )
    .await?;
    if let Some(active) = &entitlements {
        let version = fetched_version(fetched_at, 0);
        changes.push(Change::Entitlements(entitlements_row(
            customer, active, version,
        )));
    }
    let methods_listed = methods.is_some();
    for method in methods.iter().flatten() {
        // Listed under this customer: attached to it, whatever the object says.
        let mut row = payment_method_row(method, fetched_version(fetched_at, 0));
        row.customer_id = Some(customer.to_owned());
        changes.push(Change::PaymentMethod(row));
    }
    Ok(CustomerObjects {
        changes,
        methods_listed,
    })
}

/// When the oldest invoice of `subscription` still open began to be owed:
/// when a subscription found past due became so, whatever the fetch's time.
fn oldest_unpaid(invoices: &[Invoice], subscription: &str) -> Option<i64> {
    invoices
        .iter()
        .filter(|i| i.subscription_id() == Some(subscription) && i.status() == Some("open"))
        .map(Invoice::owed_since)
        .min()
}

/// Cards we think are attached but Stripe no longer lists: a missed
/// `payment_method.detached`.
async fn detached_elsewhere(
    tx: &mut Tx,
    customer: &str,
    changes: &[Change],
    fetched_at: i64,
) -> Result<Vec<Change>, StoreError> {
    let listed: HashSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::PaymentMethod(row) => Some(row.id.as_str()),
            _ => None,
        })
        .collect();
    Ok(tx
        .attached_payment_methods(customer)
        .await?
        .into_iter()
        .filter(|row| !listed.contains(row.id.as_str()))
        .map(|mut row| {
            row.customer_id = None;
            row.version = fetched_version(fetched_at, 0);
            Change::PaymentMethod(row)
        })
        .collect())
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
