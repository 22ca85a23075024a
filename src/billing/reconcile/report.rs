//! What a reconciliation did, one line per resource: how many objects it
//! fetched, how many changes it applied, and what it could not read.

use std::collections::BTreeMap;
use std::fmt;

use crate::billing::rules::Change;

/// The resources a sync reads, in the order it reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Products,
    Prices,
    Customers,
    Subscriptions,
    Invoices,
    PaymentMethods,
    Entitlements,
    Features,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Products => "products",
            Self::Prices => "prices",
            Self::Customers => "customers",
            Self::Subscriptions => "subscriptions",
            Self::Invoices => "invoices",
            Self::PaymentMethods => "payment methods",
            Self::Entitlements => "entitlements",
            Self::Features => "product features",
        }
    }

    /// The resource a change belongs to.
    pub fn of(change: &Change) -> Self {
        match change {
            Change::Customer(_)
            | Change::LinkCustomer { .. }
            | Change::UnverifiedCheckout { .. }
            | Change::UnlinkCustomer(_) => Self::Customers,
            Change::Subscription(_) => Self::Subscriptions,
            Change::Invoice(_)
            | Change::InvoiceCredits { .. }
            | Change::GrantCredits(_)
            | Change::Reversal(_) => Self::Invoices,
            Change::PaymentMethod(_) => Self::PaymentMethods,
            Change::Product(_) => Self::Products,
            Change::Price(_) => Self::Prices,
            Change::Entitlements(_) => Self::Entitlements,
            Change::Feature(_) => Self::Features,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResourceLine {
    pub fetched: usize,
    pub changed: usize,
    /// Reads that failed, and the first failure's words.
    pub failures: usize,
    pub first_error: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub customers: usize,
    pub fetched: usize,
    pub changed: usize,
    pub resources: BTreeMap<Resource, ResourceLine>,
}

impl SyncReport {
    pub fn fetched(&mut self, resource: Resource, count: usize) {
        self.fetched += count;
        self.resources.entry(resource).or_default().fetched += count;
    }

    pub fn changed(&mut self, resource: Resource) {
        self.changed += 1;
        self.resources.entry(resource).or_default().changed += 1;
    }

    /// A read that failed; the sync goes on with what it could read.
    pub fn failed(&mut self, resource: Resource, error: &anyhow::Error) {
        log::warn!("sync could not read {}: {error:#}", resource.name());
        let line = self.resources.entry(resource).or_default();
        line.failures += 1;
        line.first_error.get_or_insert_with(|| format!("{error:#}"));
    }

    /// The resources that could not be read, by name.
    pub fn unreadable(&self) -> Vec<&'static str> {
        self.resources
            .iter()
            .filter(|(_, line)| line.failures > 0)
            .map(|(resource, _)| resource.name())
            .collect()
    }

    /// One line per resource, for the command line and the admin page.
    pub fn lines(&self) -> Vec<String> {
        self.resources
            .iter()
            .map(|(resource, line)| match &line.first_error {
                None => format!(
                    "{}: fetched {}, changed {}",
                    resource.name(),
                    line.fetched,
                    line.changed
                ),
                Some(error) => format!(
                    "{}: fetched {}, changed {}, {} read(s) failed: {error}",
                    resource.name(),
                    line.fetched,
                    line.changed,
                    line.failures
                ),
            })
            .collect()
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "synced {} customer(s): fetched {} object(s) from Stripe, {} change(s) applied",
            self.customers, self.fetched, self.changed
        )?;
        let unreadable = self.unreadable();
        if !unreadable.is_empty() {
            write!(f, "; could not read {}", unreadable.join(", "))?;
        }
        Ok(())
    }
}
