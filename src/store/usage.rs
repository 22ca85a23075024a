//! The usage outbox: records the product's services report, kept until
//! Stripe's meter events API has them.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use super::cache::Changed;
use super::sets::{Column, InsertRows, repeated};
use super::{Store, StoreError, with_pool};

/// A usage record as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUsage {
    pub id: String,
    pub identifier: String,
    pub org_id: String,
    pub customer_id: String,
    pub meter: String,
    pub value: i64,
    pub occurred_at: i64,
    /// Whether `occurred_at` was reported or is the time of receipt.
    pub time_stated: bool,
    pub received_at: i64,
}

/// What a usage record's identifier was first stored with.
struct Stored<'a> {
    org_id: &'a str,
    meter: &'a str,
    value: i64,
    occurred_at: i64,
}

impl NewUsage {
    fn stored(&self) -> Stored<'_> {
        Stored {
            org_id: &self.org_id,
            meter: &self.meter,
            value: self.value,
            occurred_at: self.occurred_at,
        }
    }

    /// What a repeat of an identifier answers, given what it first stored:
    /// the same usage is the same organization, meter and value, and the
    /// same time if the repeat states one (a retry's receipt time is its own).
    fn repeat_of(&self, first: Stored<'_>) -> Recorded {
        let same = self.org_id == first.org_id
            && self.meter == first.meter
            && self.value == first.value
            && (!self.time_stated || self.occurred_at == first.occurred_at);
        if same {
            Recorded::Duplicate {
                occurred_at: first.occurred_at,
            }
        } else {
            Recorded::Conflict
        }
    }
}

/// What recording a usage record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// Its identifier was recorded before with the same usage, at
    /// `occurred_at`.
    Duplicate {
        occurred_at: i64,
    },
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Deserialize)]
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
    /// Records each of `usage` once per identifier, with one statement that
    /// commits by itself, to be sent; says of each whether it was new.
    pub async fn record_usage(&self, usage: &[NewUsage]) -> Result<Vec<Recorded>, StoreError> {
        static SQL: LazyLock<InsertRows> = LazyLock::new(|| {
            InsertRows::new(
                "usage_records",
                &[
                    "id",
                    "identifier",
                    "org_id",
                    "customer_id",
                    "meter",
                    "value",
                    "occurred_at",
                    "received_at",
                    "status",
                    "attempts",
                    "next_attempt_at",
                ],
                "ON CONFLICT (identifier) DO NOTHING RETURNING identifier",
            )
        });
        // One row an identifier: a repeat within the batch is judged against
        // the first.
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        for (i, u) in usage.iter().enumerate() {
            first_of.entry(u.identifier.as_str()).or_insert(i);
        }
        let firsts: Vec<&NewUsage> = usage
            .iter()
            .enumerate()
            .filter(|(i, u)| first_of[u.identifier.as_str()] == *i)
            .map(|(_, u)| u)
            .collect();
        let n = firsts.len();
        let columns = vec![
            Column::column(firsts.iter().map(|u| &u.id)),
            Column::column(firsts.iter().map(|u| &u.identifier)),
            Column::column(firsts.iter().map(|u| &u.org_id)),
            Column::column(firsts.iter().map(|u| &u.customer_id)),
            Column::column(firsts.iter().map(|u| &u.meter)),
            Column::column(firsts.iter().map(|u| &u.value)),
            Column::column(firsts.iter().map(|u| &u.occurred_at)),
            Column::column(firsts.iter().map(|u| &u.received_at)),
            repeated("pending".to_owned(), n),
            repeated(0i64, n),
            Column::column(firsts.iter().map(|u| &u.received_at)),
        ];
        let inserted: HashSet<String> = self
            .insert_rows_alone(&SQL, columns)
            .await?
            .into_iter()
            .collect();
        let mut changed = Changed::default();
        for u in firsts.iter().filter(|u| inserted.contains(&u.identifier)) {
            changed.org(&u.org_id);
        }
        self.caches.invalidate(&changed);
        let mut recorded = Vec::with_capacity(usage.len());
        for (i, u) in usage.iter().enumerate() {
            let first = first_of[u.identifier.as_str()];
            recorded.push(if first != i {
                u.repeat_of(usage[first].stored())
            } else if inserted.contains(&u.identifier) {
                Recorded::New
            } else {
                self.recorded_before(u).await?
            });
        }
        Ok(recorded)
    }

    /// Whether the usage stored under `usage`'s identifier is the same.
    async fn recorded_before(&self, usage: &NewUsage) -> Result<Recorded, StoreError> {
        let stored: (String, String, i64, i64) = with_pool!(self, |conn| {
            sqlx::query_as(
                "SELECT org_id, meter, value, occurred_at FROM usage_records WHERE identifier = $1",
            )
            .bind(&usage.identifier)
            .fetch_one(conn)
            .await?
        });
        Ok(usage.repeat_of(Stored {
            org_id: &stored.0,
            meter: &stored.1,
            value: stored.2,
            occurred_at: stored.3,
        }))
    }
}

impl Store {
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
                   AND next_attempt_at <= $1 ORDER BY id LIMIT CAST($3 AS BIGINT)) \
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
        let org: Option<String> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "UPDATE usage_records SET status = 'sent', sent_at = $2, last_error = NULL \
                 WHERE id = $1 RETURNING org_id",
            )
            .bind(id)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        self.usage_shown_changed(org);
        Ok(())
    }

    /// The Plans tab shows each organization's usage by status.
    fn usage_shown_changed(&self, org: Option<String>) {
        if let Some(org) = org {
            self.caches.invalidate_org(&org);
        }
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
        let org: Option<String> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "UPDATE usage_records SET status = 'failed', last_error = $2 WHERE id = $1 \
                 RETURNING org_id",
            )
            .bind(id)
            .bind(error)
            .fetch_optional(pool)
            .await?
        });
        self.usage_shown_changed(org);
        Ok(())
    }

    /// Sends an organization's refused records again (after a fix, such as
    /// creating the meter); returns how many.
    pub async fn retry_failed_usage(&self, org_id: &str, now: i64) -> Result<u64, StoreError> {
        let retried = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE usage_records SET status = 'pending', next_attempt_at = $2, attempts = 0 \
                 WHERE org_id = $1 AND status = 'failed'",
            )
            .bind(org_id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.usage_shown_changed(Some(org_id.to_owned()));
        Ok(retried)
    }

    /// An organization's newest records Stripe refused for good.
    pub async fn failed_usage(
        &self,
        org_id: &str,
        limit: i64,
    ) -> Result<Vec<FailedUsage>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT identifier, org_id, meter, value, occurred_at, last_error \
                 FROM usage_records WHERE status = 'failed' AND org_id = $1 \
                 ORDER BY id DESC LIMIT CAST($2 AS BIGINT)",
            )
            .bind(org_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
