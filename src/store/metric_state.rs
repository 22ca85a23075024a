//! What `GET /metrics` reads from the database when scraped: queues,
//! ages, and the pool's connections.

use super::{Pool, Store, StoreError, with_pool};
use crate::domain::unix_now;

#[derive(sqlx::FromRow)]
struct Counts {
    newest_event: Option<i64>,
    last_catch_up: Option<i64>,
    failed_events: i64,
    refetch_queue: i64,
    usage_pending: i64,
    usage_failed: i64,
    seat_syncs: i64,
    live_subscriptions: i64,
}

impl Store {
    /// `(what, value)` pairs: ages in seconds (-1 when never), queue
    /// lengths, and connections.
    pub async fn metric_state(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let counts: Counts = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT (SELECT MAX(created) FROM stripe_events) AS newest_event, \
                 (SELECT last_run_at FROM events_catchup WHERE id = 1) AS last_catch_up, \
                 CAST((SELECT COUNT(*) FROM stripe_events WHERE processed_at IS NULL \
                   AND last_error IS NOT NULL) AS BIGINT) AS failed_events, \
                 CAST((SELECT COUNT(*) FROM refetch_queue) AS BIGINT) AS refetch_queue, \
                 CAST((SELECT COUNT(*) FROM usage_records WHERE status = 'pending') AS BIGINT) \
                   AS usage_pending, \
                 CAST((SELECT COUNT(*) FROM usage_records WHERE status = 'failed') AS BIGINT) \
                   AS usage_failed, \
                 CAST((SELECT COUNT(*) FROM seat_syncs) AS BIGINT) AS seat_syncs, \
                 CAST((SELECT COUNT(*) FROM subscriptions WHERE status IN ('active', 'trialing', \
                   'past_due')) AS BIGINT) AS live_subscriptions",
            )
            .fetch_one(pool)
            .await?
        });
        let now = unix_now();
        let age = |at: Option<i64>| at.map_or(-1, |at| (now - at).max(0));
        let (size, idle) = match &self.pool {
            Pool::Sqlite { reads, workers, .. } => {
                let (open, idle) = workers.sizes();
                (reads.size() + open, reads.num_idle() + idle)
            }
            Pool::Postgres { reads, .. } => (reads.size(), reads.num_idle()),
        };
        Ok(vec![
            ("newest_event_age_seconds", age(counts.newest_event)),
            ("last_catch_up_age_seconds", age(counts.last_catch_up)),
            ("failed_events", counts.failed_events),
            ("refetch_queue", counts.refetch_queue),
            ("usage_outbox_pending", counts.usage_pending),
            ("usage_outbox_failed", counts.usage_failed),
            ("seat_syncs_waiting", counts.seat_syncs),
            ("live_subscriptions", counts.live_subscriptions),
            ("db_connections_open", i64::from(size)),
            ("db_connections_in_use", i64::from(size) - idle as i64),
        ])
    }
}
