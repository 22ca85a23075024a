//! Reads for the operators' overview: recurring revenue by price shape,
//! subscriptions by status, who is at risk, events per day, the daily
//! revenue snapshots, and the subscriptions export a page at a time.

use super::{Store, StoreError, with_pool};

/// Subscriptions of one status, currency and price shape, with their total
/// amount billed per period (unit amount × quantity).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecurringGroup {
    pub status: String,
    pub currency: String,
    pub recurring_interval: String,
    pub interval_count: i64,
    pub amount: i64,
    pub subscriptions: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatusCount {
    pub status: String,
    pub subscriptions: i64,
}

/// A subscription that may stop paying: past due, unpaid, or set to cancel.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AtRisk {
    pub org_id: Option<String>,
    /// Clerk's name of the organization, else its slug.
    pub org_name: Option<String>,
    pub subscription_id: String,
    pub status: String,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventsOnDay {
    pub day: i64,
    pub received: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Snapshot {
    pub day: i64,
    pub currency: String,
    pub mrr: i64,
    pub in_trial: i64,
    pub subscriptions: i64,
    pub estimate: bool,
}

/// A subscription as the export shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExportRow {
    pub id: String,
    pub org_id: Option<String>,
    /// Clerk's name of the organization, else its slug.
    pub org_name: Option<String>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub status: String,
    pub plan: Option<String>,
    pub recurring_interval: Option<String>,
    pub interval_count: Option<i64>,
    pub quantity: Option<i64>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub created: i64,
}

/// A subscription's lifetime and price, for estimating past revenue.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Lifetime {
    pub subscription: String,
    pub status: String,
    pub currency: String,
    pub recurring_interval: String,
    pub interval_count: i64,
    pub amount: i64,
    pub created: i64,
    pub ended: Option<i64>,
    pub trial_end: Option<i64>,
}

/// A day's row of one currency, once: a day already taken is kept.
const RECORD_SNAPSHOT: &str = "INSERT INTO billing_snapshots \
     (day, currency, mrr, in_trial, subscriptions, estimate, taken_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (day, currency) DO NOTHING";

