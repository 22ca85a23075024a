//! Writing what the rules decided. A batch's changes are grouped by table:
//! the synced tables, which do not depend on each other, are written
//! together with the record of the batch's events (one statement on
//! PostgreSQL; more only when one object comes in
//! several versions whose upsert keeps something of the stored row, see
//! `store::rows::layers`); then the steps that read what they wrote:
//! customers before the links they allow or forbid, prices before the
//! credits invoices grant by them.

use std::collections::{HashMap, HashSet};

use super::rules::{Change, CreditLine};
use crate::store::{CreditGrant, EventRecord, StoreError, SyncedRows, Tx};

/// Applies `changes` (of any number of events); returns how many rows they
/// actually altered (0 for stale or repeated writes).
pub async fn apply_changes(tx: &mut Tx, changes: &[Change]) -> Result<u64, StoreError> {
    let mut tables = ByTable::default();
    for change in changes {
        tables.add(None, change.clone());
    }
    Ok(tables.write(tx, &[]).await?.1)
}

/// Applies one change; returns whether it altered anything.
pub async fn apply_change(tx: &mut Tx, change: &Change) -> Result<bool, StoreError> {
    Ok(apply_changes(tx, std::slice::from_ref(change)).await? > 0)
}

/// Records `events` and applies what each planned (`planned`: an event's
/// id and its changes), the record in the tables' statement; returns the
/// ids recorded now. The synced rows of every planned event go into that
/// statement, since each is version-guarded: a row of an event applied
/// before changes nothing. The other changes (links, credits), which are
/// not, are applied for the events recorded now alone.
pub async fn record_and_apply(
    tx: &mut Tx,
    events: &[EventRecord<'_>],
    planned: &[(&str, &[Change])],
) -> Result<HashSet<String>, StoreError> {
    let mut tables = ByTable::default();
    for (event, changes) in planned {
        for change in *changes {
            tables.add(Some(event), change.clone());
        }
    }
    Ok(tables.write(tx, events).await?.0)
}

/// A paid invoice's lines, whose prices may grant credits.
struct InvoiceCredits {
    invoice: String,
    customer: String,
    lines: Vec<CreditLine>,
}

/// A change that is not version-guarded, and the event it came from (none
/// when it came from no delivery, e.g. reconciliation).
type FromEvent<T> = (Option<String>, T);

#[derive(Default)]
struct ByTable {
    /// The synced tables' rows, written together.
    synced: SyncedRows,
    unlinks: Vec<FromEvent<String>>,
    /// (organization, customer), in arrival order: the first link wins.
    links: Vec<FromEvent<(String, String)>>,
    /// (session, organization, customer) of checkouts to verify first.
    unverified: Vec<FromEvent<(String, String, Option<String>)>>,
    grants: Vec<FromEvent<CreditGrant>>,
    invoice_credits: Vec<FromEvent<InvoiceCredits>>,
}

impl ByTable {
    fn add(&mut self, event: Option<&str>, change: Change) {
        let synced = &mut self.synced;
        let from = event.map(str::to_owned);
        match change {
            Change::Customer(row) => synced.customers.push(row),
            Change::Entitlements(row) => synced.entitlements.push(row),
            Change::Feature(row) => synced.features.push(row),
            Change::UnlinkCustomer(customer) => self.unlinks.push((from, customer)),
            Change::LinkCustomer { org, customer } => {
                self.links.push((from, (org.to_string(), customer)));
            }
            Change::UnverifiedCheckout {
                session,
                org,
                customer,
            } => self
                .unverified
                .push((from, (session, org.to_string(), customer))),
            Change::Subscription(row) => synced.subscriptions.push(row),
            Change::Invoice(row) => synced.invoices.push(row),
            Change::InvoiceCredits {
                invoice,
                customer,
                lines,
            } => self.invoice_credits.push((
                from,
                InvoiceCredits {
                    invoice,
                    customer,
                    lines,
                },
            )),
            Change::PaymentMethod(row) => synced.payment_methods.push(row),
            Change::Product(row) => synced.products.push(row),
            Change::Price(row) => synced.prices.push(row),
            Change::GrantCredits(grant) => self.grants.push((from, grant)),
        }
    }

    /// Records `events` with the synced rows, then applies the other
    /// changes of the events recorded now (and those of no event). Returns
    /// the ids recorded now, and how many rows changed.
    async fn write(
        self,
        tx: &mut Tx,
        events: &[EventRecord<'_>],
    ) -> Result<(HashSet<String>, u64), StoreError> {
        let (recorded, mut changed) = tx.record_and_upsert_synced(events, self.synced).await?;
        let unlinks = of_recorded(self.unlinks, &recorded);
        let unlinks: Vec<&str> = unlinks.iter().map(String::as_str).collect();
        changed += tx.unlink_customers(&unlinks).await?;
        let mut links = of_recorded(self.links, &recorded);
        for (session, org, customer) in of_recorded(self.unverified, &recorded) {
            if tx.checkout_created_here(&session, &org).await? {
                links.extend(customer.map(|customer| (org, customer)));
            } else {
                log::warn!(
                    "checkout {session} names organization {org} but was not created by this \
                     service for it: not linked, flagged for an operator"
                );
                tx.flag_foreign_checkout(&session, &org, customer.as_deref())
                    .await?;
            }
        }
        changed += tx.link_customers_if_free(&links).await?;
        let mut grants = of_recorded(self.grants, &recorded);
        let invoice_credits = of_recorded(self.invoice_credits, &recorded);
        grants.extend(invoice_grants(tx, &invoice_credits).await?);
        changed += tx.grant_credits(grants).await?;
        Ok((recorded, changed))
    }
}

/// The changes of the events recorded now, and of no event.
fn of_recorded<T>(changes: Vec<FromEvent<T>>, recorded: &HashSet<String>) -> Vec<T> {
    changes
        .into_iter()
        .filter(|(event, _)| event.as_ref().is_none_or(|e| recorded.contains(e)))
        .map(|(_, change)| change)
        .collect()
}

/// A paid invoice grants `credits × quantity` for each line whose price
/// carries `metadata.credits` (once per invoice: the ledger keys it). The
/// prices the payloads do not embed, and the organizations of the
/// customers, are read once for the whole batch.
async fn invoice_grants(
    tx: &mut Tx,
    invoices: &[InvoiceCredits],
) -> Result<Vec<CreditGrant>, StoreError> {
    let mut unknown: Vec<&str> = invoices
        .iter()
        .flat_map(|i| &i.lines)
        .filter(|line| line.credits_per_unit.is_none())
        .filter_map(|line| line.price_id.as_deref())
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    let price_credits = tx.price_credits(&unknown).await?;
    let amounts: Vec<(&InvoiceCredits, i64)> = invoices
        .iter()
        .map(|invoice| (invoice, credits_of(&invoice.lines, &price_credits)))
        .filter(|(_, amount)| *amount > 0)
        .collect();
    let customers: Vec<&str> = amounts.iter().map(|(i, _)| i.customer.as_str()).collect();
    let orgs = tx.orgs_of_customers(&customers).await?;
    Ok(amounts
        .into_iter()
        .map(|(invoice, amount)| CreditGrant {
            source_type: "invoice",
            source_id: invoice.invoice.clone(),
            org_id: orgs.get(&invoice.customer).cloned(),
            customer_id: Some(invoice.customer.clone()),
            amount,
        })
        .collect())
}

fn credits_of(lines: &[CreditLine], price_credits: &HashMap<String, i64>) -> i64 {
    lines.iter().fold(0i64, |total, line| {
        let per_unit = line.credits_per_unit.or_else(|| {
            line.price_id
                .as_ref()
                .and_then(|price| price_credits.get(price).copied())
        });
        total.saturating_add(per_unit.unwrap_or(0).saturating_mul(line.quantity))
    })
}
