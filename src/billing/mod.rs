//! Sync rules: what Stripe's events and fetched objects do to our state.
//! `rules` decides (pure), `apply_changes` writes inside the caller's
//! transaction, `ingest` batches webhook deliveries into durable commits,
//! and `reconcile` repairs what webhooks missed.

pub mod access;
pub mod catchup;
pub mod checkout;
pub mod endpoint;
pub mod ingest;
pub mod reconcile;
pub mod replay;
pub mod revenue;
pub mod rules;
pub mod snapshot;
pub mod versions;

pub use ingest::{IngestError, Ingested, Ingestor};
pub use rules::{Change, PlanError, plan};

use crate::store::{CreditGrant, StoreError, Tx};

/// How many rows the changes actually altered (0 for a stale or repeated write).
pub async fn apply_changes(tx: &mut Tx, changes: &[Change]) -> Result<u64, StoreError> {
    let mut changed = 0;
    for change in changes {
        if apply_change(tx, change).await? {
            changed += 1;
        }
    }
    Ok(changed)
}

pub(crate) async fn apply_change(tx: &mut Tx, change: &Change) -> Result<bool, StoreError> {
    match change {
        Change::Customer(row) => tx.upsert_customer(row).await,
        Change::Entitlements(row) => tx.upsert_entitlements(row).await,
        Change::Feature(row) => tx.upsert_feature(row).await,
        Change::UnlinkCustomer(customer) => tx.unlink_customer(customer).await,
        Change::LinkCustomer { org, customer } => {
            tx.link_customer_if_free(org.as_str(), customer).await
        }
        Change::Subscription(row) => tx.upsert_subscription(row).await,
        Change::Invoice(row) => tx.upsert_invoice(row).await,
        Change::InvoiceCredits {
            invoice,
            customer,
            lines,
        } => grant_invoice_credits(tx, invoice, customer, lines).await,
        Change::PaymentMethod(row) => tx.upsert_payment_method(row).await,
        Change::Product(row) => tx.upsert_product(row).await,
        Change::Price(row) => tx.upsert_price(row).await,
        Change::GrantCredits(grant) => tx.grant_credits(grant).await,
    }
}

/// A paid invoice grants `credits × quantity` for each line whose price
/// carries `metadata.credits`, once per invoice.
async fn grant_invoice_credits(
    tx: &mut Tx,
    invoice: &str,
    customer: &str,
    lines: &[rules::CreditLine],
) -> Result<bool, StoreError> {
    let mut amount = 0i64;
    for line in lines {
        let per_unit = match (line.credits_per_unit, &line.price_id) {
            (Some(credits), _) => Some(credits),
            (None, Some(price)) => tx.price_credits(price).await?,
            (None, None) => None,
        };
        amount = amount.saturating_add(per_unit.unwrap_or(0).saturating_mul(line.quantity));
    }
    if amount <= 0 {
        return Ok(false);
    }
    let org_id = tx.org_of_customer(customer).await?;
    tx.grant_credits(&CreditGrant {
        source_type: "invoice",
        source_id: invoice.to_owned(),
        org_id,
        customer_id: Some(customer.to_owned()),
        amount,
    })
    .await
}
