//! Reads and writes for the pages: the catalog, audit records, and the
//! operators' view of every organization.

use super::{Store, StoreError, with_pool};

/// An active recurring price on offer, with its product's name.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CatalogPrice {
    pub id: String,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    pub unit_amount: Option<i64>,
    pub currency: String,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
    pub credits: Option<i64>,
}

/// One row of the admin list: an organization and its main subscription.
impl Store {
    pub async fn catalog(&self) -> Result<Vec<CatalogPrice>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT pr.id, pr.product_id, COALESCE(p.name, pr.nickname) AS product_name, pr.unit_amount, pr.currency, pr.recurring_interval, \
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
                "SELECT pr.id, pr.product_id, COALESCE(p.name, pr.nickname) AS product_name, pr.unit_amount, pr.currency, pr.recurring_interval, \
                 pr.interval_count, pr.credits FROM prices pr LEFT JOIN products p ON p.id = pr.product_id \
                 WHERE pr.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }
}
