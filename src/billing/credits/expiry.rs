//! Credits past their lifetime leave the balance: every minute, on whichever
//! instance runs it. Two instances at once are harmless: each writes a lot
//! off only after locking its balance and reading it again.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::unix_now;
use crate::store::{Store, StoreError};

const EVERY: Duration = Duration::from_secs(60);
/// Lots written off in one transaction at most.
const BATCH: i64 = 500;

/// Writes off every lot expired at `now`; returns how many.
pub async fn expire_due(store: &Store, now: i64) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let mut tx = store.begin().await?;
        let expired = tx.expire_lots(now, BATCH).await?;
        tx.commit().await?;
        total += expired;
        if expired < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Writes off expired lots every minute until `stop`.
pub async fn run_every_minute(store: Store, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        match expire_due(&store, unix_now()).await {
            Ok(0) => {}
            Ok(expired) => log::info!("wrote off {expired} expired credit lot(s)"),
            Err(err) => log::warn!("could not write off expired credits: {err}"),
        }
    }
}
