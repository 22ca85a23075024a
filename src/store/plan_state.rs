//! Reads of an organization's synced plan state, for the API and the pages.

use std::sync::Arc;

use serde::Deserialize;

use super::cache::CacheKey;
use super::plans_document::{Lines, PeriodUsage, flag};
use super::{CreditEntry, CreditLot, ProductFeature, Store, StoreError, with_pool};
use crate::domain::unix_now;

/// How many of the credits ledger's newest entries the Plans tab shows.
const RECENT_CREDIT_ENTRIES: i64 = 5;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Deserialize)]
pub struct SubscriptionView {
    pub id: String,
    pub status: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    pub quantity: Option<i64>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    #[serde(deserialize_with = "flag")]
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub trial_end: Option<i64>,
    pub default_payment_method: Option<String>,
}

/// A payment method as the pages and the API show it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Deserialize)]
pub struct Card {
    pub id: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

/// An invoice as the Plans tab's billing history lists it: what the page
/// shows, and the id that orders invoices of one second, nothing more,
/// since each value read is paid for on every load.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InvoiceLine {
    pub id: String,
    pub number: Option<String>,
    pub status: Option<String>,
    pub currency: String,
    pub total: i64,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub created: i64,
}

/// An invoice as the API and the admin pages show it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InvoiceView {
    pub id: String,
    pub number: Option<String>,
    pub status: Option<String>,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub total: i64,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub subscription_id: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub created: i64,
}

/// An organization's synced plan state.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingState {
    pub subscriptions: Vec<SubscriptionView>,
    pub payment_method: Option<Card>,
    pub credit_balance: i64,
    /// When we last wrote anything for this customer (unix seconds).
    pub synced_at: Option<i64>,
    /// A portal session was opened since the state was last fetched from
    /// Stripe: what the page shows may be stale.
    pub portal_visited: bool,
}

/// What the Plans tab shows: the plan state, the newest invoices, the
/// features the subscribed products include, the credits ledger's newest
/// entries, the credits that expire, and this period's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct Plans {
    pub billing: BillingState,
    pub invoices: Vec<InvoiceLine>,
    pub plan_features: Vec<ProductFeature>,
    pub credit_entries: Vec<CreditEntry>,
    /// Soonest first.
    pub expiring: Vec<CreditLot>,
    pub usage: PeriodUsage,
}

impl Store {
    /// The Plans tab's reads for `org_id` (whose Stripe customer is
    /// `customer`), with its `history` newest invoices: from the cache when
    /// fresh, else read concurrently and kept.
    pub async fn plans(
        &self,
        org_id: &str,
        customer: Option<&str>,
        history: i64,
    ) -> Result<Arc<Plans>, StoreError> {
        let key = CacheKey {
            org: org_id,
            customer,
            variant: history,
        };
        self.caches
            .plans
            .get_or_read(key, || self.read_plans(key))
            .await
    }

    async fn read_plans(&self, key: CacheKey<'_>) -> Result<Plans, StoreError> {
        let lines = Lines {
            invoices: key.variant,
            credit_entries: RECENT_CREDIT_ENTRIES,
        };
        Ok(self
            .plans_document(key.org, key.customer, lines, unix_now())
            .await?
            .into_plans())
    }

    /// The state for `org_id`, whose Stripe customer is `customer` (if any),
    /// read now.
    pub async fn billing_state(
        &self,
        org_id: &str,
        customer: Option<&str>,
    ) -> Result<BillingState, StoreError> {
        let document = self
            .plans_document(org_id, customer, Lines::NONE, unix_now())
            .await?;
        Ok(document.into_plans().billing)
    }

    /// `org_id`'s usage of the billing period that holds now.
    pub async fn usage_this_period(
        &self,
        org_id: &str,
        customer: Option<&str>,
    ) -> Result<PeriodUsage, StoreError> {
        let document = self
            .plans_document(org_id, customer, Lines::NONE, unix_now())
            .await?;
        Ok(document.into_plans().usage)
    }

    /// One page of a customer's invoices, newest first, after the invoice
    /// `starting_after` (keyset pagination: stable while new invoices arrive).
    /// `None` when `starting_after` is not one of this customer's invoices.
    pub async fn invoices_page(
        &self,
        customer: &str,
        starting_after: Option<&str>,
        limit: i64,
    ) -> Result<Option<Vec<InvoiceView>>, StoreError> {
        let cursor = match starting_after {
            None => (i64::MAX, String::new()),
            Some(id) => match self.invoice_created(customer, id).await? {
                Some(created) => (created, id.to_owned()),
                None => return Ok(None),
            },
        };
        let page = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, number, status, currency, amount_due, amount_paid, total, hosted_invoice_url, \
                 invoice_pdf, subscription_id, period_start, period_end, created FROM invoices \
                 WHERE customer_id = $1 AND deleted = FALSE \
                 AND (created < $2 OR (created = $2 AND ($3 = '' OR id < $3))) \
                 ORDER BY created DESC, id DESC LIMIT CAST($4 AS BIGINT)",
            )
            .bind(customer)
            .bind(cursor.0)
            .bind(&cursor.1)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(Some(page))
    }

    /// The customer a synced subscription belongs to.
    pub async fn subscription_customer(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT customer_id FROM subscriptions WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    async fn invoice_created(&self, customer: &str, id: &str) -> Result<Option<i64>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT created FROM invoices WHERE id = $1 AND customer_id = $2")
                .bind(id)
                .bind(customer)
                .fetch_optional(pool)
                .await?
        }))
    }
}
