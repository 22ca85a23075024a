//! The usage outbox: records the product's services report, kept until
//! Stripe's meter events API has them.

use super::{Store, StoreError, with_pool};

/// A usage record as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUsage<'a> {
    pub id: &'a str,
    pub identifier: &'a str,
    pub org_id: &'a str,
    pub customer_id: &'a str,
    pub meter: &'a str,
    pub value: i64,
    pub occurred_at: i64,
    pub received_at: i64,
}

/// What recording a usage record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// Its identifier was recorded before with the same usage.
    Duplicate,
    /// Its identifier was recorded before with other usage.
    Conflict,
}

/// A record due to be sent, as claimed by the outbox.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueUsage {
    pub id: String,
    pub identifier: String,
    pub customer_id: String,
    pub meter: String,
    pub value: i64,
    pub occurred_at: i64,
    pub attempts: i32,
}

/// Usage of one meter in a period: sent to Stripe, waiting, refused.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MeterUsage {
    pub meter: String,
    pub sent: i64,
    pub pending: i64,
    pub failed: i64,
}

/// A record Stripe refused for good, for operators.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FailedUsage {
    pub identifier: String,
    pub org_id: String,
    pub meter: String,
    pub value: i64,
    pub occurred_at: i64,
    pub last_error: Option<String>,
}

impl Store {
    /// Records `usage` once per identifier, durably, to be sent.
    pub async fn record_usage(&self, usage: &NewUsage<'_>) -> Result<Recorded, StoreError> {
        let inserted: Option<String> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO usage_records (id, identifier, org_id, customer_id, meter, value, \
                 occurred_at, received_at, status, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $8) \
                 ON CONFLICT (identifier) DO NOTHING RETURNING id",
            )
            .bind(usage.id)
            .bind(usage.identifier)
            .bind(usage.org_id)
            .bind(usage.customer_id)
            .bind(usage.meter)
            .bind(usage.value)
            .bind(usage.occurred_at)
            .bind(usage.received_at)
            .fetch_optional(pool)
            .await?
        });
        if inserted.is_some() {
            return Ok(Recorded::New);
        }
        let stored: (String, String, i64, i64) = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT org_id, meter, value, occurred_at FROM usage_records WHERE identifier = $1",
            )
            .bind(usage.identifier)
            .fetch_one(pool)
            .await?
        });
        let same = (
            usage.org_id.to_owned(),
            usage.meter.to_owned(),
            usage.value,
            usage.occurred_at,
        );
        Ok(if stored == same {
            Recorded::Duplicate
        } else {
            Recorded::Conflict
        })
    }

    /// Up to `limit` records due by `now`, oldest first, each leased for
    /// `lease_secs` (an instance that dies mid-send leaves them to be taken
    /// again; Stripe deduplicates their identifiers).
    pub async fn claim_usage(
        &self,
        now: i64,
        limit: i64,
        lease_secs: i64,
    ) -> Result<Vec<DueUsage>, StoreError> {
        // Asked every second: a read first, so an empty outbox never takes
        // SQLite's write lock.
        let due: Option<String> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM usage_records WHERE status = 'pending' AND next_attempt_at <= $1 \
                 LIMIT 1",
            )
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut claimed: Vec<DueUsage> = with_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE usage_records SET next_attempt_at = $2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM usage_records WHERE status = 'pending' \
                   AND next_attempt_at <= $1 ORDER BY id LIMIT $3) \
                 AND status = 'pending' AND next_attempt_at <= $1 \
                 RETURNING id, identifier, customer_id, meter, value, occurred_at, attempts",
            )
            .bind(now)
            .bind(now + lease_secs)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    /// Stripe has the record.
    pub async fn usage_sent(&self, id: &str, now: i64) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE usage_records SET status = 'sent', sent_at = $2, last_error = NULL \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The record is tried again at `at`, after `error`.
    pub async fn retry_usage(&self, id: &str, at: i64, error: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE usage_records SET next_attempt_at = $2, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(error)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Stripe refused the record for good, saying `error`.
    pub async fn usage_failed(&self, id: &str, error: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE usage_records SET status = 'failed', last_error = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Sends an organization's refused records again (after a fix, such as
    /// creating the meter); returns how many.
    pub async fn retry_failed_usage(&self, org_id: &str, now: i64) -> Result<u64, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE usage_records SET status = 'pending', next_attempt_at = $2, attempts = 0 \
                 WHERE org_id = $1 AND status = 'failed'",
            )
            .bind(org_id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// An organization's usage per meter that occurred in `[from, to)`.
    pub async fn usage_in_period(
        &self,
        org_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<MeterUsage>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT meter, \
                 CAST(SUM(CASE WHEN status = 'sent' THEN value ELSE 0 END) AS BIGINT) AS sent, \
                 CAST(SUM(CASE WHEN status = 'pending' THEN value ELSE 0 END) AS BIGINT) AS pending, \
                 CAST(SUM(CASE WHEN status = 'failed' THEN value ELSE 0 END) AS BIGINT) AS failed \
                 FROM usage_records WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
                 GROUP BY meter ORDER BY meter",
            )
            .bind(org_id)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The newest records Stripe refused for good, of one organization or all.
    pub async fn failed_usage(
        &self,
        org_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FailedUsage>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT identifier, org_id, meter, value, occurred_at, last_error \
                 FROM usage_records WHERE status = 'failed' AND ($1 IS NULL OR org_id = $1) \
                 ORDER BY id DESC LIMIT $2",
            )
            .bind(org_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// How many records wait to be sent (for operators).
    pub async fn usage_backlog(&self) -> Result<i64, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM usage_records WHERE status = 'pending'")
                .fetch_one(pool)
                .await?
        }))
    }
}
