//! A queue whose writer takes everything waiting (up to a batch) at once:
//! what arrives together is written together, in one transaction, and
//! each caller is answered with its own result once the batch is done. Debits
//! and usage records are written this way; webhook ingest has a queue of
//! its own (`ingest::queue`), with a writer thread and its own batching.

use std::future::Future;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::billing::writers::Writers;
use crate::metrics;

/// The queue's sending side; the writer ends when the last one is dropped.
pub struct Batches<T, R> {
    queue: mpsc::Sender<(T, oneshot::Sender<R>)>,
}

impl<T, R> Clone for Batches<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

/// The writer has stopped: nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the writer has stopped")]
pub struct Stopped;

impl<T: Send + 'static, R: Send + 'static> Batches<T, R> {
    /// Starts the writer among `writers`, handing `write` up to `max_batch`
    /// items at a time, in order of arrival, and expecting one result each,
    /// in order. While it writes, what arrives waits for the next batch. Up
    /// to `capacity` items wait; callers wait for room beyond. Each batch's
    /// size and time are metrics under `name`.
    ///
    /// One writer: on PostgreSQL a second one, deciding a batch while the
    /// first commits, served 0.78x the debits and 0.88x the usage records
    /// of one (its batches were half as large, and two batches of debits
    /// spread over many organizations almost always share a balance row
    /// and wait for each other's commit).
    pub fn start<W, F>(
        writers: &Writers,
        name: &'static str,
        max_batch: usize,
        capacity: usize,
        write: W,
    ) -> Self
    where
        W: Fn(Vec<T>) -> F + Send + Sync + 'static,
        F: Future<Output = Vec<R>> + Send,
    {
        let (queue, task) = Self::new(name, max_batch, capacity, write);
        writers.spawn(task);
        queue
    }

    /// The queue, and its writer to run.
    fn new<W, F>(
        name: &'static str,
        max_batch: usize,
        capacity: usize,
        write: W,
    ) -> (Self, impl Future<Output = ()> + Send + 'static)
    where
        W: Fn(Vec<T>) -> F + Send + Sync + 'static,
        F: Future<Output = Vec<R>> + Send,
    {
        let (queue, mut receiver) = mpsc::channel::<(T, oneshot::Sender<R>)>(capacity);
        let task = async move {
            while let Some(batch) = next_batch(&mut receiver, max_batch).await {
                let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
                let started = Instant::now();
                let results = write(items).await;
                metrics::batch(name, replies.len(), started.elapsed().as_secs_f64());
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
        };
        (Self { queue }, task)
    }

    /// Items waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Queues `item` and waits for its result.
    pub async fn submit(&self, item: T) -> Result<R, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

/// The items waiting, up to `max_batch`, once one has arrived; `None` when
/// every sender is gone.
async fn next_batch<M>(receiver: &mut mpsc::Receiver<M>, max_batch: usize) -> Option<Vec<M>> {
    let first = receiver.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max_batch {
        match receiver.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn each_caller_gets_its_own_result_from_batches_written_at_once() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let (batches, writer) = Batches::new("test", 4, 64, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.len());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                items.into_iter().map(|i| i * 10).collect::<Vec<_>>()
            }
        });
        drop(tokio::spawn(writer));
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let batches = batches.clone();
                tokio::spawn(async move { (i, batches.submit(i).await) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.unwrap();
            assert_eq!(answer, Ok(i * 10));
        }
        let sizes = sizes.lock().unwrap();
        assert!(sizes.iter().all(|n| (1..=4).contains(n)), "{sizes:?}");
        assert!(sizes.len() < 40, "nothing was batched: {sizes:?}");
    }

    #[tokio::test]
    async fn a_caller_is_told_when_the_writer_has_stopped() {
        let (batches, writer) = Batches::new("test", 4, 4, |_items: Vec<u32>| async {
            panic!("the writer fails")
        });
        let batches: Batches<u32, u32> = batches;
        drop(tokio::spawn(writer));
        assert_eq!(batches.submit(1).await, Err(Stopped));
    }
}
