//! Everything the Plans tab shows of one organization, read in one statement
//! that answers two JSON values: its customer's synced parts (the
//! subscriptions, the card, the newest invoices, the subscribed products'
//! features, when last synced), kept per customer as one document
//! (`synced_plans`) and read from the rows only while that is to build; and
//! its own (the credit balance, the credits ledger's newest entries, the
//! lots that expire, this period's usage per meter). One round trip instead
//! of one per part: on SQLite each statement and each row is a hand-off to
//! a connection's thread, and those hand-offs, not the reads, were what a
//! page cost.

mod statements;

use serde::{Deserialize, Deserializer};

use self::statements::texts;
use super::synced_plans::BuiltPlans;
use super::{
    BillingState, Card, CreditEntry, CreditLot, InvoiceLine, MeterUsage, Plans, ProductFeature,
    Store, StoreError, SubscriptionView, with_pool,
};
use crate::domain::calendar_month;

/// How many of the newest lines a document holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lines {
    pub invoices: i64,
    pub credit_entries: i64,
}

impl Lines {
    pub const NONE: Self = Self {
        invoices: 0,
        credit_entries: 0,
    };
}

/// The usage of the billing period that holds the time of the read: the
/// live subscription's current period, else the calendar month (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PeriodUsage {
    pub starts: i64,
    pub ends: i64,
    /// Per meter, by name.
    #[serde(default)]
    pub meters: Vec<MeterUsage>,
}

/// What only Stripe's deliveries change: kept per customer (`synced_plans`).
#[derive(Debug, Deserialize)]
struct SyncedParts {
    #[serde(default)]
    subscriptions: Vec<SubscriptionView>,
    payment_method: Option<Card>,
    synced_at: Option<i64>,
    #[serde(default)]
    invoices: Vec<InvoiceLine>,
    #[serde(default)]
    plan_features: Vec<ProductFeature>,
}

/// The synced parts of an organization without a Stripe customer.
const NO_CUSTOMER: &str = "{}";

/// What the organization's own rows hold.
#[derive(Debug, Deserialize)]
struct OwnParts {
    credit_balance: i64,
    #[serde(deserialize_with = "flag")]
    portal_visited: bool,
    #[serde(default)]
    credit_entries: Vec<CreditEntry>,
    #[serde(default)]
    expiring: Vec<CreditLot>,
    usage: PeriodUsage,
}

#[derive(Debug)]
pub(super) struct Document {
    own: OwnParts,
    synced: SyncedParts,
    /// How many of the newest invoices to show.
    invoices: usize,
}

impl Document {
    fn parse(org_id: &str, own: &str, synced: &str, lines: Lines) -> Result<Self, StoreError> {
        let corrupt =
            |e: serde_json::Error| StoreError::Corrupt(format!("the Plans read of {org_id}: {e}"));
        Ok(Self {
            own: serde_json::from_str(own).map_err(corrupt)?,
            synced: serde_json::from_str(synced).map_err(corrupt)?,
            invoices: usize::try_from(lines.invoices).unwrap_or(0),
        })
    }

    /// The lists in the orders the page shows them. The statements leave
    /// them unordered: on PostgreSQL 15 an aggregate's own `ORDER BY` sorts
    /// again what its subquery already chose, with a sort set up for every
    /// list at every read.
    pub fn into_plans(self) -> Plans {
        let Self {
            mut own,
            mut synced,
            invoices,
        } = self;
        synced
            .invoices
            .sort_unstable_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        synced.invoices.truncate(invoices);
        synced.plan_features.sort_unstable_by(|a, b| {
            (&a.product_id, &a.name, &a.lookup_key).cmp(&(&b.product_id, &b.name, &b.lookup_key))
        });
        own.credit_entries.sort_unstable_by(|a, b| {
            (b.created_at, &b.kind, &b.source_id).cmp(&(a.created_at, &a.kind, &a.source_id))
        });
        own.expiring.sort_unstable_by(|a, b| {
            (a.expires_at, &a.source_type, &a.source_id).cmp(&(
                b.expires_at,
                &b.source_type,
                &b.source_id,
            ))
        });
        own.usage
            .meters
            .sort_unstable_by(|a, b| a.meter.cmp(&b.meter));
        Plans {
            billing: BillingState {
                subscriptions: synced.subscriptions,
                payment_method: synced.payment_method,
                credit_balance: own.credit_balance,
                synced_at: synced.synced_at,
                portal_visited: own.portal_visited,
            },
            invoices: synced.invoices,
            plan_features: synced.plan_features,
            credit_entries: own.credit_entries,
            expiring: own.expiring,
            usage: own.usage,
        }
    }
}

