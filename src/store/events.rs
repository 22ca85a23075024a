//! The `stripe_events` log: every verified delivery, its payload, and
//! whether applying it succeeded.

use std::sync::LazyLock;

use super::sets::{Column, InsertRows, Values, repeated};
use super::{Store, StoreError, Tx, with_pool, with_tx};
use crate::domain::{unix_now, unix_now_us};

pub struct EventRecord<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub created: i64,
    pub api_version: Option<&'a str>,
    pub livemode: bool,
    /// The customer its object belongs to, if it names one.
    pub customer: Option<&'a str>,
    pub payload: &'a str,
    /// Why its payload cannot be applied, if it cannot.
    pub failure: Option<&'a str>,
}

impl EventRecord<'_> {
    /// The insert recording a batch's deliveries (each id at most once),
    /// each as processed, or as failed (kept for replay) when it carries a
    /// `failure`; the caller applies them in the same transaction
    /// (`Tx::record_and_upsert_synced`). It returns the ids recorded now:
    /// new ones, and ones that failed before. The others were applied
    /// before, and a redelivery changes nothing.
    pub(crate) fn statement(events: &[Self]) -> (&'static InsertRows, Vec<Values>) {
        static SQL: LazyLock<InsertRows> = LazyLock::new(|| {
            InsertRows::new(
                "stripe_events",
                &[
                    "id",
                    "type",
                    "created",
                    "api_version",
                    "livemode",
                    "customer_id",
                    "payload",
                    "received_at",
                    "received_at_us",
                    "processed_at",
                    "attempts",
                    "last_error",
                ],
                "ON CONFLICT (id) DO UPDATE SET attempts = stripe_events.attempts + 1, \
                 processed_at = excluded.processed_at, last_error = excluded.last_error \
                 WHERE stripe_events.processed_at IS NULL RETURNING id",
            )
        });
        let now = unix_now();
        let n = events.len();
        let text = |values: Vec<Option<&str>>| {
            Values::Text(values.into_iter().map(|v| v.map(str::to_owned)).collect())
        };
        let columns = vec![
            text(events.iter().map(|e| Some(e.id)).collect()),
            text(events.iter().map(|e| Some(e.kind)).collect()),
            Column::column(events.iter().map(|e| &e.created)),
            text(events.iter().map(|e| e.api_version).collect()),
            Column::column(events.iter().map(|e| &e.livemode)),
            text(events.iter().map(|e| e.customer).collect()),
            text(events.iter().map(|e| Some(e.payload)).collect()),
            repeated(now, n),
            repeated(unix_now_us(), n),
            Values::Int(
                events
                    .iter()
                    .map(|e| e.failure.is_none().then_some(now))
                    .collect(),
            ),
            repeated(1i64, n),
            Values::Text(
                events
                    .iter()
                    .map(|e| e.failure.map(|f| f.chars().take(MAX_ERROR_LEN).collect()))
                    .collect(),
            ),
        ];
        (&SQL, columns)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub livemode: bool,
    pub payload: String,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Longer error texts are cut: they are for operators, not storage.
const MAX_ERROR_LEN: usize = 1000;

impl Tx {
    pub async fn mark_event_processed(&mut self, id: &str) -> Result<(), StoreError> {
        with_tx!(self, |conn| {
            sqlx::query(
                "UPDATE stripe_events SET processed_at = $2, last_error = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(unix_now())
            .execute(conn)
            .await?;
        });
        Ok(())
    }

    pub async fn mark_event_failed(&mut self, id: &str, error: &str) -> Result<(), StoreError> {
        let error: String = error.chars().take(MAX_ERROR_LEN).collect();
        with_tx!(self, |conn| {
            sqlx::query(
                "UPDATE stripe_events SET processed_at = NULL, last_error = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(&error)
            .execute(conn)
            .await?;
        });
        Ok(())
    }
}

/// Every query of stored events selects the same columns.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT id, type, created, livemode, payload, received_at, processed_at, attempts, last_error \
             FROM stripe_events ",
            $rest
        )
    };
}

impl Store {
    pub async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(select_events!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Empties the payloads of events applied and received before `before`,
    /// keeping their ids (deduplication) and the rest of the row; returns
    /// how many. A failed event keeps its payload for replay.
    pub async fn prune_event_payloads(&self, before: i64) -> Result<u64, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE stripe_events SET payload = '' WHERE processed_at IS NOT NULL \
                 AND received_at < $1 AND payload <> ''",
            )
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Events recorded but never applied, oldest first.
    pub async fn failed_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(select_events!(
                "WHERE processed_at IS NULL ORDER BY created, id LIMIT CAST($1 AS BIGINT)"
            ))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn recent_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(select_events!(
                "ORDER BY received_at DESC, id DESC LIMIT CAST($1 AS BIGINT)"
            ))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
