//! Writes of Stripe state inside a `Tx`, a statement a table for a whole
//! batch. Each upsert is the row's own (see `tables`); here is what a write
//! means for the caches: whose Plans tab it changed. Also the reads the sync
//! rules make inside the same transaction.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use super::Version;
use super::layers::Round;
use super::row::SyncedRow;
use super::tables::{
    CustomerRow, EntitlementsRow, FeatureRow, InvoiceRow, PaymentMethodRow, PriceRow, ProductRow,
    SubscriptionItemRow, SubscriptionRow,
};
use crate::store::sets::ListQuery;
use crate::store::{EventRecord, StoreError, Tx, with_tx};

/// A batch's synced rows, a table each, written by `Tx::record_and_upsert_synced`.
#[derive(Debug, Default)]
pub struct SyncedRows {
    pub products: Vec<ProductRow>,
    pub prices: Vec<PriceRow>,
    pub features: Vec<FeatureRow>,
    pub customers: Vec<CustomerRow>,
    pub subscriptions: Vec<SubscriptionRow>,
    pub invoices: Vec<InvoiceRow>,
    pub payment_methods: Vec<PaymentMethodRow>,
    pub entitlements: Vec<EntitlementsRow>,
}

impl Tx {
    /// Writes a batch's rows of every synced table, and records `events`
    /// (`EventRecord::statement`, none for a write of no delivery). None of
    /// these depend on each other, so they go together with the written
    /// subscriptions' items (one statement on PostgreSQL), then any later
    /// layers. The rows need not wait for the record to say which events are
    /// new: each is version-guarded, so a row of an event applied before
    /// changes nothing. Returns the ids recorded now, and how many rows
    /// changed.
    pub async fn record_and_upsert_synced(
        &mut self,
        events: &[EventRecord<'_>],
        rows: SyncedRows,
    ) -> Result<(HashSet<String>, u64), StoreError> {
        let mut round = Round::default();
        let record = (!events.is_empty()).then(|| {
            let (sql, columns) = EventRecord::statement(events);
            round.also(sql, columns)
        });
        let products = round.add(rows.products);
        let prices = round.add(rows.prices);
        let features = round.add(rows.features);
        let customers = round.add(rows.customers);
        let subscriptions = round.add_owning(
            rows.subscriptions,
            SubscriptionItemRow::owned_by_subscriptions(),
            SubscriptionItemRow::columns_of,
        );
        let invoices = round.add(rows.invoices);
        let payment_methods = round.add(rows.payment_methods);
        let entitlements = round.add(rows.entitlements);
        let written = round.write(self).await?;
        let mut changed = 0;
        let products = products.finish(&written, self).await?;
        changed += self.wrote_products(&products);
        changed += prices.finish(&written, self).await?.len() as u64;
        let features = features.finish(&written, self).await?;
        changed += self.wrote_features(&features);
        let customers = customers.finish(&written, self).await?;
        changed += self.wrote_customers(&customers);
        let subscriptions = subscriptions.finish(&written, self).await?;
        changed += self.wrote_subscriptions(&subscriptions);
        let invoices = invoices.finish(&written, self).await?;
        changed += self.wrote_invoices(&invoices);
        let payment_methods = payment_methods.finish(&written, self).await?;
        changed += self.wrote_payment_methods(&payment_methods);
        let entitlements = entitlements.finish(&written, self).await?;
        changed += self.wrote_entitlements(&entitlements);
        let recorded = record
            .and_then(|i| written.get(i))
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        Ok((recorded, changed))
    }

    // What each table's written rows mean for the caches: whose Plans tab
    // they changed. Each returns how many rows were written.

    fn wrote_customers(&mut self, written: &[CustomerRow]) -> u64 {
        for row in written {
            self.changed.customer(&row.id);
            if let Some(org) = &row.org_id {
                self.changed.org(org);
            }
        }
        written.len() as u64
    }

    /// Their items were replaced with them (`Round::add_owning`).
    fn wrote_subscriptions(&mut self, written: &[SubscriptionRow]) -> u64 {
        for row in written {
            self.changed.customer(&row.customer_id);
        }
        written.len() as u64
    }

    fn wrote_invoices(&mut self, written: &[InvoiceRow]) -> u64 {
        for row in written {
            self.changed.customer(&row.customer_id);
        }
        written.len() as u64
    }

    fn wrote_payment_methods(&mut self, written: &[PaymentMethodRow]) -> u64 {
        for row in written {
            match &row.customer_id {
                Some(customer) => self.changed.customer(customer),
                // Detached: the customer it leaves is not known here.
                None => self.changed.everything(),
            }
        }
        written.len() as u64
    }

    fn wrote_products(&mut self, written: &[ProductRow]) -> u64 {
        if !written.is_empty() {
            // Every subscription to them shows their name.
            self.changed.everything();
        }
        written.len() as u64
    }

    fn wrote_entitlements(&mut self, written: &[EntitlementsRow]) -> u64 {
        for row in written {
            self.changed.customer(&row.id);
        }
        written.len() as u64
    }

    fn wrote_features(&mut self, written: &[FeatureRow]) -> u64 {
        if !written.is_empty() {
            // Their names show on every Plans tab that lists them.
            self.changed.everything();
        }
        written.len() as u64
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

    /// Credits one unit of each of `prices` grants (`None`: it grants
    /// none), for the prices synced; a price not synced is left out.
    pub async fn price_credits(
        &mut self,
        prices: &[&str],
    ) -> Result<HashMap<String, Option<i64>>, StoreError> {
        static SQL: LazyLock<ListQuery> =
            LazyLock::new(|| ListQuery::new("SELECT id, credits FROM prices WHERE id {in_ids}"));
        let credits: Vec<(String, Option<i64>)> = self.fetch_listed(&SQL, prices).await?;
        Ok(credits.into_iter().collect())
    }
}
