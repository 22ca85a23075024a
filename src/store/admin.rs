//! Reads for the operators' pages: every organization's plan state, and one
//! organization's ledger, cards and events.

use super::{Card, Store, StoreError, StoredEvent, with_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AdminOrgRow {
    pub id: String,
    /// Clerk's name of the organization, else its slug.
    pub name: Option<String>,
    /// When Clerk deleted it: its billing is left to an operator.
    pub deleted_at: Option<i64>,
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

#[derive(Debug, Clone, Default)]
pub struct AdminFilter {
    pub status: Option<String>,
    pub search: Option<String>,
}

/// The admin list's statement with `$where` as its filter; `$1` and `$2`
/// are the limit and offset.
macro_rules! admin_list {
    ($where:literal) => {
        concat!(
            "SELECT o.id, COALESCE(o.name, o.slug) AS name, o.deleted_at, o.stripe_customer_id, s.id AS subscription_id, s.status, \
             COALESCE(p.name, s.plan_name) AS product_name, s.quantity, s.unit_amount, s.currency, \
             s.recurring_interval, s.interval_count, s.current_period_end, s.cancel_at_period_end, \
             s.cancel_at, \
             CAST(COALESCE((SELECT b.balance FROM credit_balances b WHERE b.org_id = o.id), 0) \
               AS BIGINT) AS credit_balance, \
             (SELECT MAX(event_created) FROM subscriptions s3 WHERE s3.customer_id = o.stripe_customer_id) \
               AS last_event_at \
             FROM organizations o \
             LEFT JOIN subscriptions s ON s.id = ",
            // The subscription that describes an organization: its newest.
            "(SELECT s2.id FROM subscriptions s2 WHERE s2.customer_id = o.stripe_customer_id \
             ORDER BY s2.created DESC, s2.id DESC LIMIT 1)",
            " LEFT JOIN products p ON p.id = s.product_id WHERE ",
            $where,
            " ORDER BY o.id LIMIT CAST($1 AS BIGINT) OFFSET CAST($2 AS BIGINT)"
        )
    };
}

impl Store {
    /// A page of organizations. Each filter combination is its own
    /// statement: PostgreSQL's generic plan of one statement with optional
    /// filters (`$1 = '' OR …`) evaluated every organization before the
    /// `LIMIT` (96 ms at 10,000 organizations); without a filter this walks
    /// the primary key and stops at the page.
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
        let sql = match (&filter.status, &search) {
            (None, None) => admin_list!("TRUE"),
            (Some(_), None) => admin_list!("s.status = $3"),
            (None, Some(_)) => {
                admin_list!(
                    "(LOWER(o.id) LIKE $3 OR LOWER(COALESCE(o.slug, '')) LIKE $3 \
                     OR LOWER(COALESCE(o.name, '')) LIKE $3)"
                )
            }
            (Some(_), Some(_)) => admin_list!(
                "s.status = $3 AND (LOWER(o.id) LIKE $4 OR LOWER(COALESCE(o.slug, '')) LIKE $4 \
                 OR LOWER(COALESCE(o.name, '')) LIKE $4)"
            ),
        };
        Ok(with_pool!(self, |pool| {
            let mut query = sqlx::query_as(sql).bind(limit).bind(offset);
            if let Some(status) = &filter.status {
                query = query.bind(status.as_str());
            }
            if let Some(search) = &search {
                query = query.bind(search.as_str());
            }
            query.fetch_all(pool).await?
        }))
    }

    pub async fn payment_methods_of(&self, customer: &str) -> Result<Vec<Card>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, brand, last4, exp_month, exp_year FROM payment_methods \
                 WHERE customer_id = $1 ORDER BY event_created DESC, id",
            )
            .bind(customer)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The events about `customer` received last.
    pub async fn events_of_customer(
        &self,
        customer: &str,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, type, created, livemode, payload, received_at, processed_at, attempts, \
                 last_error FROM stripe_events WHERE customer_id = $1 \
                 ORDER BY received_at_us DESC LIMIT CAST($2 AS BIGINT)",
            )
            .bind(customer)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
