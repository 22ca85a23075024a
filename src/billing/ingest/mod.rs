//! Durable, batched ingestion of verified webhook events.
//!
//! Each delivery is recorded and applied in the same transaction, so the
//! event log and the state never disagree. Committing once per event would
//! cap throughput at the disk's fsync rate, so writer tasks take every event
//! waiting in the queue (up to a batch size) and commit them together (on
//! SQLite writing those that arrive while the batch is open as they come); and
//! a statement per event would cap it at the round trips, so a batch is
//! written set-wise: one statement records all its events and writes each
//! synced table its changes touch (on PostgreSQL; a statement each on
//! SQLite), and one more its links (see `apply`). An event's
//! changes are planned where it is received, off the writers. If a batch
//! hits a database error, it is rolled back and its events are redone one
//! transaction each, so only the failing event is refused. A delivery is
//! acknowledged only after its commit: a 2xx means the event is on disk.
//! The writers run where the debits' and the usage intake's do
//! (`billing::writers`): by default on a thread of their own, beside their
//! connections.
//!
//! | file             | what                                                   |
//! |------------------|--------------------------------------------------------|
//! | `mod.rs`         | a received delivery, what ingesting it answers         |
//! | `queue.rs`       | the queue, its batches and the writers that take them  |
//! | `transaction.rs` | a batch in one transaction, else one event at a time   |

mod queue;
mod transaction;

pub use queue::{Batching, Ingestor};
pub use transaction::{apply_recorded, ingest_batch};

use super::rules::PlanError;
use super::{Change, plan};
use crate::store::StoreError;
use crate::stripe::objects::Event;

/// A verified delivery: the parsed envelope, the exact bytes Stripe sent,
/// and the changes it asks for (or why it cannot be applied).
pub struct ReceivedEvent {
    pub event: Event,
    pub payload: String,
    /// The customer the event's changes are about, for finding its events.
    customer: Option<String>,
    planned: Result<Vec<Change>, String>,
}

impl ReceivedEvent {
    /// An event with the changes planned for it where it was received
    /// (`rules::plan_for_key`), so the writers only write.
    pub fn planned(event: Event, payload: String, planned: Result<Vec<Change>, PlanError>) -> Self {
        let planned = planned.map_err(|err| err.to_string());
        let customer = planned
            .as_ref()
            .ok()
            .and_then(|changes| changes.iter().find_map(Change::customer))
            .map(str::to_owned);
        Self {
            customer,
            event,
            payload,
            planned,
        }
    }

    /// An event of the key's mode, planned here.
    pub fn new(event: Event, payload: String) -> Self {
        let planned = plan(&event);
        Self::planned(event, payload, planned)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    Applied,
    /// Already applied before: nothing changed.
    Duplicate,
    /// Recorded, but its payload could not be applied; kept for
    /// `lance-billing events replay --failed`.
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the ingest queue is closed")]
    Closed,
}
