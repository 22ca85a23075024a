//! Durable, batched ingestion of verified webhook events.
//!
//! Each delivery is recorded and applied in the same transaction, so the
//! event log and the state never disagree. Committing once per event would
//! cap throughput at the disk's fsync rate, so writer tasks take every event
//! waiting in the queue (up to a batch size) and commit them together. If any
//! event of a batch hits a database error, the batch is rolled back and its
//! events are redone one transaction each, so only the failing event is
//! refused. A delivery is acknowledged only after its commit: a 2xx means
//! the event is on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    batches: Arc<AtomicU64>,
}

impl Ingestor {
    /// Spawns `writers` writer tasks on the current runtime.
    pub fn spawn(store: Store, writers: usize, max_batch: usize) -> Self {
        let (queue, receiver) = mpsc::channel(max_batch * writers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let batches = Arc::new(AtomicU64::new(0));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(
                store.clone(),
                receiver.clone(),
                max_batch,
                batches.clone(),
            ));
        }
        Self { queue, batches }
    }

    /// How many batches the writers have written since start.
    pub fn batches_written(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// One writer on SQLite (it has one write lock anyway), a few on PostgreSQL.
    pub fn for_store(store: Store) -> Self {
        let writers = if store.is_sqlite() { 1 } else { 4 };
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

async fn write_batches(
    store: Store,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_batch: usize,
    batches: Arc<AtomicU64>,
) {
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
        batches.fetch_add(1, Ordering::Relaxed);
    }
}

async fn write_batch(store: &Store, batch: Vec<Job>) {
    let (events, replies): (Vec<ReceivedEvent>, Vec<_>) =
        batch.into_iter().map(|job| (job.event, job.reply)).unzip();
    let outcomes = ingest_batch(store, &events).await;
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}

/// Records and applies `events` in one transaction. If it fails, each event
/// is redone in a transaction of its own, so only a failing event is refused.
/// Webhook deliveries and the Events-API catch-up both come through here.
pub async fn ingest_batch(
    store: &Store,
    events: &[ReceivedEvent],
) -> Vec<Result<Ingested, IngestError>> {
    match apply_in_one_transaction(store, events).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(err) if events.len() > 1 => {
            log::warn!(
                "a batch of {} event(s) failed ({err}); redoing them one by one",
                events.len()
            );
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                let one = apply_in_one_transaction(store, std::slice::from_ref(event)).await;
                outcomes.push(one.map(|mut o| o.remove(0)).map_err(IngestError::from));
            }
            outcomes
        }
        Err(err) => vec![Err(IngestError::from(err))],
    }
}

/// All of `events` in one transaction, or none of them.
async fn apply_in_one_transaction(
    store: &Store,
    events: &[ReceivedEvent],
) -> Result<Vec<Ingested>, StoreError> {
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        outcomes.push(record_and_apply(&mut tx, event).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
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

/// Applies an event whose record exists (marked processed); when its payload
/// cannot be applied, marks the record failed instead. Also used by
/// `events replay`.
pub async fn apply_recorded(tx: &mut Tx, event: &Event) -> Result<Ingested, StoreError> {
    match plan(event) {
        Ok(changes) => {
            apply_changes(tx, &changes).await?;
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
