//! Usage records as they arrive, stored in batches: records that arrive
//! together are written with one statement, which commits by itself, and
//! each caller is answered once its record is committed.

use super::Usage;
use crate::billing::batches::Batches;
use crate::billing::writers::Writers;
use crate::domain::unix_now;
use crate::store::{NewUsage, Recorded};

/// Records written by one statement at most.
const MAX_BATCH: usize = 512;
/// Records waiting for the writer at most; callers wait for room.
const QUEUE: usize = 8192;

/// The intake's queue, and the task that writes it.
#[derive(Clone)]
pub struct UsageIntake {
    queue: Batches<NewUsage, Result<Recorded, String>>,
}

impl UsageIntake {
    /// Starts the writer among `writers`; it ends when the last
    /// `UsageIntake` is dropped.
    pub fn start(writers: &Writers) -> Self {
        let store = writers.store().clone();
        let queue = Batches::start(
            writers,
            "usage",
            MAX_BATCH,
            QUEUE,
            move |usage: Vec<NewUsage>| {
                let store = store.clone();
                async move {
                    match store.record_usage(&usage).await {
                        Ok(recorded) => recorded.into_iter().map(Ok).collect(),
                        // Each caller answers 500 and retries: a retry of a record
                        // that was stored is answered as its duplicate.
                        Err(err) => vec![Err(err.to_string()); usage.len()],
                    }
                }
            },
        );
        Self { queue }
    }

    /// Records waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue.queued()
    }

    /// Stores `usage` of `org` (whose Stripe customer is `customer`) to be
    /// sent; answers once it is committed.
    pub async fn record(
        &self,
        org: &str,
        customer: &str,
        usage: &Usage,
    ) -> Result<Recorded, String> {
        let usage = NewUsage {
            id: uuid::Uuid::now_v7().simple().to_string(),
            identifier: usage.identifier.clone(),
            org_id: org.to_owned(),
            customer_id: customer.to_owned(),
            meter: usage.meter.clone(),
            value: usage.value,
            occurred_at: usage.occurred_at,
            time_stated: usage.time_stated,
            received_at: unix_now(),
        };
        self.queue
            .submit(usage)
            .await
            .map_err(|stopped| stopped.to_string())?
    }
}
