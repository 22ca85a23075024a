//! Catching up on events no webhook delivered: an outage longer than
//! Stripe's retry window, an endpoint Stripe disabled, a secret rolled wrong.
//! Stripe keeps events listable for 30 days, so `GET /v1/events` is paged for
//! everything newer than a stored cursor (minus an overlap), with no type
//! filter on Stripe's side (a type handled later is already in our log), and
//! each event goes through the same path as a webhook: recorded once by id,
//! applied under the version guards, so a delivered one changes nothing.
//! The cursor moves forward only after a run's events are committed.
//!
//! The server runs it every `STRIPE_CATCHUP_INTERVAL` on one instance at a
//! time (`Store::try_lock_job`) and about once per interval between all
//! instances, off the request path, backing off while Stripe fails.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::ingest::{ReceivedEvent, ingest_batch};
use super::replay::{Selection, replay};
use super::rules::{HANDLED_EVENTS, plan_for_key};
use super::{IngestError, Ingested};
use crate::domain::unix_now;
use crate::store::{CatchUpRun, Store};
use crate::stripe::StripeClient;
use crate::stripe::objects::Event;

/// Re-read before the cursor: events of the cursor's own second, and events
/// Stripe lists a little after their `created`.
pub const OVERLAP_SECS: i64 = 300;
/// Where a first run starts: Stripe's own retry window.
pub const FIRST_LOOK_BACK_SECS: i64 = 72 * 3600;
/// Stripe lists events for 30 days.
const RETENTION_SECS: i64 = 30 * 24 * 3600;
const JOB: &str = "events-catch-up";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CatchUpReport {
    /// Events listed by Stripe.
    pub seen: usize,
    /// Newly recorded and applied (including types we only record).
    pub applied: usize,
    /// Already in our log: a webhook delivered them.
    pub already_had: usize,
    /// Recorded, but their payload could not be applied (kept for replay),
    /// or not events at all.
    pub failed: usize,
    /// Listed after `created[gt]` this.
    pub since: i64,
    /// Failed events applied by the replay that follows a run.
    pub replayed: usize,
}

impl fmt::Display for CatchUpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "caught up on events since {}: saw {}, applied {}, already had {}, failed {}",
            self.since, self.seen, self.applied, self.already_had, self.failed
        )?;
        if self.replayed > 0 {
            write!(f, "; then replayed {} failed event(s)", self.replayed)?;
        }
        Ok(())
    }
}

/// Pages through the events newer than the cursor (or than `look_back` ago)
/// and ingests them, page by page.
pub async fn catch_up(
    store: &Store,
    stripe: &StripeClient,
    look_back: Option<Duration>,
) -> anyhow::Result<CatchUpReport> {
    let now = unix_now();
    let since = start(store, now, look_back).await?;
    let mut report = CatchUpReport {
        since,
        ..Default::default()
    };
    let run = page_through(store, stripe, &mut report).await;
    let outcome = match &run {
        Ok(newest) => Ok(*newest),
        Err(err) => Err(format!("{err:#}")),
    };
    store
        .record_catch_up(&CatchUpRun {
            at: now,
            seen: report.seen as i64,
            applied: report.applied as i64,
            outcome: outcome.as_ref().map(|n| *n).map_err(String::as_str),
        })
        .await?;
    run?;
    // What waited for state the catch-up may have brought (an invoice's
    // credits for a price not synced before) is applied now; a run that
    // applied nothing brought nothing to wait for.
    if report.applied > 0 {
        let replayed = replay(store, Selection::Failed, stripe.is_live()).await?;
        if replayed.applied > 0 {
            log::info!("after the catch-up, {replayed}");
        }
        report.replayed = replayed.applied;
    }
    Ok(report)
}

/// `created[gt]` of this run: `look_back` ago when asked, else the cursor
/// minus the overlap, else Stripe's retry window; never past retention.
async fn start(store: &Store, now: i64, look_back: Option<Duration>) -> anyhow::Result<i64> {
    let from_cursor = match look_back {
        Some(back) => now - i64::try_from(back.as_secs()).unwrap_or(RETENTION_SECS),
        None => match store.catch_up_state().await? {
            Some(state) if state.cursor_created > 0 => state.cursor_created - OVERLAP_SECS,
            _ => now - FIRST_LOOK_BACK_SECS,
        },
    };
    Ok(from_cursor.max(now - RETENTION_SECS))
}

