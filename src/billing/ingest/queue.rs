//! The queue of received deliveries, the batches writers make of it, and
//! the writers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, MutexGuard, mpsc, oneshot};
use tokio::time::{Duration, Instant};

use super::transaction::{apply_in, ingest_in};
use super::{IngestError, Ingested, ReceivedEvent};
use crate::billing::writers::Writers;
use crate::metrics;
use crate::store::{Store, StoreError, Tx};

/// How the writers make batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// The most events one transaction carries.
    pub max: usize,
    /// The longest a writer waits for a batch to fill as the last one did.
    pub linger: Duration,
    /// Whether a writer writes the deliveries that arrive while a batch is
    /// open as they come (`Batch::write_as_they_arrive`), or gathers the
    /// batch, then writes it at once.
    pub as_they_arrive: bool,
}

impl Batching {
    /// The usual batches for `store`'s backend (measured in
    /// docs/benchmarks.md). On SQLite a statement is no round trip and the database's CPU
    /// is the writer's own, so a writer writes deliveries as they arrive and
    /// waits for none: it writes what came while it wrote, and commits once
    /// nothing did. On PostgreSQL each group of deliveries would cost round
    /// trips and the server's CPU, so a writer waits up to 1 ms for as many
    /// deliveries as its last batch had, then writes them at once.
    pub fn for_store(store: &Store) -> Self {
        let sqlite = store.is_sqlite();
        Self {
            max: 64,
            linger: if sqlite {
                Duration::ZERO
            } else {
                Duration::from_millis(1)
            },
            as_they_arrive: sqlite,
        }
    }
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
    /// Starts `count` writer tasks among `writers`, making batches as
    /// `batching` says.
    pub fn spawn(writers: &Writers, count: usize, batching: Batching) -> Self {
        let count = count.max(1);
        let batching = Batching {
            max: batching.max.max(1),
            ..batching
        };
        let (queue, receiver) = mpsc::channel(batching.max * count * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let batches = Arc::new(AtomicU64::new(0));
        for _ in 0..count {
            writers.spawn(write_batches(
                writers.store().clone(),
                receiver.clone(),
                batching,
                batches.clone(),
            ));
        }
        Self { queue, batches }
    }

    /// How many batches the writers have written since start.
    pub fn batches_written(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// `count` writer tasks among `writers`, making the usual batches for
    /// the backend.
    pub fn for_store(writers: &Writers, count: usize) -> Self {
        let batching = Batching::for_store(writers.store());
        Self::spawn(writers, count, batching)
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
    batching: Batching,
    batches: Arc<AtomicU64>,
) {
    let mut last_size = 1;
    loop {
        let mut batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut batch = Batch::new(first, batching.max);
            batch.take_queued(&mut receiver);
            batch
        };
        let started = Instant::now();
        // Opening the transaction takes a round trip (on SQLite, the wait for
        // another writer's commit): what arrives meanwhile joins this batch.
        let tx = store.begin().await;
        // Under load, the deliveries answered with the last batch come back
        // a moment later: a short wait for as many as it had costs less than
        // a round of statements and a commit for the few here already.
        let fill = Fill {
            target: last_size.min(batching.max),
            deadline: Instant::now() + batching.linger,
        };
        // Another writer holding the queue is gathering its own batch.
        let queue = receiver.try_lock().ok();
        let outcomes = match tx {
            Ok(tx) if batching.as_they_arrive => {
                match batch.write_as_they_arrive(tx, queue, fill).await {
                    Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
                    Err(err) => ingest_in(&store, Err(err), &batch.events).await,
                }
            }
            tx => {
                batch.gather(queue, fill).await;
                ingest_in(&store, tx, &batch.events).await
            }
        };
        last_size = batch.events.len();
        metrics::ingest_batch(last_size, started.elapsed().as_secs_f64());
        batch.answer(outcomes);
        batches.fetch_add(1, Ordering::Relaxed);
    }
}

/// The deliveries of one transaction, and where each one's answer goes.
struct Batch {
    events: Vec<ReceivedEvent>,
    replies: Vec<oneshot::Sender<Result<Ingested, IngestError>>>,
    max: usize,
}

/// How long a writer waits for a batch to fill, and to how many.
#[derive(Clone, Copy)]
struct Fill {
    target: usize,
    deadline: Instant,
}

impl Batch {
    fn new(first: Job, max: usize) -> Self {
        let mut batch = Self {
            events: Vec::with_capacity(max),
            replies: Vec::with_capacity(max),
            max,
        };
        batch.push(first);
        batch
    }

    fn push(&mut self, job: Job) {
        self.events.push(job.event);
        self.replies.push(job.reply);
    }

    /// Adds the deliveries already queued, up to the most a batch carries.
    fn take_queued(&mut self, queue: &mut mpsc::Receiver<Job>) {
        while self.events.len() < self.max {
            match queue.try_recv() {
                Ok(job) => self.push(job),
                Err(_) => break,
            }
        }
    }

    /// Waits until the deadline for one more delivery, then takes those
    /// queued behind it; false if none came. Called only below
    /// `fill.target`, which is at most `max`.
    async fn wait_for_more(&mut self, queue: &mut mpsc::Receiver<Job>, fill: Fill) -> bool {
        match tokio::time::timeout_at(fill.deadline, queue.recv()).await {
            Ok(Some(job)) => {
                self.push(job);
                self.take_queued(queue);
                true
            }
            Ok(None) | Err(_) => false,
        }
    }

    /// Takes what is queued, then waits for the batch to fill (or the
    /// deadline to pass); then lets the queue go.
    async fn gather(&mut self, queue: Option<MutexGuard<'_, mpsc::Receiver<Job>>>, fill: Fill) {
        if let Some(mut queue) = queue {
            self.take_queued(&mut queue);
            while self.events.len() < fill.target && self.wait_for_more(&mut queue, fill).await {}
        }
    }

    /// Writes the deliveries in `tx` group by group as they arrive, until
    /// the batch fills or the deadline passes, then lets the queue go and
    /// commits them together: the writer writes while the HTTP side reads
    /// the rest, and the commit waits only for the last group. A delivery
    /// repeated in a later group finds its record from an earlier one (a
    /// duplicate, or a failure recorded again). On an error nothing is
    /// committed, and the caller redoes the events one by one (`ingest_in`).
    async fn write_as_they_arrive(
        &mut self,
        mut tx: Tx,
        mut queue: Option<MutexGuard<'_, mpsc::Receiver<Job>>>,
        fill: Fill,
    ) -> Result<Vec<Ingested>, StoreError> {
        let mut outcomes = Vec::with_capacity(self.max);
        loop {
            if let Some(queue) = queue.as_deref_mut() {
                self.take_queued(queue);
            }
            let arrived = &self.events[outcomes.len()..];
            outcomes.extend(apply_in(&mut tx, arrived).await?);
            let more = match queue.as_deref_mut() {
                Some(queue) if self.events.len() < fill.target => {
                    self.wait_for_more(queue, fill).await
                }
                _ => false,
            };
            if !more {
                break;
            }
        }
        drop(queue);
        tx.commit().await?;
        Ok(outcomes)
    }

    fn answer(self, outcomes: Vec<Result<Ingested, IngestError>>) {
        for (reply, outcome) in self.replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}
