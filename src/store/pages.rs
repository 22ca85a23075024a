//! Reads and writes for the pages: the catalog, audit records, and the
//! operators' view of every organization.

use super::{Store, StoreError, with_pool};
use crate::domain::unix_now;

/// An active recurring price on offer, with its product's name.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CatalogPrice {
    pub id: String,
    pub product_name: Option<String>,
    pub unit_amount: Option<i64>,
    pub currency: String,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
    pub credits: Option<i64>,
}

/// One row of the admin list: an organization and its main subscription.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AdminOrgRow {
    pub id: String,
    pub slug: Option<String>,
    pub stripe_customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub product_name: Option<String>,
    pub quantity: Option<i64>,
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: Option<bool>,
    pub cancel_at: Option<i64>,
    pub credit_balance: i64,
    pub last_event_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LedgerEntry {
    pub source_type: String,
    pub source_id: String,
    pub amount: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentMethodRowView {
    pub id: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
    pub customer_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AdminFilter {
    pub status: Option<String>,
    pub search: Option<String>,
}

impl Store {
    pub async fn catalog(&self) -> Result<Vec<CatalogPrice>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT pr.id, p.name AS product_name, pr.unit_amount, pr.currency, pr.recurring_interval, \
                 pr.interval_count, pr.credits FROM prices pr LEFT JOIN products p ON p.id = pr.product_id \
                 WHERE pr.active = TRUE AND pr.deleted = FALSE AND pr.recurring_interval IS NOT NULL \
                 AND (p.id IS NULL OR (p.active = TRUE AND p.deleted = FALSE)) \
                 ORDER BY pr.unit_amount, pr.id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn price(&self, id: &str) -> Result<Option<CatalogPrice>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT pr.id, p.name AS product_name, pr.unit_amount, pr.currency, pr.recurring_interval, \
                 pr.interval_count, pr.credits FROM prices pr LEFT JOIN products p ON p.id = pr.product_id \
                 WHERE pr.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn mark_refreshed(&self, org_id: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE organizations SET refreshed_at = $2 WHERE id = $1")
                .bind(org_id)
                .bind(unix_now() + 1)
                .execute(pool)
                .await?;
        });
        self.plans.invalidate_org(org_id);
        Ok(())
    }

    pub async fn admin_organizations(
        &self,
        filter: &AdminFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<AdminOrgRow>, StoreError> {
        let search = filter
            .search
            .as_deref()
            .map(|s| format!("%{}%", s.to_lowercase()));
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(concat!(
                "SELECT o.id, o.slug, o.stripe_customer_id, s.id AS subscription_id, s.status, \
                 p.name AS product_name, s.quantity, s.unit_amount, s.currency, s.recurring_interval, \
                 s.interval_count, s.current_period_end, s.cancel_at_period_end, s.cancel_at, \
                 CAST((SELECT COALESCE(SUM(l.amount), 0) FROM credit_ledger l \
                       WHERE l.org_id = o.id OR l.customer_id = o.stripe_customer_id) AS BIGINT) AS credit_balance, \
                 (SELECT MAX(event_created) FROM subscriptions s3 WHERE s3.customer_id = o.stripe_customer_id) \
                   AS last_event_at \
                 FROM organizations o \
                 LEFT JOIN subscriptions s ON s.id = ",
                // The subscription that describes an organization: its newest.
                "(SELECT s2.id FROM subscriptions s2 WHERE s2.customer_id = o.stripe_customer_id \
                 ORDER BY s2.created DESC, s2.id DESC LIMIT 1)",
                " LEFT JOIN products p ON p.id = s.product_id \
                 WHERE ($1 = '' OR s.status = $1) \
                 AND ($2 = '' OR LOWER(o.id) LIKE $2 OR LOWER(COALESCE(o.slug, '')) LIKE $2) \
                 ORDER BY o.id LIMIT $3 OFFSET $4"
            ))
            .bind(filter.status.as_deref().unwrap_or(""))
            .bind(search.as_deref().unwrap_or(""))
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn credit_ledger(
        &self,
        org_id: &str,
        customer: Option<&str>,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT source_type, source_id, amount, created_at FROM credit_ledger \
                 WHERE org_id = $1 OR customer_id = $2 ORDER BY created_at DESC, source_id DESC LIMIT 100",
            )
            .bind(org_id)
            .bind(customer)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn payment_methods_of(
        &self,
        customer: &str,
    ) -> Result<Vec<PaymentMethodRowView>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, brand, last4, exp_month, exp_year, customer_id FROM payment_methods \
                 WHERE customer_id = $1 ORDER BY event_created DESC, id",
            )
            .bind(customer)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Recent events that mention `customer` (their payloads name it).
    pub async fn events_of_customer(
        &self,
        customer: &str,
        limit: i64,
    ) -> Result<Vec<super::StoredEvent>, StoreError> {
        let needle = format!("%\"{customer}\"%");
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, type, created, payload, received_at, processed_at, attempts, last_error \
                 FROM stripe_events WHERE payload LIKE $1 ORDER BY created DESC, id DESC LIMIT $2",
            )
            .bind(&needle)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
