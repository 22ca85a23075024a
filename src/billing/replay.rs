//! `lance-billing events replay`: re-applies stored events. Safe for events
//! already applied (their versions are not newer, so nothing changes).

use std::fmt;

use super::Ingested;
use super::ingest::apply_recorded;
use crate::store::{Store, StoreError, StoredEvent};
use crate::stripe::objects::Event;

pub enum Selection {
    /// Every event recorded but not applied.
    Failed,
    One(String),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub applied: usize,
    pub failed: usize,
    pub missing: usize,
    /// Of the other mode than the key's: never applied.
    pub other_mode: usize,
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed: {} applied, {} still failing",
            self.applied, self.failed
        )?;
        if self.other_mode > 0 {
            write!(f, ", {} of the other mode left alone", self.other_mode)?;
        }
        if self.missing > 0 {
            write!(f, ", {} not found", self.missing)?;
        }
        Ok(())
    }
}

/// At most this many failed events per run, oldest first.
const MAX_FAILED_PER_RUN: i64 = 10_000;

/// Replays the selected events; `live` is the key's mode, and events of the
/// other mode are left as they are.
pub async fn replay(
    store: &Store,
    selection: Selection,
    live: bool,
) -> Result<ReplayReport, StoreError> {
    let mut report = ReplayReport::default();
    let events = match selection {
        Selection::Failed => store.failed_events(MAX_FAILED_PER_RUN).await?,
        Selection::One(id) => match store.event(&id).await? {
            Some(event) => vec![event],
            None => {
                report.missing += 1;
                Vec::new()
            }
        },
    };
    for stored in &events {
        if stored.livemode != live {
            report.other_mode += 1;
            continue;
        }
        match replay_one(store, stored).await? {
            Ingested::Failed(_) => report.failed += 1,
            Ingested::Applied | Ingested::Duplicate => report.applied += 1,
        }
    }
    Ok(report)
}

async fn replay_one(store: &Store, stored: &StoredEvent) -> Result<Ingested, StoreError> {
    let mut tx = store.begin().await?;
    let outcome = match serde_json::from_str::<Event>(&stored.payload) {
        Ok(event) => {
            let outcome = apply_recorded(&mut tx, &event).await?;
            if outcome == Ingested::Applied {
                tx.mark_event_processed(&stored.id).await?;
            }
            outcome
        }
        Err(err) => {
            let reason = format!("stored payload is not an event: {err}");
            tx.mark_event_failed(&stored.id, &reason).await?;
            Ingested::Failed(reason)
        }
    };
    tx.commit().await?;
    Ok(outcome)
}
