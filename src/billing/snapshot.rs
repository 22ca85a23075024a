//! The daily revenue snapshot behind the operators' MRR chart. The server
//! takes it once a day (one instance at a time; a day already taken is kept),
//! and `lance-billing snapshot` takes it on demand. Each run also estimates
//! the last twelve month-ends not taken on the day from subscriptions'
//! lifetimes, marked as estimates and recomputed every run, so a state the
//! catch-up or a sync repaired shows in them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::revenue::{estimate, snapshot_of};
use crate::domain::unix_now;
use crate::store::Store;

const DAY: i64 = 86_400;
const JOB: &str = "billing-snapshot";
/// How often the server checks whether today's snapshot is taken.
const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// What a run wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Rows of today's snapshot (one per currency); 0 when already taken.
    pub today: u64,
    /// Estimated month-end rows written.
    pub estimated: u64,
}

/// Takes today's snapshot (UTC) unless taken, and estimates again the
/// month-ends before it that were not taken on the day.
pub async fn take(store: &Store, now: i64) -> anyhow::Result<Taken> {
    let today = now - now.rem_euclid(DAY);
    let mut taken = Taken::default();
    let mut days = month_ends_before(today, 12);
    if let Some(&first) = days.first() {
        let taken_days = store.days_taken(first).await?;
        days.retain(|day| !taken_days.contains(day));
        let lifetimes = store.lifetimes().await?;
        taken.estimated = store
            .replace_estimates(&days, &estimate(&days, &lifetimes), now)
            .await?;
    }
    if !store.has_snapshot(today).await? {
        let groups = store.recurring_groups().await?;
        taken.today = store
            .record_snapshots(&snapshot_of(today, &groups), now)
            .await?;
    }
    Ok(taken)
}

/// The last day of each of the `months` months before `today`'s month.
fn month_ends_before(today: i64, months: u32) -> Vec<i64> {
    let Ok(date) = time::OffsetDateTime::from_unix_timestamp(today) else {
        return Vec::new();
    };
    let mut first = date.date().replace_day(1).unwrap_or(date.date());
    let mut ends = Vec::new();
    for _ in 0..months {
        let Some(previous_end) = first.previous_day() else {
            break;
        };
        ends.push(previous_end.midnight().assume_utc().unix_timestamp());
        first = previous_end.replace_day(1).unwrap_or(previous_end);
    }
    ends.reverse();
    ends
}

/// Every hour (first 10 s after start) until `stop`: today's snapshot, on
/// one instance at a time.
pub async fn run_daily(store: Store, stop: CancellationToken) {
    let mut wait = Duration::from_secs(10);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = CHECK_EVERY;
        let run = async {
            let Some(lock) = store.try_lock_job(JOB).await? else {
                return Ok(Taken::default());
            };
            let taken = take(&store, unix_now()).await;
            lock.release().await;
            taken
        };
        let taken: anyhow::Result<Taken> = tokio::select! {
            () = stop.cancelled() => return,
            taken = run => taken,
        };
        match taken {
            Ok(taken) if taken.today > 0 => {
                log::info!("took the revenue snapshot: {taken:?}");
            }
            Ok(_) => {}
            Err(err) => log::warn!("could not take the revenue snapshot: {err:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_ends_are_the_last_days_of_the_months_before() {
        // 2026-03-15
        let today = 1_773_532_800;
        let ends = month_ends_before(today, 3);
        let dates: Vec<String> = ends
            .iter()
            .map(|t| {
                time::OffsetDateTime::from_unix_timestamp(*t)
                    .unwrap()
                    .date()
                    .to_string()
            })
            .collect();
        assert_eq!(dates, ["2025-12-31", "2026-01-31", "2026-02-28"]);
    }
}
