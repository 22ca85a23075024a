//! A queue whose writer takes everything waiting (up to a batch) at once:
//! what arrives together is written together, in one transaction, and each
//! caller is answered with its own result once the batch is done. Debits
//! and usage records are written this way; webhook ingest has a queue of
//! its own (`ingest::queue`), with a writer thread and its own batching.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

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
    /// Starts a writer that hands `write` up to `max_batch` items at a
    /// time, in order of arrival, and expects one result each, in order.
    /// Up to `capacity` items wait; callers wait for room beyond.
    pub fn start<W, F>(max_batch: usize, capacity: usize, mut write: W) -> Self
    where
        W: FnMut(Vec<T>) -> F + Send + 'static,
        F: Future<Output = Vec<R>> + Send,
    {
        let (queue, mut receiver) = mpsc::channel::<(T, oneshot::Sender<R>)>(capacity);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match receiver.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
                for (reply, result) in replies.into_iter().zip(write(items).await) {
                    let _ = reply.send(result);
                }
            }
        });
        Self { queue }
    }

    /// Queues `item` and waits for its result.
    pub async fn submit(&self, item: T) -> Result<R, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}
