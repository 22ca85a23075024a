//! Event payloads are kept for `EVENT_PAYLOAD_RETENTION`, then emptied:
//! they hold customers' names and emails, and the ids alone keep a late
//! redelivery a duplicate. Hourly, on whichever instance runs it (the
//! update is idempotent).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::unix_now;
use crate::store::Store;

const EVERY: Duration = Duration::from_secs(3600);

/// Empties the payloads older than `kept`; returns how many.
pub async fn prune(store: &Store, kept: Duration, now: i64) -> anyhow::Result<u64> {
    let kept = i64::try_from(kept.as_secs()).unwrap_or(i64::MAX);
    Ok(store.prune_event_payloads(now.saturating_sub(kept)).await?)
}

/// Prunes every hour (the first a minute after start) until `stop`.
pub async fn run_hourly(store: Store, kept: Duration, stop: CancellationToken) {
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        match prune(&store, kept, unix_now()).await {
            Ok(0) => {}
            Ok(pruned) => log::info!("emptied {pruned} event payload(s) past their retention"),
            Err(err) => log::warn!("could not prune event payloads: {err:#}"),
        }
    }
}
