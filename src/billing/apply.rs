//! Writing what the rules decided. A batch's changes are grouped by table:
//! the synced tables, which do not depend on each other, are written
//! together with the record of the batch's events (one statement on
//! PostgreSQL; more only when one object comes in
//! several versions whose upsert keeps something of the stored row, see
//! `store::synced::layers`); then the steps that read what they wrote:
//! customers before the links they allow or forbid, prices before the
//! credits invoices grant by them.

use std::collections::{HashMap, HashSet};

use super::credits;
use super::rules::{Change, CreditLine};
use crate::store::{CreditGrant, EventRecord, Reversal, StoreError, SyncedRows, Tx};

/// What applying changes did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Rows actually altered (0 for stale or repeated writes).
    pub changed: u64,
    /// Why some changes were held back, to be applied again later (the
    /// credits of an invoice line whose price is not synced yet).
    pub held: Vec<String>,
}

/// Applies `changes` (of any number of events, or of none).
pub async fn apply_changes(tx: &mut Tx, changes: &[Change]) -> Result<Applied, StoreError> {
    let mut tables = ByTable::default();
    for change in changes {
        tables.add(None, change.clone());
    }
    let written = tables.write(tx, &[]).await?;
    Ok(Applied {
        changed: written.changed,
        held: written.held.into_iter().map(|(_, reason)| reason).collect(),
    })
}

/// Applies one change; returns whether it altered anything.
pub async fn apply_change(tx: &mut Tx, change: &Change) -> Result<bool, StoreError> {
    Ok(apply_changes(tx, std::slice::from_ref(change))
        .await?
        .changed
        > 0)
}

/// Records `events` and applies what each planned (`planned`: an event's
/// id and its changes), the record in the tables' statement. The synced
/// rows of every planned event go into that statement, since each is
/// version-guarded: a row of an event applied before changes nothing. The
/// other changes (links, credits), which are not, are applied for the
/// events recorded now alone. An event some of whose changes were held
/// back is marked failed, so a replay applies it again.
pub async fn record_and_apply(
    tx: &mut Tx,
    events: &[EventRecord<'_>],
    planned: &[(&str, &[Change])],
) -> Result<Recorded, StoreError> {
    let mut tables = ByTable::default();
    for (event, changes) in planned {
        for change in *changes {
            tables.add(Some(event), change.clone());
        }
    }
    let written = tables.write(tx, events).await?;
    let mut held = HashMap::new();
    for (event, reason) in written.held {
        if let Some(event) = event {
            tx.mark_event_failed(&event, &reason).await?;
            held.insert(event, reason);
        }
    }
    Ok(Recorded {
        ids: written.recorded,
        held,
    })
}

/// The events a batch recorded now, and those of them held back (failed,
/// with why).
pub struct Recorded {
    pub ids: HashSet<String>,
    pub held: HashMap<String, String>,
}

/// What `ByTable::write` did.
struct Written {
    recorded: HashSet<String>,
    changed: u64,
    /// Changes held back, by the event they came from.
    held: Vec<FromEvent<String>>,
}

/// A paid invoice's lines, whose prices may grant credits.
struct InvoiceCredits {
    invoice: String,
    customer: String,
    payment_intent: Option<String>,
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
    reversals: Vec<FromEvent<Reversal>>,
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
                payment_intent,
                lines,
            } => self.invoice_credits.push((
                from,
                InvoiceCredits {
                    invoice,
                    customer,
                    payment_intent,
                    lines,
                },
            )),
            Change::Reversal(reversal) => self.reversals.push((from, reversal)),
            Change::PaymentMethod(row) => synced.payment_methods.push(row),
            Change::Product(row) => synced.products.push(row),
            Change::Price(row) => synced.prices.push(row),
            Change::GrantCredits(grant) => self.grants.push((from, grant)),
        }
    }

    /// Records `events` with the synced rows, then applies the other
    /// changes of the events recorded now (and those of no event).
    async fn write(self, tx: &mut Tx, events: &[EventRecord<'_>]) -> Result<Written, StoreError> {
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
        let invoice_credits = recorded_now(self.invoice_credits, &recorded);
        let (invoice_grants, held) = invoice_grants(tx, invoice_credits).await?;
        grants.extend(invoice_grants);
        let reversals = of_recorded(self.reversals, &recorded);
        tx.record_reversals(&reversals).await?;
        let (payments, invoices) = credits::reversal_keys(&grants, &reversals);
        changed += tx.grant_credits(grants).await?;
        changed += credits::settle_reversals(tx, &payments, &invoices).await?;
        Ok(Written {
            recorded,
            changed,
            held,
        })
    }
}