impl Store {
    /// Recurring subscriptions grouped by what MRR depends on, so the
    /// overview reads a few rows however many subscriptions there are.
    pub async fn recurring_groups(&self) -> Result<Vec<RecurringGroup>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.status, LOWER(i.currency) AS currency, i.recurring_interval, \
                 COALESCE(i.interval_count, 1) AS interval_count, \
                 CAST(SUM(i.unit_amount * COALESCE(i.quantity, 1)) AS BIGINT) AS amount, \
                 CAST(COUNT(DISTINCT s.id) AS BIGINT) AS subscriptions \
                 FROM subscription_items i JOIN subscriptions s ON s.id = i.subscription_id \
                 WHERE s.status IN ('active', 'past_due', 'trialing') AND i.currency IS NOT NULL \
                 AND i.unit_amount IS NOT NULL AND i.recurring_interval IS NOT NULL \
                 GROUP BY s.status, LOWER(i.currency), i.recurring_interval, COALESCE(i.interval_count, 1) \
                 ORDER BY 1, 2, 3, 4",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Subscriptions per status; `canceled` counts those canceled since `since`.
    pub async fn status_counts(&self, since: i64) -> Result<Vec<StatusCount>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT status, CAST(COUNT(*) AS BIGINT) AS subscriptions FROM subscriptions \
                 WHERE status <> 'canceled' OR COALESCE(canceled_at, ended_at, 0) >= $1 \
                 GROUP BY status ORDER BY status",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Past due, unpaid, and set to cancel at period end: soonest first.
    pub async fn at_risk(&self, limit: i64) -> Result<Vec<AtRisk>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                // The page's few subscriptions first, then their organizations.
                "SELECT o.id AS org_id, COALESCE(o.name, o.slug) AS org_name, s.id AS subscription_id, s.status, \
                 s.cancel_at_period_end, s.cancel_at, s.current_period_end FROM ( \
                   SELECT id, customer_id, status, cancel_at_period_end, cancel_at, current_period_end \
                   FROM subscriptions \
                   WHERE status IN ('past_due', 'unpaid') \
                   OR ((cancel_at_period_end = TRUE OR cancel_at IS NOT NULL) \
                       AND status IN ('active', 'trialing', 'past_due')) \
                   ORDER BY COALESCE(cancel_at, current_period_end, 0), id LIMIT CAST($1 AS BIGINT)) AS s \
                 LEFT JOIN organizations o ON o.stripe_customer_id = s.customer_id \
                 ORDER BY COALESCE(s.cancel_at, s.current_period_end, 0), s.id",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Events received per UTC day since `since`, and how many of them failed.
    pub async fn events_per_day(&self, since: i64) -> Result<Vec<EventsOnDay>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT CAST(received_at / 86400 * 86400 AS BIGINT) AS day, \
                 CAST(COUNT(*) AS BIGINT) AS received, \
                 CAST(SUM(CASE WHEN processed_at IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS failed \
                 FROM stripe_events WHERE received_at >= $1 \
                 GROUP BY received_at / 86400 ORDER BY 1",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Snapshots since `since`, oldest first.
    pub async fn snapshots(&self, since: i64) -> Result<Vec<Snapshot>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT day, currency, mrr, in_trial, subscriptions, estimate FROM billing_snapshots \
                 WHERE day >= $1 ORDER BY day, currency",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn has_snapshot(&self, day: i64) -> Result<bool, StoreError> {
        let found: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT day FROM billing_snapshots WHERE day = $1 LIMIT 1")
                .bind(day)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// Records `snapshots` once: a day already taken is kept as it is.
    pub async fn record_snapshots(
        &self,
        snapshots: &[Snapshot],
        taken_at: i64,
    ) -> Result<u64, StoreError> {
        self.write_snapshots(&[], snapshots.iter(), taken_at).await
    }

    /// The lifetime and price of every item of the subscriptions that were
    /// paying while they lived (for the month-end estimates): not those that
    /// never were (`incomplete`, `incomplete_expired`), nor those whose
    /// unpaid or paused time cannot be told apart.
    pub async fn lifetimes(&self) -> Result<Vec<Lifetime>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.id AS subscription, s.status, LOWER(i.currency) AS currency, \
                 i.recurring_interval, COALESCE(i.interval_count, 1) AS interval_count, \
                 CAST(i.unit_amount * COALESCE(i.quantity, 1) AS BIGINT) AS amount, s.created, \
                 COALESCE(s.ended_at, s.canceled_at) AS ended, s.trial_end \
                 FROM subscription_items i JOIN subscriptions s ON s.id = i.subscription_id \
                 WHERE s.status IN ('active', 'past_due', 'trialing', 'canceled') \
                 AND i.currency IS NOT NULL AND i.unit_amount IS NOT NULL \
                 AND i.recurring_interval IS NOT NULL",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// The days since `since` that have a snapshot taken on the day.
    pub async fn days_taken(&self, since: i64) -> Result<Vec<i64>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT DISTINCT day FROM billing_snapshots WHERE estimate = FALSE AND day >= $1",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Replaces the estimated rows of `days` with `estimates` (a day taken
    /// on the day is never replaced); returns the rows written.
    pub async fn replace_estimates(
        &self,
        days: &[i64],
        estimates: &[Snapshot],
        taken_at: i64,
    ) -> Result<u64, StoreError> {
        let estimates = estimates.iter().filter(|s| s.estimate);
        self.write_snapshots(days, estimates, taken_at).await
    }

    /// In one transaction, deletes the estimates of `days`, then records
    /// `snapshots` (a day already taken is kept); returns the rows written.
    async fn write_snapshots(
        &self,
        days: &[i64],
        snapshots: impl Iterator<Item = &Snapshot>,
        taken_at: i64,
    ) -> Result<u64, StoreError> {
        let mut written = 0;
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for day in days {
                sqlx::query("DELETE FROM billing_snapshots WHERE day = $1 AND estimate = TRUE")
                    .bind(day)
                    .execute(&mut *tx)
                    .await?;
            }
            for s in snapshots {
                written += sqlx::query(RECORD_SNAPSHOT)
                    .bind(s.day)
                    .bind(&s.currency)
                    .bind(s.mrr)
                    .bind(s.in_trial)
                    .bind(s.subscriptions)
                    .bind(s.estimate)
                    .bind(taken_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
        });
        Ok(written)
    }

    /// One page of the export: subscriptions after `after` (by id).
    pub async fn export_page(&self, after: &str, limit: i64) -> Result<Vec<ExportRow>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.id, o.id AS org_id, COALESCE(o.name, o.slug) AS org_name, \
                 c.name AS customer_name, c.email AS customer_email, s.status, \
                 COALESCE(p.name, s.plan_name) AS plan, s.recurring_interval, s.interval_count, \
                 s.quantity, s.currency, s.unit_amount, s.current_period_end, s.cancel_at_period_end, \
                 s.created FROM subscriptions s \
                 LEFT JOIN organizations o ON o.stripe_customer_id = s.customer_id \
                 LEFT JOIN customers c ON c.id = s.customer_id \
                 LEFT JOIN products p ON p.id = s.product_id \
                 WHERE s.id > $1 ORDER BY s.id LIMIT CAST($2 AS BIGINT)",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
