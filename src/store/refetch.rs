//! The queue of objects to fetch again from Stripe because their newest
//! version could not be ordered (`Uncertain`): written in the transaction
//! that found the tie, drained by `billing::refetch` off the request path.

use super::synced::Uncertain;
use super::{Store, StoreError, Tx, with_pool, with_tx};
use crate::domain::unix_now;

/// How long after a tie its object is fetched: later events of the same
/// burst join it, and the fetch lands in a later second than the tie.
pub const REFETCH_DELAY_SECS: i64 = 2;

/// One object to fetch again.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Refetch {
    pub object_table: String,
    pub object_id: String,
    pub tie_created: i64,
    pub attempts: i64,
}

impl Tx {
    /// Queues each object once; a later tie of a queued object moves its
    /// second forward but not its due time.
    pub async fn queue_refetches(&mut self, uncertain: &[Uncertain]) -> Result<(), StoreError> {
        let due = unix_now() + REFETCH_DELAY_SECS;
        for object in uncertain {
            log::info!(
                "{} {}: versions of second {} cannot be ordered; fetching it again",
                object.table,
                object.id,
                object.created
            );
            with_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO refetch_queue (object_table, object_id, tie_created, due_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (object_table, object_id) DO UPDATE SET \
                     tie_created = CASE WHEN refetch_queue.tie_created < excluded.tie_created \
                       THEN excluded.tie_created ELSE refetch_queue.tie_created END",
                )
                .bind(object.table)
                .bind(&object.id)
                .bind(object.created)
                .bind(due)
                .execute(conn)
                .await?;
            });
        }
        Ok(())
    }
}

impl Store {
    /// The version second of a synced row, if stored (`table` is one of
    /// ours, from the queue this service wrote).
    pub async fn stored_created(&self, table: &str, id: &str) -> Result<Option<i64>, StoreError> {
        let sql = match table {
            "customers" => "SELECT event_created FROM customers WHERE id = $1",
            "subscriptions" => "SELECT event_created FROM subscriptions WHERE id = $1",
            "invoices" => "SELECT event_created FROM invoices WHERE id = $1",
            "payment_methods" => "SELECT event_created FROM payment_methods WHERE id = $1",
            "products" => "SELECT event_created FROM products WHERE id = $1",
            "prices" => "SELECT event_created FROM prices WHERE id = $1",
            "features" => "SELECT event_created FROM features WHERE id = $1",
            "customer_entitlements" => {
                "SELECT event_created FROM customer_entitlements WHERE id = $1"
            }
            other => return Err(StoreError::Corrupt(format!("no synced table {other}"))),
        };
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Up to `limit` objects due by `now`, each leased for `lease_secs` (an
    /// instance that dies mid-fetch leaves it to be taken again).
    pub async fn claim_refetches(
        &self,
        now: i64,
        limit: i64,
        lease_secs: i64,
    ) -> Result<Vec<Refetch>, StoreError> {
        // Asked every second: a read first, so an empty queue never takes
        // SQLite's write lock from the ingest writer.
        let due: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT due_at FROM refetch_queue WHERE due_at <= $1 LIMIT 1")
                .bind(now)
                .fetch_optional(pool)
                .await?
        });
        if due.is_none() {
            return Ok(Vec::new());
        }
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE refetch_queue SET due_at = $2, attempts = attempts + 1 \
                 WHERE (object_table, object_id) IN (SELECT object_table, object_id \
                   FROM refetch_queue WHERE due_at <= $1 ORDER BY due_at LIMIT CAST($3 AS BIGINT)) \
                 RETURNING object_table, object_id, tie_created, attempts",
            )
            .bind(now)
            .bind(now + lease_secs)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Done with `job`, unless a new tie came meanwhile (then it stays due).
    pub async fn finish_refetch(&self, job: &Refetch) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM refetch_queue WHERE object_table = $1 AND object_id = $2 \
                 AND tie_created <= $3",
            )
            .bind(&job.object_table)
            .bind(&job.object_id)
            .bind(job.tie_created)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Tries `job` again at `due_at`, noting why it failed.
    pub async fn retry_refetch(
        &self,
        job: &Refetch,
        due_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE refetch_queue SET due_at = $3, last_error = $4 \
                 WHERE object_table = $1 AND object_id = $2",
            )
            .bind(&job.object_table)
            .bind(&job.object_id)
            .bind(due_at)
            .bind(error)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// How many objects wait to be fetched again, and how many of those
    /// have failed at least once (for webhook health).
    pub async fn refetch_backlog(&self) -> Result<(i64, i64), StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as("SELECT COUNT(*), COUNT(last_error) FROM refetch_queue")
                .fetch_one(pool)
                .await?
        }))
    }
}
