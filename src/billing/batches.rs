//! A queue whose writers each take everything waiting (up to a batch) at
//! once: what arrives together is written together, in one transaction, and
//! each caller is answered with its own result once the batch is done. Debits
//! and usage records are written this way; webhook ingest has a queue of
//! its own (`ingest::queue`), with a writer thread and its own batching.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::billing::writers::Writers;

/// The queue's sending side; the writers end when the last one is dropped.
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
    /// Starts as many writers among `writers` as their store writes with
    /// at once (`Store::concurrent_writers`), each handing `write` up to
    /// `max_batch` items at a time, in order of arrival, and expecting one
    /// result each, in order. While one writer writes, the next takes what
    /// has arrived since. Up to `capacity` items wait; callers wait for room
    /// beyond.
    pub fn start<W, F>(writers: &Writers, max_batch: usize, capacity: usize, write: W) -> Self
    where
        W: Fn(Vec<T>) -> F + Send + Sync + 'static,
        F: Future<Output = Vec<R>> + Send,
    {
        let count = writers.store().concurrent_writers();
        let (queue, tasks) = Self::new(max_batch, capacity, count, write);
        for task in tasks {
            writers.spawn(task);
        }
        queue
    }

    /// The queue, and its `count` writers to run.
    fn new<W, F>(
        max_batch: usize,
        capacity: usize,
        count: usize,
        write: W,
    ) -> (Self, Vec<impl Future<Output = ()> + Send + 'static>)
    where
        W: Fn(Vec<T>) -> F + Send + Sync + 'static,
        F: Future<Output = Vec<R>> + Send,
    {
        let (queue, receiver) = mpsc::channel::<(T, oneshot::Sender<R>)>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let write = Arc::new(write);
        let tasks = (0..count.max(1))
            .map(|_| {
                let receiver = receiver.clone();
                let write = write.clone();
                async move {
                    while let Some(batch) = next_batch(&receiver, max_batch).await {
                        let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) =
                            batch.into_iter().unzip();
                        for (reply, result) in replies.into_iter().zip(write(items).await) {
                            let _ = reply.send(result);
                        }
                    }
                }
            })
            .collect();
        (Self { queue }, tasks)
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
async fn next_batch<M>(receiver: &Mutex<mpsc::Receiver<M>>, max_batch: usize) -> Option<Vec<M>> {
    let mut receiver = receiver.lock().await;
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn each_caller_gets_its_own_result_from_batches_written_at_once() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most_in_flight = Arc::new(AtomicUsize::new(0));
        let (now, most) = (in_flight.clone(), most_in_flight.clone());
        let (batches, writers) = Batches::new(4, 64, 2, move |items: Vec<u32>| {
            let (now, most) = (now.clone(), most.clone());
            async move {
                most.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                items.into_iter().map(|i| i * 10).collect::<Vec<_>>()
            }
        });
        writers.into_iter().for_each(|w| drop(tokio::spawn(w)));
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
        assert_eq!(most_in_flight.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_caller_is_told_when_the_writers_have_stopped() {
        let (batches, writers) = Batches::new(4, 4, 1, |_items: Vec<u32>| async {
            panic!("the writer fails")
        });
        let batches: Batches<u32, u32> = batches;
        writers.into_iter().for_each(|w| drop(tokio::spawn(w)));
        assert_eq!(batches.submit(1).await, Err(Stopped));
    }
}
