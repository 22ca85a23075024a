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
//! The writers run on a thread of their own, beside their connections
//! (`on_a_thread_of_their_own`), woken without preempting them
//! (`wake_without_preempting`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::join_all;
use tokio::sync::{Mutex, MutexGuard, mpsc, oneshot};
use tokio::time::{Duration, Instant};

use super::apply::record_and_apply;
use super::{Change, apply_changes, plan};
use crate::store::{EventRecord, Store, StoreError, Tx};
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
    /// Plans the event's changes (pure work, done by the caller's task).
    pub fn new(event: Event, payload: String) -> Self {
        let planned = plan(&event).map_err(|err| err.to_string());
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

    /// Plans the event's changes when its mode is the key's (`live`); an
    /// event of the other mode is recorded and acknowledged, never applied.
    pub fn for_key(event: Event, payload: String, live: bool) -> Self {
        if event.livemode == live {
            return Self::new(event, payload);
        }
        log::warn!(
            "event {} ({}) is a {} event but the key is a {} key: recorded, not applied",
            event.id,
            event.kind,
            mode(event.livemode),
            mode(live)
        );
        Self {
            customer: None,
            event,
            payload,
            planned: Ok(Vec::new()),
        }
    }
}

fn mode(live: bool) -> &'static str {
    if live { "live-mode" } else { "test-mode" }
}

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
    /// Starts `writers` writer tasks making batches as `batching` says: with
    /// `pinned`, on a thread of their own beside their write connections
    /// (`on_a_thread_of_their_own`); otherwise on the current runtime.
    pub async fn spawn(
        store: Store,
        writers: usize,
        batching: Batching,
        pinned: bool,
    ) -> std::io::Result<Self> {
        let writers = writers.max(1);
        let batching = Batching {
            max: batching.max.max(1),
            ..batching
        };
        let (queue, receiver) = mpsc::channel(batching.max * writers * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let batches = Arc::new(AtomicU64::new(0));
        let tasks = {
            let batches = batches.clone();
            move |store: Store| -> Vec<_> {
                (0..writers)
                    .map(|_| {
                        write_batches(store.clone(), receiver.clone(), batching, batches.clone())
                    })
                    .collect()
            }
        };
        if pinned {
            on_a_thread_of_their_own(store, writers, tasks).await?;
        } else {
            for task in tasks(store) {
                tokio::spawn(task);
            }
        }
        Ok(Self { queue, batches })
    }

    /// How many batches the writers have written since start.
    pub fn batches_written(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// `writers` writer tasks making the usual batches for the backend.
    pub async fn for_store(store: Store, writers: usize, pinned: bool) -> std::io::Result<Self> {
        let batching = Batching::for_store(&store);
        Self::spawn(store, writers, batching, pinned).await
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

/// Runs the writers on a thread of their own, held to one core, writing
/// through connections opened from it (`Store::open_writes_here`). sqlx runs
/// each SQLite connection on a thread of its own, which the writer meets at
/// every statement (about ten a batch, each a hand-off both ways); on two
/// cores, each hand-off wakes the other core, which on a virtual machine
/// costs about 0.1 ms. A thread starts on its creator's cores, so the
/// reopened connection's thread shares the writer's core, and the hand-offs
/// stay on it: 1.25x the ingest rate on SQLite (docs/benchmarks.md). A
/// PostgreSQL connection's socket wakes the runtime it was opened on:
/// opened here, its answers wake the writer's thread itself instead of the
/// main runtime's (1.11-1.30x on PostgreSQL). The rest of the server keeps
/// every core.
async fn on_a_thread_of_their_own<W>(
    store: Store,
    writers: usize,
    tasks: impl FnOnce(Store) -> Vec<W> + Send + 'static,
) -> std::io::Result<()>
where
    W: Future<Output = ()> + Send + 'static,
{
    let (started, ready) = oneshot::channel();
    std::thread::Builder::new()
        .name("ingest-writer".to_owned())
        .spawn(move || {
            hold_to_one_core();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = started.send(Err(err));
                    return;
                }
            };
            runtime.block_on(async move {
                let connections = u32::try_from(writers).unwrap_or(u32::MAX);
                let own = match store.open_writes_here(connections).await {
                    Ok(own) => Some(own),
                    Err(err) => {
                        // The store's own connections serve: slower, not wrong.
                        log::warn!(
                            "could not open write connections beside the ingest writer: {err}"
                        );
                        None
                    }
                };
                // After the connections open: the thread each SQLite
                // connection starts keeps the usual policy.
                wake_without_preempting();
                let _ = started.send(Ok(()));
                join_all(tasks(own.clone().unwrap_or(store))).await;
                if let Some(own) = own {
                    own.close_writes_opened_here().await;
                }
            });
        })?;
    ready.await.unwrap_or_else(|_| {
        Err(std::io::Error::other(
            "the ingest writer's thread ended at start",
        ))
    })
}

/// Holds the calling thread to the last of the cores this process may use
/// (the first tends to take the most interrupts).
fn hold_to_one_core() {
    let last = core_affinity::get_core_ids().and_then(|cores| cores.last().copied());
    match last {
        Some(core) if core_affinity::set_for_current(core) => {
            log::debug!("the ingest writer runs on core {}", core.id);
        }
        // Not every platform lets a thread choose its core: slower, not wrong.
        _ => log::info!("could not hold the ingest writer to one core; it runs on any"),
    }
}

/// Puts the calling thread under `SCHED_BATCH`, at the usual nice value: a
/// thread under it that is woken does not preempt the one running, and
/// waits for it to block or for the scheduler's tick. sqlx's SQLite
/// connection sends each row a statement returns on its own, and each wakes
/// the writer: on their shared core the woken writer took the core for each
/// row and gave it back at once: about 190 switches a batch of 32 (a batch's
/// statements return about three rows an event). Under this policy the
/// connection sends all its rows first and the writer takes them at once:
/// about 45, and 1.12x the ingest rate on SQLite (docs/benchmarks.md). Only
/// the writer's thread: its connection's thread, under it too,
/// measured no better.
fn wake_without_preempting() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityOsValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    let usual_nice = ThreadPriority::Os(ThreadPriorityOsValue::default());
    match set_thread_priority_and_policy(thread_native_id(), usual_nice, batch) {
        Ok(()) => log::debug!("the ingest writer runs under SCHED_BATCH"),
        // Not every platform has the policy: more switches, not wrong.
        Err(err) => log::info!("could not put the ingest writer under SCHED_BATCH: {err:?}"),
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

/// Records and applies `events` in one transaction. If it fails, each event
/// is redone in a transaction of its own, so only a failing event is refused.
/// Webhook deliveries and the Events-API catch-up both come through here.
pub async fn ingest_batch(
    store: &Store,
    events: &[ReceivedEvent],
) -> Vec<Result<Ingested, IngestError>> {
    ingest_in(store, store.begin().await, events).await
}

/// `ingest_batch`, its first attempt in `tx`.
async fn ingest_in(
    store: &Store,
    tx: Result<Tx, StoreError>,
    events: &[ReceivedEvent],
) -> Vec<Result<Ingested, IngestError>> {
    let first_attempt = match tx {
        Ok(tx) => apply_in_one_transaction(tx, events).await,
        Err(err) => Err(err),
    };
    match first_attempt {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(err) if events.len() > 1 => {
            log::warn!(
                "a batch of {} event(s) failed ({err}); redoing them one by one",
                events.len()
            );
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                let one = match store.begin().await {
                    Ok(tx) => apply_in_one_transaction(tx, std::slice::from_ref(event)).await,
                    Err(err) => Err(err),
                };
                outcomes.push(one.map(|mut o| o.remove(0)).map_err(IngestError::from));
            }
            outcomes
        }
        Err(err) => vec![Err(IngestError::from(err))],
    }
}

/// All of `events` in one transaction, or none of them. A repeat of an id
/// inside the batch is a duplicate of its first delivery.
async fn apply_in_one_transaction(
    mut tx: Tx,
    events: &[ReceivedEvent],
) -> Result<Vec<Ingested>, StoreError> {
    let outcomes = apply_in(&mut tx, events).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Records and applies `events` in `tx`, uncommitted.
async fn apply_in(tx: &mut Tx, events: &[ReceivedEvent]) -> Result<Vec<Ingested>, StoreError> {
    let mut first = HashSet::new();
    let firsts: Vec<bool> = events
        .iter()
        .map(|e| first.insert(e.event.id.as_str()))
        .collect();
    let first_deliveries: Vec<&ReceivedEvent> = events
        .iter()
        .zip(&firsts)
        .filter_map(|(received, first)| first.then_some(received))
        .collect();
    let records: Vec<EventRecord<'_>> = first_deliveries.iter().map(|r| record_of(r)).collect();
    let planned: Vec<(&str, &[Change])> = first_deliveries
        .iter()
        .filter_map(|received| {
            let changes = received.planned.as_ref().ok()?;
            Some((received.event.id.as_str(), changes.as_slice()))
        })
        .collect();
    let recorded = record_and_apply(tx, &records, &planned).await?;
    let (held, recorded) = (recorded.held, recorded.ids);
    let mut outcomes = Vec::with_capacity(events.len());
    for (received, first) in events.iter().zip(firsts) {
        let event = &received.event;
        if !first || !recorded.contains(&event.id) {
            outcomes.push(Ingested::Duplicate);
            continue;
        }
        match &received.planned {
            Ok(_) => match held.get(&event.id) {
                Some(reason) => outcomes.push(Ingested::Failed(reason.clone())),
                None => outcomes.push(Ingested::Applied),
            },
            Err(reason) => {
                log::error!(
                    "webhook event {} ({}) could not be applied: {reason}",
                    event.id,
                    event.kind
                );
                outcomes.push(Ingested::Failed(reason.clone()));
            }
        }
    }
    Ok(outcomes)
}

fn record_of(received: &ReceivedEvent) -> EventRecord<'_> {
    let event = &received.event;
    EventRecord {
        id: &event.id,
        kind: &event.kind,
        created: event.created,
        api_version: event.api_version.as_deref(),
        livemode: event.livemode,
        customer: received.customer.as_deref(),
        payload: &received.payload,
        failure: received.planned.as_ref().err().map(String::as_str),
    }
}

/// Applies an event whose record exists (marked processed); when its payload
/// cannot be applied, marks the record failed instead. Used by
/// `events replay`.
pub async fn apply_recorded(tx: &mut Tx, event: &Event) -> Result<Ingested, StoreError> {
    match plan(event) {
        Ok(changes) => {
            let applied = apply_changes(tx, &changes).await?;
            if let Some(reason) = applied.held.into_iter().next() {
                tx.mark_event_failed(&event.id, &reason).await?;
                return Ok(Ingested::Failed(reason));
            }
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