/// A boolean as either backend writes it into JSON: `true` on PostgreSQL,
/// `1` on SQLite, which has no booleans.
pub(super) fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flag::deserialize(deserializer)? {
        Flag::Bool(b) => b,
        Flag::Int(n) => n != 0,
    })
}

/// How many invoices the Plans tab's billing history shows: the newest
/// invoices a kept document holds.
pub const PLANS_HISTORY: i64 = 24;

#[derive(Clone, Copy)]
enum Read {
    /// The organization's own parts and the customer's kept document.
    Kept,
    /// Every part from the rows.
    All,
}

impl Store {
    /// The Plans tab's whole read of `org_id` (whose Stripe customer is
    /// `customer`) at `now`, in one statement: its customer's kept document
    /// when there is one to serve `lines`, else every part from the rows.
    pub(super) async fn plans_document(
        &self,
        org_id: &str,
        customer: Option<&str>,
        lines: Lines,
        now: i64,
    ) -> Result<Document, StoreError> {
        if lines.invoices <= PLANS_HISTORY {
            let (own, kept) = self.read(Read::Kept, org_id, customer, lines, now).await?;
            match (customer, kept) {
                (_, Some(kept)) => return Document::parse(org_id, &own, &kept, lines),
                (None, None) => return Document::parse(org_id, &own, NO_CUSTOMER, lines),
                (Some(_), None) => {}
            }
        }
        let (own, synced) = self.read(Read::All, org_id, customer, lines, now).await?;
        let synced = synced.unwrap_or_else(|| NO_CUSTOMER.to_owned());
        Document::parse(org_id, &own, &synced, lines)
    }

    async fn read(
        &self,
        read: Read,
        org_id: &str,
        customer: Option<&str>,
        lines: Lines,
        now: i64,
    ) -> Result<(String, Option<String>), StoreError> {
        let (month_starts, month_ends) = calendar_month(now);
        let text = match read {
            Read::Kept => &texts(self).read_kept,
            Read::All => &texts(self).read_all,
        };
        Ok(with_pool!(self, |pool| {
            let query = sqlx::query_as(text.as_str())
                .bind(org_id)
                .bind(now)
                .bind(customer)
                .bind(lines.credit_entries)
                .bind(month_starts)
                .bind(month_ends);
            match read {
                Read::Kept => query.fetch_one(pool).await?,
                Read::All => query.bind(lines.invoices).fetch_one(pool).await?,
            }
        }))
    }

    /// `customer`'s synced parts as the rows hold them now, with the
    /// version of its `synced_plans` row in the same snapshot; `None` when
    /// it has no row.
    pub async fn build_synced_plans_of(
        &self,
        customer: &str,
    ) -> Result<Option<BuiltPlans>, StoreError> {
        let row: Option<(i64, String)> = with_pool!(self, |pool| {
            sqlx::query_as(texts(self).build.as_str())
                .bind(customer)
                .bind(PLANS_HISTORY)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(version, document)| BuiltPlans {
            customer: customer.to_owned(),
            version,
            document,
        }))
    }
}

#[cfg(test)]
mod tests;