/// The changes of the events recorded now, and of no event.
fn of_recorded<T>(changes: Vec<FromEvent<T>>, recorded: &HashSet<String>) -> Vec<T> {
    recorded_now(changes, recorded)
        .into_iter()
        .map(|(_, change)| change)
        .collect()
}

/// The same, each with the event it came from.
fn recorded_now<T>(changes: Vec<FromEvent<T>>, recorded: &HashSet<String>) -> Vec<FromEvent<T>> {
    changes
        .into_iter()
        .filter(|(event, _)| event.as_ref().is_none_or(|e| recorded.contains(e)))
        .collect()
}

/// A paid invoice grants `credits × quantity` for each line whose price
/// carries `metadata.credits` (once per invoice: the ledger keys it). The
/// prices the payloads do not embed, and the organizations of the
/// customers, are read once for the whole batch. An invoice with a line
/// whose price is not synced yet grants nothing now: it is held back (its
/// event failed, replayed after the catch-up brings the price), never
/// granted as if the price granted none.
async fn invoice_grants(
    tx: &mut Tx,
    invoices: Vec<FromEvent<InvoiceCredits>>,
) -> Result<(Vec<CreditGrant>, Vec<FromEvent<String>>), StoreError> {
    let mut unknown: Vec<&str> = invoices
        .iter()
        .flat_map(|(_, i)| &i.lines)
        .filter(|line| line.credits_per_unit.is_none())
        .filter_map(|line| line.price_id.as_deref())
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    let synced = tx.price_credits(&unknown).await?;
    let mut held = Vec::new();
    let mut amounts: Vec<(&InvoiceCredits, i64)> = Vec::new();
    for (event, invoice) in &invoices {
        match credits_of(&invoice.lines, &synced) {
            Ok(amount) if amount > 0 => amounts.push((invoice, amount)),
            Ok(_) => {}
            Err(price) => {
                let reason = format!(
                    "invoice {} has a line of price {price}, not synced yet: its credits wait \
                     for the price (replayed after the catch-up)",
                    invoice.invoice
                );
                log::warn!("{reason}");
                held.push((event.clone(), reason));
            }
        }
    }
    let customers: Vec<&str> = amounts.iter().map(|(i, _)| i.customer.as_str()).collect();
    let orgs = tx.orgs_of_customers(&customers).await?;
    let grants = amounts
        .into_iter()
        .map(|(invoice, amount)| CreditGrant {
            source_type: "invoice",
            source_id: invoice.invoice.clone(),
            org_id: orgs.get(&invoice.customer).cloned(),
            customer_id: Some(invoice.customer.clone()),
            amount,
            payment_intent: invoice.payment_intent.clone(),
        })
        .collect();
    Ok((grants, held))
}

/// Credits `lines` grant, or the first price they name that is not synced.
fn credits_of(lines: &[CreditLine], synced: &HashMap<String, Option<i64>>) -> Result<i64, String> {
    lines.iter().try_fold(0i64, |total, line| {
        let per_unit = match (line.credits_per_unit, &line.price_id) {
            (Some(per_unit), _) => per_unit,
            (None, Some(price)) => match synced.get(price) {
                Some(credits) => credits.unwrap_or(0),
                None => return Err(price.clone()),
            },
            (None, None) => 0,
        };
        Ok(total.saturating_add(per_unit.saturating_mul(line.quantity)))
    })
}
