//! Writes of Stripe state inside a `Tx`, a statement a table for a whole
//! batch. Each upsert is the row's own (see `rows`); here is what a write
//! means for the caches: whose Plans tab it changed. Also the reads the sync
//! rules make inside the same transaction.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use super::rows::SyncedRow;
use super::sets::{Column, InsertRows, ListQuery, Values, repeated};
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
    /// Each write below takes all of a batch's rows for its table and writes
    /// them with one statement; it returns how many rows changed.
    pub async fn upsert_customers(&mut self, rows: Vec<CustomerRow>) -> Result<u64, StoreError> {
        let written = CustomerRow::upsert_all(rows, self).await?;
        for row in &written {
            self.changed.customer(&row.id);
            if let Some(org) = &row.org_id {
                self.changed.org(org);
            }
        }
        Ok(written.len() as u64)
    }

    pub async fn upsert_subscriptions(
        &mut self,
        rows: Vec<SubscriptionRow>,
    ) -> Result<u64, StoreError> {
        let written = SubscriptionRow::upsert_all(rows, self).await?;
        for row in &written {
            self.changed.customer(&row.customer_id);
        }
        self.replace_subscription_items(&written).await?;
        Ok(written.len() as u64)
    }

    /// Items are part of the subscription's snapshot: replaced with it.
    async fn replace_subscription_items(
        &mut self,
        subscriptions: &[SubscriptionRow],
    ) -> Result<(), StoreError> {
        static DELETE: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new("DELETE FROM subscription_items WHERE subscription_id {in_ids}")
        });
        let ids: Vec<&str> = subscriptions.iter().map(|s| s.id.as_str()).collect();
        self.execute_listed(&DELETE, &ids, None).await?;
        let items: Vec<(&str, &SubscriptionItemRow)> = subscriptions
            .iter()
            .flat_map(|s| s.items.iter().map(move |item| (s.id.as_str(), item)))
            .collect();
        SubscriptionItemRow::upsert_all(&items, self).await
    }

    pub async fn upsert_invoices(&mut self, rows: Vec<InvoiceRow>) -> Result<u64, StoreError> {
        let written = InvoiceRow::upsert_all(rows, self).await?;
        for row in &written {
            self.changed.customer(&row.customer_id);
        }
        Ok(written.len() as u64)
    }

    pub async fn upsert_payment_methods(
        &mut self,
        rows: Vec<PaymentMethodRow>,
    ) -> Result<u64, StoreError> {
        let written = PaymentMethodRow::upsert_all(rows, self).await?;
        for row in &written {
            match &row.customer_id {
                Some(customer) => self.changed.customer(customer),
                // Detached: the customer it leaves is not known here.
                None => self.changed.everything(),
            }
        }
        Ok(written.len() as u64)
    }

    pub async fn upsert_products(&mut self, rows: Vec<ProductRow>) -> Result<u64, StoreError> {
        let written = ProductRow::upsert_all(rows, self).await?;
        if !written.is_empty() {
            // Every subscription to them shows their name.
            self.changed.everything();
        }
        Ok(written.len() as u64)
    }

    pub async fn upsert_prices(&mut self, rows: Vec<PriceRow>) -> Result<u64, StoreError> {
        Ok(PriceRow::upsert_all(rows, self).await?.len() as u64)
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

    /// Records each grant once per source (the first of a batch wins); a
    /// repeat changes nothing.
    pub async fn grant_credits(&mut self, grants: Vec<CreditGrant>) -> Result<u64, StoreError> {
        static SQL: LazyLock<InsertRows> = LazyLock::new(|| {
            InsertRows::new(
                "credit_ledger",
                &[
                    "source_type",
                    "source_id",
                    "org_id",
                    "customer_id",
                    "amount",
                    "created_at",
                ],
                "ON CONFLICT (source_type, source_id) DO NOTHING RETURNING source_id",
            )
        });
        let mut seen = HashSet::new();
        let grants: Vec<CreditGrant> = grants
            .into_iter()
            .filter(|g| seen.insert((g.source_type, g.source_id.clone())))
            .collect();
        let n = grants.len();
        let columns = vec![
            Values::Text(
                grants
                    .iter()
                    .map(|g| Some(g.source_type.to_owned()))
                    .collect(),
            ),
            Column::column(grants.iter().map(|g| &g.source_id)),
            Column::column(grants.iter().map(|g| &g.org_id)),
            Column::column(grants.iter().map(|g| &g.customer_id)),
            Column::column(grants.iter().map(|g| &g.amount)),
            repeated(unix_now(), n),
        ];
        let granted: HashSet<String> = self.insert_rows(&SQL, columns).await?.into_iter().collect();
        let mut changed = 0;
        for grant in grants.iter().filter(|g| granted.contains(&g.source_id)) {
            changed += 1;
            if let Some(org) = &grant.org_id {
                self.changed.org(org);
            }
            if let Some(customer) = &grant.customer_id {
                self.changed.customer(customer);
            }
        }
        Ok(changed)
    }

    /// Credits one unit of each of `prices` grants, from the synced prices
    /// (prices that grant none are left out).
    pub async fn price_credits(
        &mut self,
        prices: &[&str],
    ) -> Result<HashMap<String, i64>, StoreError> {
        static SQL: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new(
                "SELECT id, credits FROM prices WHERE credits IS NOT NULL AND id {in_ids}",
            )
        });
        let credits: Vec<(String, i64)> = self.fetch_listed(&SQL, prices).await?;
        Ok(credits.into_iter().collect())
    }
}
