//! Reads of an organization's synced plan state, for the API and the pages.

use std::sync::Arc;

use super::cache::CacheKey;
use super::{ProductFeature, Store, StoreError, with_pool};
use crate::domain::unix_now;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub trial_end: Option<i64>,
    pub default_payment_method: Option<String>,
}

/// A payment method as the pages and the API show it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Card {
    pub id: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

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

#[derive(sqlx::FromRow)]
struct Summary {
    credit_balance: i64,
    synced_at: Option<i64>,
    portal_visited: bool,
    pm_id: Option<String>,
    brand: Option<String>,
    last4: Option<String>,
    exp_month: Option<i64>,
    exp_year: Option<i64>,
}

impl Summary {
    fn payment_method(&self) -> Option<Card> {
        Some(Card {
            id: self.pm_id.clone()?,
            brand: self.brand.clone(),
            last4: self.last4.clone(),
            exp_month: self.exp_month,
            exp_year: self.exp_year,
        })
    }
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

/// What the Plans tab shows: the plan state, the newest invoices, and the
/// features the subscribed products include.
#[derive(Debug, Clone, PartialEq)]
pub struct Plans {
    pub billing: BillingState,
    pub invoices: Vec<InvoiceView>,
    pub plan_features: Vec<ProductFeature>,
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
        let invoices = async {
            match key.customer {
                Some(c) => Ok(self
                    .invoices_page(c, None, key.variant)
                    .await?
                    .unwrap_or_default()),
                None => Ok(Vec::new()),
            }
        };
        let plan_features = async {
            match key.customer {
                Some(c) => self.features_of_subscribed_products(c).await,
                None => Ok(Vec::new()),
            }
        };
        let (billing, invoices, plan_features) = tokio::try_join!(
            self.billing_state(key.org, key.customer),
            invoices,
            plan_features,
        )?;
        Ok(Plans {
            billing,
            invoices,
            plan_features,
        })
    }

    /// The state for `org_id`, whose Stripe customer is `customer` (if any),
    /// in two queries: the page's hot path.
    pub async fn billing_state(
        &self,
        org_id: &str,
        customer: Option<&str>,
    ) -> Result<BillingState, StoreError> {
        let Some(customer) = customer else {
            return Ok(BillingState {
                subscriptions: Vec::new(),
                payment_method: None,
                credit_balance: self.credit_balance(org_id).await?,
                synced_at: None,
                portal_visited: false,
            });
        };
        let (subscriptions, summary) = tokio::try_join!(
            self.subscriptions_of(customer),
            self.summary(org_id, customer)
        )?;
        Ok(BillingState {
            subscriptions,
            payment_method: summary.payment_method(),
            credit_balance: summary.credit_balance,
            synced_at: summary.synced_at,
            portal_visited: summary.portal_visited,
        })
    }

    async fn subscriptions_of(&self, customer: &str) -> Result<Vec<SubscriptionView>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.id, s.status, s.price_id, s.product_id, COALESCE(p.name, s.plan_name) AS product_name, s.quantity, \
                 s.currency, s.unit_amount, s.recurring_interval, s.interval_count, \
                 s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.cancel_at, \
                 s.canceled_at, s.trial_end, s.default_payment_method \
                 FROM subscriptions s LEFT JOIN products p ON p.id = s.product_id \
                 WHERE s.customer_id = $1 ORDER BY s.created DESC, s.id DESC",
            )
            .bind(customer)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Everything else the plan state needs, in one round trip: the credit
    /// balance, when we last wrote anything for the customer, whether a
    /// portal session was opened since the last refresh, and the card to
    /// show (Stripe's invoice default, else the subscription's, else the
    /// most recently attached).
    async fn summary(&self, org_id: &str, customer: &str) -> Result<Summary, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT CAST(COALESCE((SELECT balance FROM credit_balances WHERE org_id = $1), 0) \
                   - COALESCE((SELECT SUM(remaining) FROM credit_lots WHERE org_id = $1 \
                     AND remaining > 0 AND expires_at <= $3), 0) AS BIGINT) AS credit_balance, \
                 (SELECT MAX(t) FROM ( \
                   SELECT MAX(updated_at) AS t FROM subscriptions WHERE customer_id = $2 \
                   UNION ALL SELECT MAX(updated_at) FROM invoices WHERE customer_id = $2 \
                   UNION ALL SELECT MAX(updated_at) FROM payment_methods WHERE customer_id = $2 \
                   UNION ALL SELECT MAX(updated_at) FROM customers WHERE id = $2) AS synced) AS synced_at, \
                 EXISTS (SELECT 1 FROM billing_audit a JOIN organizations o ON o.id = a.org_id \
                   WHERE a.org_id = $1 AND a.action = 'portal' \
                   AND a.created_at >= COALESCE(o.refreshed_at, 0)) AS portal_visited, \
                 pm.id AS pm_id, pm.brand, pm.last4, pm.exp_month, pm.exp_year \
                 FROM (SELECT 1 AS one) AS base LEFT JOIN ( \
                   SELECT id, brand, last4, exp_month, exp_year FROM payment_methods \
                   WHERE customer_id = $2 ORDER BY CASE WHEN id = COALESCE( \
                     (SELECT default_payment_method FROM customers WHERE id = $2), \
                     (SELECT default_payment_method FROM subscriptions WHERE customer_id = $2 \
                      AND default_payment_method IS NOT NULL ORDER BY created DESC, id DESC LIMIT 1)) \
                   THEN 0 ELSE 1 END, \
                   event_created DESC, id DESC LIMIT 1) AS pm ON TRUE",
            )
            .bind(org_id)
            .bind(customer)
            .bind(unix_now())
            .fetch_one(pool)
            .await?
        }))
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
                 ORDER BY created DESC, id DESC LIMIT $4",
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
