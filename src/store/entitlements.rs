//! Entitlements: a customer's active features, the features each product
//! includes, and the facts an organization's access is computed from (kept
//! in memory, dropped by every write that changes them, on every instance).

use std::sync::Arc;

use super::cache::CacheKey;
use super::{Store, StoreError, Tx, with_pool, with_tx};

/// What an organization's access answer is computed from. Access depends on
/// the time (a grace period ends), so the answer itself is not cached.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntitlementFacts {
    pub subscriptions: Vec<Standing>,
    /// The customer's active features (lookup keys), sorted.
    pub features: Vec<String>,
    /// When the features were last synced.
    pub synced_at: Option<i64>,
}

/// A subscription's standing, for the access rules.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Standing {
    pub status: String,
    pub past_due_since: Option<i64>,
    pub current_period_start: Option<i64>,
}

/// A feature a product includes.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Deserialize)]
pub struct ProductFeature {
    pub product_id: String,
    pub lookup_key: String,
    pub name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Stored {
    features: String,
    updated_at: i64,
}

/// Entitlement facts change rarely and every write drops them on every
/// instance; the time to live only bounds an announcement that was lost.
pub const ENTITLEMENTS_TTL_SECS: u64 = 60;

impl Store {
    /// The facts of `org` (whose customer is `customer`), from memory when
    /// cached.
    pub async fn entitlement_facts(
        &self,
        org: &str,
        customer: Option<&str>,
    ) -> Result<Arc<EntitlementFacts>, StoreError> {
        let key = CacheKey {
            org,
            customer,
            variant: 0,
        };
        self.caches
            .entitlements
            .get_or_read(key, || self.read_entitlement_facts(customer))
            .await
    }

    async fn read_entitlement_facts(
        &self,
        customer: Option<&str>,
    ) -> Result<EntitlementFacts, StoreError> {
        let Some(customer) = customer else {
            return Ok(EntitlementFacts::default());
        };
        let (subscriptions, stored) = tokio::try_join!(self.standings(customer), async {
            Ok(with_pool!(self, |pool| {
                sqlx::query_as::<_, Stored>(
                    "SELECT features, updated_at FROM customer_entitlements WHERE id = $1",
                )
                .bind(customer)
                .fetch_optional(pool)
                .await?
            }))
        })?;
        let features = match &stored {
            Some(row) => serde_json::from_str(&row.features)
                .map_err(|e| StoreError::Corrupt(format!("features of {customer}: {e}")))?,
            None => Vec::new(),
        };
        Ok(EntitlementFacts {
            subscriptions,
            features,
            synced_at: stored.map(|row| row.updated_at),
        })
    }

    async fn standings(&self, customer: &str) -> Result<Vec<Standing>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT status, past_due_since, current_period_start FROM subscriptions \
                 WHERE customer_id = $1",
            )
            .bind(customer)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every product's features, for the offers on the Plans tab.
    pub async fn product_features(&self) -> Result<Vec<ProductFeature>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT pf.product_id, f.lookup_key, f.name FROM product_features pf \
                 JOIN features f ON f.id = pf.feature_id WHERE f.active = TRUE \
                 ORDER BY pf.product_id, f.name, f.lookup_key",
            )
            .fetch_all(pool)
            .await?
        }))
    }
}

impl Tx {
    /// The features `product` includes, as Stripe lists them now.
    pub async fn replace_product_features(
        &mut self,
        product: &str,
        features: &[String],
    ) -> Result<bool, StoreError> {
        let stored: Vec<String> = with_tx!(self, |conn| {
            sqlx::query_scalar(
                "SELECT feature_id FROM product_features WHERE product_id = $1 ORDER BY feature_id",
            )
            .bind(product)
            .fetch_all(&mut *conn)
            .await?
        });
        let mut wanted = features.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        if stored == wanted {
            return Ok(false);
        }
        with_tx!(self, |conn| {
            sqlx::query("DELETE FROM product_features WHERE product_id = $1")
                .bind(product)
                .execute(&mut *conn)
                .await?;
            for feature in &wanted {
                sqlx::query(
                    "INSERT INTO product_features (product_id, feature_id) VALUES ($1, $2)",
                )
                .bind(product)
                .bind(feature)
                .execute(&mut *conn)
                .await?;
            }
        });
        self.changed.everything();
        Ok(true)
    }
}