/// Every page, newest first (Stripe's order); order does not matter to the
/// version guards. Returns the newest `created` seen.
async fn page_through(
    store: &Store,
    stripe: &StripeClient,
    report: &mut CatchUpReport,
) -> anyhow::Result<Option<i64>> {
    let since = report.since.to_string();
    let params = [("created[gt]", since.as_str())];
    let mut newest: Option<i64> = None;
    let mut after: Option<String> = None;
    loop {
        let page = stripe
            .list_page("/v1/events", &params, after.as_deref())
            .await
            .context("could not list events")?;
        after = page
            .data
            .last()
            .and_then(|o| o["id"].as_str())
            .map(str::to_owned);
        let events = received(page.data, stripe.is_live(), report);
        newest = events.iter().map(|e| e.event.created).chain(newest).max();
        for outcome in ingest_batch(store, &events).await {
            match outcome {
                Ok(Ingested::Applied) => report.applied += 1,
                Ok(Ingested::Duplicate) => report.already_had += 1,
                Ok(Ingested::Failed(_)) => report.failed += 1,
                Err(err @ (IngestError::Store(_) | IngestError::Closed)) => {
                    return Err(err).context("could not store a listed event");
                }
            }
        }
        if !page.has_more || after.is_none() {
            return Ok(newest);
        }
    }
}

/// The listed objects as events, each with its JSON as the stored payload.
fn received(
    objects: Vec<serde_json::Value>,
    live: bool,
    report: &mut CatchUpReport,
) -> Vec<ReceivedEvent> {
    report.seen += objects.len();
    objects
        .into_iter()
        .filter_map(|object| {
            let payload = object.to_string();
            match serde_json::from_str::<Event>(&payload) {
                // The account's other integrations' events: their ids are
                // kept (a delivery of one is then a duplicate), not their
                // payloads, which are not ours to hold.
                Ok(event) if !HANDLED_EVENTS.contains(&event.kind.as_str()) => {
                    Some(ReceivedEvent::planned(event, String::new(), Ok(Vec::new())))
                }
                Ok(event) => {
                    let planned = plan_for_key(&event, live);
                    Some(ReceivedEvent::planned(event, payload, planned))
                }
                Err(err) => {
                    log::error!("Stripe listed something that is not an event: {err}");
                    report.failed += 1;
                    None
                }
            }
        })
        .collect()
}

/// Runs `catch_up` every `interval` until `stop`, the first run shortly
/// after start; on one instance at a time, and skipped when an instance ran
/// it less than nine tenths of an interval ago, so N instances page Stripe
/// about once per interval between them. Stripe errors back off, doubling
/// up to an hour.
pub async fn run_every(
    store: Store,
    stripe: StripeClient,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut wait = interval.min(Duration::from_secs(10));
    let mut failures = 0u32;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let ran = tokio::select! {
            () = stop.cancelled() => return,
            ran = run_once(&store, &stripe, interval) => ran,
        };
        failures = match ran {
            Ok(()) => 0,
            Err(err) => {
                log::warn!("the events catch-up failed: {err:#}");
                failures.saturating_add(1)
            }
        };
        wait = backoff(interval, failures);
    }
}

fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.min(16));
    interval
        .saturating_mul(factor)
        .min(Duration::from_secs(3600).max(interval))
}

async fn run_once(store: &Store, stripe: &StripeClient, interval: Duration) -> anyhow::Result<()> {
    let Some(lock) = store.try_lock_job(JOB).await? else {
        log::debug!("another instance is catching up on events");
        return Ok(());
    };
    let recently = store
        .catch_up_state()
        .await?
        .and_then(|state| state.last_run_at)
        .is_some_and(|at| unix_now() - at < (interval.as_secs() * 9 / 10) as i64);
    let result = if recently {
        Ok(())
    } else {
        catch_up(store, stripe, None).await.map(|report| {
            if report.applied > 0 {
                log::info!("{report}");
            }
        })
    };
    lock.release().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_to_an_hour_at_most() {
        let minute = Duration::from_secs(60);
        assert_eq!(backoff(minute, 0), minute);
        assert_eq!(backoff(minute, 1), minute * 2);
        assert_eq!(backoff(minute, 3), minute * 8);
        assert_eq!(backoff(minute, 30), Duration::from_secs(3600));
        let day = Duration::from_secs(86_400);
        assert_eq!(backoff(day, 5), day, "an interval above an hour stays");
    }
}
