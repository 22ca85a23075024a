//! Durable, batched ingestion of verified webhook events.
//!
//! Each delivery is recorded and applied in the same transaction, so the
//! event log and the state never disagree. Committing once per event would
//! cap throughput at the disk's fsync rate, so writer tasks take every event
//! waiting in the queue (up to a batch size) and commit them together; each
//! event runs under a savepoint, so one failure does not undo the others. A
//! delivery is acknowledged only after its batch commits: a 2xx means the
//! event is on disk.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::{apply_changes, plan};
use crate::store::{EventRecord, RecordOutcome, Store, StoreError, Tx};
use crate::stripe::objects::Event;

/// A verified delivery: the parsed envelope and the exact bytes Stripe sent.
pub struct ReceivedEvent {
    pub event: Event,
    pub payload: String,
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
    #[error("the batch could not be committed: {0}")]
    Commit(String),
    #[error("the ingest queue is closed")]
    Closed,
}

struct Job {
    event: ReceivedEvent,
    reply: oneshot::Sender<Result<Ingested, IngestError>>,
}

#[derive(Clone)]
pub struct Ingestor {
    queue: mpsc::Sender<Job>,
}

impl Ingestor {
    /// Spawns `writers` writer tasks on the current runtime.
    pub fn spawn(store: Store, writers: usize, max_batch: usize) -> Self {
        let (queue, receiver) = mpsc::channel(max_batch * writers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(store.clone(), receiver.clone(), max_batch));
        }
        Self { queue }
    }

    /// One writer on SQLite (it has one write lock anyway), a few on PostgreSQL.
    pub fn for_store(store: Store) -> Self {
        let writers = match store {
            Store::Sqlite(_) => 1,
            Store::Postgres(_) => 4,
        };
        Self::spawn(store, writers, 64)
    }

    pub async fn submit(&self, event: ReceivedEvent) -> Result<Ingested, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { event, reply })
            .await
            .map_err(|_| IngestError::Closed)?;
        answer.await.map_err(|_| IngestError::Closed)?
    }
}

async fn write_batches(store: Store, receiver: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    loop {
        let batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match receiver.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        write_batch(&store, batch).await;
    }
}

async fn write_batch(store: &Store, batch: Vec<Job>) {
    let outcomes: Vec<Result<Ingested, IngestError>> = match apply_batch(store, &batch).await {
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|o| o.map_err(IngestError::from))
            .collect(),
        Err(err) => {
            log::error!(
                "a batch of {} webhook event(s) failed to commit: {err}",
                batch.len()
            );
            batch
                .iter()
                .map(|_| Err(IngestError::Commit(err.to_string())))
                .collect()
        }
    };
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        let _ = job.reply.send(outcome);
    }
}

/// Outcomes per job; `Err` for the whole batch only when the commit fails.
async fn apply_batch(
    store: &Store,
    batch: &[Job],
) -> Result<Vec<Result<Ingested, StoreError>>, StoreError> {
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        outcomes.push(apply_isolated(&mut tx, &job.event).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Applies one event under a savepoint. The outer `Err` means the
/// transaction itself is unusable; the inner one fails only this event.
async fn apply_isolated(
    tx: &mut Tx,
    received: &ReceivedEvent,
) -> Result<Result<Ingested, StoreError>, StoreError> {
    tx.savepoint().await?;
    match record_and_apply(tx, received).await {
        Ok(outcome) => {
            tx.release_savepoint().await?;
            Ok(Ok(outcome))
        }
        Err(err) => {
            tx.rollback_to_savepoint().await?;
            tx.release_savepoint().await?;
            log::error!("webhook event {} was not applied: {err}", received.event.id);
            Ok(Err(err))
        }
    }
}

async fn record_and_apply(tx: &mut Tx, received: &ReceivedEvent) -> Result<Ingested, StoreError> {
    let event = &received.event;
    let record = EventRecord {
        id: &event.id,
        kind: &event.kind,
        created: event.created,
        api_version: event.api_version.as_deref(),
        livemode: event.livemode,
        payload: &received.payload,
    };
    match tx.record_event(&record).await? {
        RecordOutcome::AlreadyProcessed => Ok(Ingested::Duplicate),
        RecordOutcome::Apply { .. } => apply_recorded(tx, event).await,
    }
}

/// Applies an event whose record exists, and marks the record. Also used by
/// `events replay`.
pub async fn apply_recorded(tx: &mut Tx, event: &Event) -> Result<Ingested, StoreError> {
    match plan(event) {
        Ok(changes) => {
            apply_changes(tx, &changes).await?;
            tx.mark_event_processed(&event.id).await?;
            Ok(Ingested::Applied)
        }
        Err(err) => {
            let reason = err.to_string();
            log::error!(
                "webhook event {} ({}) could not be applied: {reason}",
                event.id,
                event.kind
            );
            tx.mark_event_failed(&event.id, &reason).await?;
            Ok(Ingested::Failed(reason))
        }
    }
}
