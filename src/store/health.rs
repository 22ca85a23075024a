//! How well Stripe's events reach us: the Events-API catch-up's cursor and
//! last run, the API versions events arrive at, and how fresh the newest is.

use super::{Store, StoreError, with_pool};

/// The catch-up's state: where it resumes and how its last run went.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct CatchUpState {
    /// `created` of the newest event a completed run saw.
    pub cursor_created: i64,
    pub last_run_at: Option<i64>,
    pub last_seen: i64,
    pub last_applied: i64,
    pub last_error: Option<String>,
}

/// How a catch-up run ended.
pub struct CatchUpRun<'a> {
    pub at: i64,
    pub seen: i64,
    pub applied: i64,
    /// `Ok(newest created seen)`, or why it stopped (the cursor stays).
    pub outcome: Result<Option<i64>, &'a str>,
}

/// Events per API version (`None`: the event named none).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionCount {
    pub api_version: Option<String>,
    pub events: i64,
}

impl Store {
    pub async fn catch_up_state(&self) -> Result<Option<CatchUpState>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT cursor_created, last_run_at, last_seen, last_applied, last_error \
                 FROM events_catchup WHERE id = 1",
            )
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Records a run. The cursor only moves forward, and only for a run that
    /// completed (its events are committed by then).
    pub async fn record_catch_up(&self, run: &CatchUpRun<'_>) -> Result<(), StoreError> {
        let (newest, error) = match run.outcome {
            Ok(newest) => (newest.unwrap_or(0), None),
            Err(error) => (0, Some(error)),
        };
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO events_catchup (id, cursor_created, last_run_at, last_seen, last_applied, last_error) \
                 VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                 cursor_created = CASE WHEN events_catchup.cursor_created < excluded.cursor_created \
                   THEN excluded.cursor_created ELSE events_catchup.cursor_created END, \
                 last_run_at = excluded.last_run_at, last_seen = excluded.last_seen, \
                 last_applied = excluded.last_applied, last_error = excluded.last_error",
            )
            .bind(newest)
            .bind(run.at)
            .bind(run.seen)
            .bind(run.applied)
            .bind(error)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// How many stored events came at each API version, most first.
    pub async fn api_versions(&self) -> Result<Vec<VersionCount>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT api_version, COUNT(*) AS events FROM stripe_events \
                 GROUP BY api_version ORDER BY COUNT(*) DESC, api_version",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// `created` of the newest stored event.
    /// How many stored events are of the other mode than the key's (`live`):
    /// recorded, never applied.
    pub async fn other_mode_events(&self, live: bool) -> Result<i64, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE livemode <> $1")
                .bind(live)
                .fetch_one(pool)
                .await?
        }))
    }

    pub async fn newest_event_created(&self) -> Result<Option<i64>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT MAX(created) FROM stripe_events")
                .fetch_one(pool)
                .await?
        }))
    }
}
