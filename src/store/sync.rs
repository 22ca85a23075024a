//! Writes of Stripe state inside a `Tx`. Each upsert is the row's own (see
//! `rows`); here is what a write means for the caches: whose Plans tab it
//! changed. Also the reads the sync rules make inside the same transaction.

use super::rows::SyncedRow;
use super::{
    CustomerRow, InvoiceRow, PaymentMethodRow, PriceRow, ProductRow, StoreError,
    SubscriptionItemRow, SubscriptionRow, Tx, Version, with_tx,
};
use crate::domain::unix_now;

#[derive(Debug, Clone, PartialEq)]
pub struct CreditGrant {
    pub source_type: &'static str,
    pub source_id: String,
    pub org_id: Option<String>,
    pub customer_id: Option<String>,
    pub amount: i64,
}

impl Tx {
    /// Returns whether the row changed.
    pub async fn upsert_customer(&mut self, row: &CustomerRow) -> Result<bool, StoreError> {
        let changed = row.upsert(self).await?;
        if changed {
            self.changed.customer(&row.id);
            if let Some(org) = &row.org_id {
                self.changed.org(org);
            }
        }
        Ok(changed)
    }

    pub async fn upsert_subscription(&mut self, row: &SubscriptionRow) -> Result<bool, StoreError> {
        let changed = row.upsert(self).await?;
        if changed {
            self.changed.customer(&row.customer_id);
            self.replace_subscription_items(&row.id, &row.items).await?;
        }
        Ok(changed)
    }

    /// Items are part of the subscription's snapshot: replaced with it.
    async fn replace_subscription_items(
        &mut self,
        subscription_id: &str,
        items: &[SubscriptionItemRow],
    ) -> Result<(), StoreError> {
        with_tx!(self, |conn| {
            sqlx::query("DELETE FROM subscription_items WHERE subscription_id = $1")
                .bind(subscription_id)
                .execute(conn)
                .await?;
        });
        for item in items {
            item.upsert(self, subscription_id).await?;
        }
        Ok(())
    }

    pub async fn upsert_invoice(&mut self, row: &InvoiceRow) -> Result<bool, StoreError> {
        let changed = row.upsert(self).await?;
        if changed {
            self.changed.customer(&row.customer_id);
        }
        Ok(changed)
    }

    pub async fn upsert_payment_method(
        &mut self,
        row: &PaymentMethodRow,
    ) -> Result<bool, StoreError> {
        let changed = row.upsert(self).await?;
        match (&row.customer_id, changed) {
            (_, false) => {}
            (Some(customer), true) => self.changed.customer(customer),
            // Detached: the customer it leaves is not known here.
            (None, true) => self.changed.everything(),
        }
        Ok(changed)
    }

    pub async fn upsert_product(&mut self, row: &ProductRow) -> Result<bool, StoreError> {
        let changed = row.upsert(self).await?;
        if changed {
            // Every subscription to it shows its name.
            self.changed.everything();
        }
        Ok(changed)
    }

    pub async fn upsert_price(&mut self, row: &PriceRow) -> Result<bool, StoreError> {
        row.upsert(self).await
    }

    /// The stored fingerprint of a synced row, if the row exists.
    pub async fn stored_hash<R: SyncedRow>(
        &mut self,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(with_tx!(self, |conn| {
            sqlx::query_scalar(R::SELECT_HASH)
                .bind(id)
                .fetch_optional(conn)
                .await?
        }))
    }

    /// Payment methods we think are attached to `customer`.
    pub async fn attached_payment_methods(
        &mut self,
        customer: &str,
    ) -> Result<Vec<PaymentMethodRow>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Attached {
            id: String,
            #[sqlx(rename = "type")]
            kind: String,
            brand: Option<String>,
            last4: Option<String>,
            exp_month: Option<i64>,
            exp_year: Option<i64>,
        }
        let rows: Vec<Attached> = with_tx!(self, |conn| {
            sqlx::query_as(
                "SELECT id, type, brand, last4, exp_month, exp_year FROM payment_methods WHERE customer_id = $1",
            )
            .bind(customer)
            .fetch_all(conn)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|row| PaymentMethodRow {
                id: row.id,
                customer_id: Some(customer.to_owned()),
                kind: row.kind,
                brand: row.brand,
                last4: row.last4,
                exp_month: row.exp_month,
                exp_year: row.exp_year,
                version: Version::default(),
            })
            .collect())
    }

    /// Records a grant once per source; a repeat changes nothing.
    pub async fn grant_credits(&mut self, grant: &CreditGrant) -> Result<bool, StoreError> {
        let affected = with_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO credit_ledger (source_type, source_id, org_id, customer_id, amount, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source_type, source_id) DO NOTHING",
            )
            .bind(grant.source_type)
            .bind(&grant.source_id)
            .bind(&grant.org_id)
            .bind(&grant.customer_id)
            .bind(grant.amount)
            .bind(unix_now())
            .execute(conn)
            .await?
            .rows_affected()
        });
        if affected > 0 {
            if let Some(org) = &grant.org_id {
                self.changed.org(org);
            }
            if let Some(customer) = &grant.customer_id {
                self.changed.customer(customer);
            }
        }
        Ok(affected > 0)
    }

    /// Credits one unit of `price_id` grants, from the synced prices.
    pub async fn price_credits(&mut self, price_id: &str) -> Result<Option<i64>, StoreError> {
        let credits: Option<Option<i64>> = with_tx!(self, |conn| {
            sqlx::query_scalar("SELECT credits FROM prices WHERE id = $1")
                .bind(price_id)
                .fetch_optional(conn)
                .await?
        });
        Ok(credits.flatten())
    }
}
