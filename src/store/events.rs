//! The `stripe_events` log: every verified delivery, its payload, and
//! whether applying it succeeded.

use super::{Store, StoreError, Tx, with_pool, with_tx};
use crate::domain::unix_now;

pub struct EventRecord<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub created: i64,
    pub api_version: Option<&'a str>,
    pub livemode: bool,
    pub payload: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// First delivery, or a redelivery of an event that failed before.
    Apply { attempts: i64 },
    /// Already applied: a redelivery changes nothing.
    AlreadyProcessed,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub payload: String,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Longer error texts are cut: they are for operators, not storage.
const MAX_ERROR_LEN: usize = 1000;

impl Tx {
    /// Records a delivery as processed, in the same statement that detects a
    /// duplicate: the caller applies it in the same transaction, and calls
    /// `mark_event_failed` in the rare case its payload cannot be applied.
    pub async fn record_event(
        &mut self,
        event: &EventRecord<'_>,
    ) -> Result<RecordOutcome, StoreError> {
        let attempts: Option<i64> = with_tx!(self, |conn| {
            sqlx::query_scalar(
                "INSERT INTO stripe_events (id, type, created, api_version, livemode, payload, received_at, \
                 processed_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) \
                 ON CONFLICT (id) DO UPDATE SET attempts = stripe_events.attempts + 1, \
                 processed_at = excluded.processed_at, last_error = NULL \
                 WHERE stripe_events.processed_at IS NULL \
                 RETURNING attempts",
            )
            .bind(event.id)
            .bind(event.kind)
            .bind(event.created)
            .bind(event.api_version)
            .bind(event.livemode)
            .bind(event.payload)
            .bind(unix_now())
            .fetch_optional(conn)
            .await?
        });
        Ok(match attempts {
            Some(attempts) => RecordOutcome::Apply { attempts },
            None => RecordOutcome::AlreadyProcessed,
        })
    }

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
            "SELECT id, type, created, payload, received_at, processed_at, attempts, last_error \
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

    /// Events recorded but never applied, oldest first.
    pub async fn failed_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(select_events!(
                "WHERE processed_at IS NULL ORDER BY created, id LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn recent_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(select_events!(
                "ORDER BY received_at DESC, id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
