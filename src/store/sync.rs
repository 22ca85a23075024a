//! Writes of Stripe state. Every upsert is guarded by the row's version, in
//! SQL, so the guard holds across instances: the row changes only when the
//! incoming version is greater than the stored one.

use super::{StoreError, Tx, with_tx};
use crate::domain::unix_now;

/// Which write wins: compared as (created, rank, source).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// The event's `created`, or the fetch time for reconciliation.
    pub created: i64,
    /// Breaks same-second ties by the object's own state.
    pub rank: i64,
    /// The event id (or `sync`): the last, arbitrary but total, tie-breaker.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    pub id: String,
    pub org_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionItemRow {
    pub id: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub default_payment_method: Option<String>,
    pub created: i64,
    pub items: Vec<SubscriptionItemRow>,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceRow {
    pub id: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub number: Option<String>,
    pub status: Option<String>,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub total: i64,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub created: i64,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentMethodRow {
    pub id: String,
    pub customer_id: Option<String>,
    pub kind: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProductRow {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub active: bool,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceRow {
    pub id: String,
    pub product_id: Option<String>,
    pub active: bool,
    pub currency: String,
    pub unit_amount: Option<i64>,
    pub kind: Option<String>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    pub nickname: Option<String>,
    pub lookup_key: Option<String>,
    pub credits: Option<i64>,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreditGrant {
    pub source_type: &'static str,
    pub source_id: String,
    pub org_id: Option<String>,
    pub customer_id: Option<String>,
    pub amount: i64,
}

/// A row whose synced content can be fingerprinted, so reconciliation can
/// tell a real change from a version bump.
pub trait SyncedRow: std::fmt::Debug + Clone {
    const TABLE: SyncedTable;
    fn id(&self) -> &str;
    fn version_mut(&mut self) -> &mut Version;

    /// SHA-256 of the row's fields with the version blanked out.
    fn content_hash(&self) -> String {
        let mut content = self.clone();
        *content.version_mut() = Version::default();
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{content:?}").as_bytes(),
        );
        digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncedTable {
    Customers,
    Subscriptions,
    Invoices,
    PaymentMethods,
    Products,
    Prices,
}

macro_rules! synced_row {
    ($row:ty, $table:ident) => {
        impl SyncedRow for $row {
            const TABLE: SyncedTable = SyncedTable::$table;
            fn id(&self) -> &str {
                &self.id
            }
            fn version_mut(&mut self) -> &mut Version {
                &mut self.version
            }
        }
    };
}

synced_row!(CustomerRow, Customers);
synced_row!(SubscriptionRow, Subscriptions);
synced_row!(InvoiceRow, Invoices);
synced_row!(PaymentMethodRow, PaymentMethods);
synced_row!(ProductRow, Products);
synced_row!(PriceRow, Prices);

/// The guard every upsert ends with; `{t}` is the table name.
macro_rules! newer_than_stored {
    ($table:literal) => {
        concat!(
            " WHERE (",
            $table,
            ".event_created, ",
            $table,
            ".event_rank, ",
            $table,
            ".event_source)",
            " < (excluded.event_created, excluded.event_rank, excluded.event_source)"
        )
    };
}

impl Tx {
    /// Returns whether the row changed.
    pub async fn upsert_customer(&mut self, row: &CustomerRow) -> Result<bool, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO customers (id, org_id, email, name, default_payment_method, deleted, \
             event_created, event_rank, event_source, updated_at, content_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET org_id = COALESCE(excluded.org_id, customers.org_id), \
             email = excluded.email, name = excluded.name, \
             default_payment_method = excluded.default_payment_method, deleted = excluded.deleted, \
             event_created = excluded.event_created, event_rank = excluded.event_rank, \
             event_source = excluded.event_source, updated_at = excluded.updated_at, \
             content_hash = excluded.content_hash",
            newer_than_stored!("customers")
        );
        let v = &row.version;
        let affected = with_tx!(self, |conn| {
            sqlx::query(SQL)
                .bind(&row.id)
                .bind(&row.org_id)
                .bind(&row.email)
                .bind(&row.name)
                .bind(&row.default_payment_method)
                .bind(row.deleted)
                .bind(v.created)
                .bind(v.rank)
                .bind(&v.source)
                .bind(unix_now())
                .bind(row.content_hash())
                .execute(conn)
                .await?
                .rows_affected()
        });
        if affected > 0 {
            self.changed.customer(&row.id);
            if let Some(org) = &row.org_id {
                self.changed.org(org);
            }
        }
        Ok(affected > 0)
    }

    pub async fn upsert_subscription(&mut self, row: &SubscriptionRow) -> Result<bool, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO subscriptions (id, customer_id, status, price_id, product_id, quantity, currency, \
             unit_amount, recurring_interval, interval_count, current_period_start, current_period_end, \
             cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_start, trial_end, \
             default_payment_method, created, event_created, event_rank, event_source, updated_at, content_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20, $21, $22, $23, $24, $25) \
             ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status, \
             price_id = excluded.price_id, product_id = excluded.product_id, quantity = excluded.quantity, \
             currency = excluded.currency, unit_amount = excluded.unit_amount, \
             recurring_interval = excluded.recurring_interval, interval_count = excluded.interval_count, \
             current_period_start = excluded.current_period_start, \
             current_period_end = excluded.current_period_end, \
             cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at, \
             canceled_at = excluded.canceled_at, ended_at = excluded.ended_at, \
             trial_start = excluded.trial_start, trial_end = excluded.trial_end, \
             default_payment_method = excluded.default_payment_method, created = excluded.created, \
             event_created = excluded.event_created, event_rank = excluded.event_rank, \
             event_source = excluded.event_source, updated_at = excluded.updated_at, \
             content_hash = excluded.content_hash",
            newer_than_stored!("subscriptions")
        );
        let v = &row.version;
        let affected = with_tx!(self, |conn| {
            sqlx::query(SQL)
                .bind(&row.id)
                .bind(&row.customer_id)
                .bind(&row.status)
                .bind(&row.price_id)
                .bind(&row.product_id)
                .bind(row.quantity)
                .bind(&row.currency)
                .bind(row.unit_amount)
                .bind(&row.interval)
                .bind(row.interval_count)
                .bind(row.current_period_start)
                .bind(row.current_period_end)
                .bind(row.cancel_at_period_end)
                .bind(row.cancel_at)
                .bind(row.canceled_at)
                .bind(row.ended_at)
                .bind(row.trial_start)
                .bind(row.trial_end)
                .bind(&row.default_payment_method)
                .bind(row.created)
                .bind(v.created)
                .bind(v.rank)
                .bind(&v.source)
                .bind(unix_now())
                .bind(row.content_hash())
                .execute(conn)
                .await?
                .rows_affected()
        });
        if affected > 0 {
            self.changed.customer(&row.customer_id);
            self.replace_subscription_items(&row.id, &row.items).await?;
        }
        Ok(affected > 0)
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
                .execute(&mut *conn)
                .await?;
            for item in items {
                sqlx::query(
                    "INSERT INTO subscription_items (id, subscription_id, price_id, product_id, quantity, \
                     currency, unit_amount, recurring_interval, interval_count, current_period_start, \
                     current_period_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET subscription_id = excluded.subscription_id, \
                     price_id = excluded.price_id, product_id = excluded.product_id, \
                     quantity = excluded.quantity, currency = excluded.currency, \
                     unit_amount = excluded.unit_amount, recurring_interval = excluded.recurring_interval, \
                     interval_count = excluded.interval_count, \
                     current_period_start = excluded.current_period_start, \
                     current_period_end = excluded.current_period_end",
                )
                .bind(&item.id)
                .bind(subscription_id)
                .bind(&item.price_id)
                .bind(&item.product_id)
                .bind(item.quantity)
                .bind(&item.currency)
                .bind(item.unit_amount)
                .bind(&item.interval)
                .bind(item.interval_count)
                .bind(item.current_period_start)
                .bind(item.current_period_end)
                .execute(&mut *conn)
                .await?;
            }
        });
        Ok(())
    }

    pub async fn upsert_invoice(&mut self, row: &InvoiceRow) -> Result<bool, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO invoices (id, customer_id, subscription_id, number, status, currency, amount_due, \
             amount_paid, amount_remaining, total, hosted_invoice_url, invoice_pdf, period_start, \
             period_end, created, deleted, event_created, event_rank, event_source, updated_at, content_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20, $21) \
             ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
             subscription_id = excluded.subscription_id, number = excluded.number, \
             status = excluded.status, currency = excluded.currency, amount_due = excluded.amount_due, \
             amount_paid = excluded.amount_paid, amount_remaining = excluded.amount_remaining, \
             total = excluded.total, hosted_invoice_url = excluded.hosted_invoice_url, \
             invoice_pdf = excluded.invoice_pdf, period_start = excluded.period_start, \
             period_end = excluded.period_end, created = excluded.created, deleted = excluded.deleted, \
             event_created = excluded.event_created, event_rank = excluded.event_rank, \
             event_source = excluded.event_source, updated_at = excluded.updated_at, \
             content_hash = excluded.content_hash",
            newer_than_stored!("invoices")
        );
        let v = &row.version;
        let affected = with_tx!(self, |conn| {
            sqlx::query(SQL)
                .bind(&row.id)
                .bind(&row.customer_id)
                .bind(&row.subscription_id)
                .bind(&row.number)
                .bind(&row.status)
                .bind(&row.currency)
                .bind(row.amount_due)
                .bind(row.amount_paid)
                .bind(row.amount_remaining)
                .bind(row.total)
                .bind(&row.hosted_invoice_url)
                .bind(&row.invoice_pdf)
                .bind(row.period_start)
                .bind(row.period_end)
                .bind(row.created)
                .bind(row.deleted)
                .bind(v.created)
                .bind(v.rank)
                .bind(&v.source)
                .bind(unix_now())
                .bind(row.content_hash())
                .execute(conn)
                .await?
                .rows_affected()
        });
        if affected > 0 {
            self.changed.customer(&row.customer_id);
        }
        Ok(affected > 0)
    }

    pub async fn upsert_payment_method(
        &mut self,
        row: &PaymentMethodRow,
    ) -> Result<bool, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO payment_methods (id, customer_id, type, brand, last4, exp_month, exp_year, \
             event_created, event_rank, event_source, updated_at, content_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, type = excluded.type, \
             brand = excluded.brand, last4 = excluded.last4, exp_month = excluded.exp_month, \
             exp_year = excluded.exp_year, event_created = excluded.event_created, \
             event_rank = excluded.event_rank, event_source = excluded.event_source, \
             updated_at = excluded.updated_at, \
             content_hash = excluded.content_hash",
            newer_than_stored!("payment_methods")
        );
        let v = &row.version;
        let affected = with_tx!(self, |conn| {
            sqlx::query(SQL)
                .bind(&row.id)
                .bind(&row.customer_id)
                .bind(&row.kind)
                .bind(&row.brand)
                .bind(&row.last4)
                .bind(row.exp_month)
                .bind(row.exp_year)
                .bind(v.created)
                .bind(v.rank)
                .bind(&v.source)
                .bind(unix_now())
                .bind(row.content_hash())
                .execute(conn)
                .await?
                .rows_affected()
        });
        match (&row.customer_id, affected > 0) {
            (_, false) => {}
            (Some(customer), true) => self.changed.customer(customer),
            // Detached: the customer it leaves is not known here.
            (None, true) => self.changed.everything(),
        }
        Ok(affected > 0)
    }

    pub async fn upsert_product(&mut self, row: &ProductRow) -> Result<bool, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO products (id, name, description, active, deleted, event_created, event_rank, \
             event_source, updated_at, content_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, \
             active = excluded.active, deleted = excluded.deleted, event_created = excluded.event_created, \
             event_rank = excluded.event_rank, event_source = excluded.event_source, \
             updated_at = excluded.updated_at, \
             content_hash = excluded.content_hash",
            newer_than_stored!("products")
        );
        let v = &row.version;
        let affected = with_tx!(self, |conn| {
            sqlx::query(SQL)
                .bind(&row.id)
                .bind(&row.name)
                .bind(&row.description)
                .bind(row.active)
                .bind(row.deleted)
                .bind(v.created)
                .bind(v.rank)
                .bind(&v.source)
                .bind(unix_now())
                .bind(row.content_hash())
                .execute(conn)
                .await?
                .rows_affected()
        });
        if affected > 0 {
            // Every subscription to it shows its name.
            self.changed.everything();
        }
        Ok(affected > 0)
    }

    pub async fn upsert_price(&mut self, row: &PriceRow) -> Result<bool, StoreError> {
        const SQL: &str = concat!(
            "INSERT INTO prices (id, product_id, active, currency, unit_amount, type, recurring_interval, \
             interval_count, nickname, lookup_key, credits, deleted, event_created, event_rank, \
             event_source, updated_at, content_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (id) DO UPDATE SET product_id = excluded.product_id, active = excluded.active, \
             currency = excluded.currency, unit_amount = excluded.unit_amount, type = excluded.type, \
             recurring_interval = excluded.recurring_interval, interval_count = excluded.interval_count, \
             nickname = excluded.nickname, lookup_key = excluded.lookup_key, credits = excluded.credits, \
             deleted = excluded.deleted, event_created = excluded.event_created, \
             event_rank = excluded.event_rank, event_source = excluded.event_source, \
             updated_at = excluded.updated_at, \
             content_hash = excluded.content_hash",
            newer_than_stored!("prices")
        );
        let v = &row.version;
        let affected = with_tx!(self, |conn| {
            sqlx::query(SQL)
                .bind(&row.id)
                .bind(&row.product_id)
                .bind(row.active)
                .bind(&row.currency)
                .bind(row.unit_amount)
                .bind(&row.kind)
                .bind(&row.interval)
                .bind(row.interval_count)
                .bind(&row.nickname)
                .bind(&row.lookup_key)
                .bind(row.credits)
                .bind(row.deleted)
                .bind(v.created)
                .bind(v.rank)
                .bind(&v.source)
                .bind(unix_now())
                .bind(row.content_hash())
                .execute(conn)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// The stored fingerprint of a synced row, if the row exists.
    pub async fn stored_hash(
        &mut self,
        table: SyncedTable,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let sql = match table {
            SyncedTable::Customers => "SELECT content_hash FROM customers WHERE id = $1",
            SyncedTable::Subscriptions => "SELECT content_hash FROM subscriptions WHERE id = $1",
            SyncedTable::Invoices => "SELECT content_hash FROM invoices WHERE id = $1",
            SyncedTable::PaymentMethods => "SELECT content_hash FROM payment_methods WHERE id = $1",
            SyncedTable::Products => "SELECT content_hash FROM products WHERE id = $1",
            SyncedTable::Prices => "SELECT content_hash FROM prices WHERE id = $1",
        };
        Ok(with_tx!(self, |conn| {
            sqlx::query_scalar(sql)
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

    /// Links `customer` to `org` unless either is already linked elsewhere:
    /// the first link wins, so a late or replayed event cannot move a
    /// customer between organizations. Creates the organization row if needed.
    /// Returns whether the link was made now.
    pub async fn link_customer_if_free(
        &mut self,
        org: &str,
        customer: &str,
    ) -> Result<bool, StoreError> {
        let now = unix_now();
        let affected = with_tx!(self, |conn| {
            let taken: Option<String> =
                sqlx::query_scalar("SELECT id FROM organizations WHERE stripe_customer_id = $1")
                    .bind(customer)
                    .fetch_optional(&mut *conn)
                    .await?;
            // A late checkout or customer event must not relink a deleted customer.
            let deleted: Option<bool> =
                sqlx::query_scalar("SELECT deleted FROM customers WHERE id = $1")
                    .bind(customer)
                    .fetch_optional(&mut *conn)
                    .await?;
            if taken.is_some() || deleted == Some(true) {
                0
            } else {
                sqlx::query(
                    "INSERT INTO organizations (id, stripe_customer_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $3) ON CONFLICT (id) DO UPDATE \
                     SET stripe_customer_id = excluded.stripe_customer_id, updated_at = excluded.updated_at \
                     WHERE organizations.stripe_customer_id IS NULL",
                )
                .bind(org)
                .bind(customer)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected()
            }
        });
        if affected > 0 {
            self.changed.org(org);
        }
        Ok(affected > 0)
    }

    /// A deleted Stripe customer can no longer open the portal: forget the link.
    pub async fn unlink_customer(&mut self, customer: &str) -> Result<bool, StoreError> {
        let affected = with_tx!(self, |conn| {
            sqlx::query(
                "UPDATE organizations SET stripe_customer_id = NULL, updated_at = $2 \
                 WHERE stripe_customer_id = $1",
            )
            .bind(customer)
            .bind(unix_now())
            .execute(conn)
            .await?
            .rows_affected()
        });
        if affected > 0 {
            self.changed.customer(customer);
        }
        Ok(affected > 0)
    }

    /// The organization a customer is linked to, if any.
    pub async fn org_of_customer(&mut self, customer: &str) -> Result<Option<String>, StoreError> {
        Ok(with_tx!(self, |conn| {
            sqlx::query_scalar("SELECT id FROM organizations WHERE stripe_customer_id = $1")
                .bind(customer)
                .fetch_optional(conn)
                .await?
        }))
    }
}
