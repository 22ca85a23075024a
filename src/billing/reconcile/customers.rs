//! Customers, fetched: which to sync, and each one's subscriptions,
//! invoices, payment methods and entitlements.

use std::collections::HashSet;

use anyhow::Context;

use super::{Resource, SyncReport, apply_fetched, list_all, read};
use crate::billing::rules::{
    Change, customer_changes, entitlements_row, fetched_version, invoice_changes,
    invoice_status_rank, payment_method_row, subscription_row, subscription_status_rank,
};
use crate::domain::{OrgId, unix_now};
use crate::store::{Store, StoreError, Tx};
use crate::stripe::objects::{
    ActiveEntitlement, FullCustomer, Invoice, List, PaymentMethod, Subscription,
};
use crate::stripe::{StripeClient, path_segment};

/// The customers to sync: one organization's, or the account's.
pub(super) async fn customers_to_sync(
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
            let params = [("query", query.as_str()), ("limit", "100")];
            let found: List<FullCustomer> = stripe
                .get_with_query("/v1/customers/search", params)
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

pub(super) async fn sync_customer(
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
