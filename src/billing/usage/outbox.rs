//! The outbox worker: stored usage sent to Stripe's meter events API, in
//! order of arrival, at most `STRIPE_METER_EVENTS_PER_SECOND`.

use std::num::NonZeroU32;
use std::time::Duration;

use futures_util::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::domain::unix_now;
use crate::store::{DueUsage, Store, StoreError};
use crate::stripe::{StripeClient, StripeError};

const TICK: Duration = Duration::from_secs(1);
/// How long a claimed record is left to the instance that claimed it.
const LEASE_SECS: i64 = 60;
const MAX_BACKOFF_SECS: i64 = 600;
/// Requests to Stripe in flight at once.
const IN_FLIGHT: usize = 16;

/// What one drain did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// Sends Stripe the records due by `now`: at most `per_second` of them,
/// paced by `limiter`, so a drain a second never outruns it.
pub async fn drain_due(
    store: &Store,
    stripe: &StripeClient,
    limiter: &DefaultDirectRateLimiter,
    per_second: u32,
    now: i64,
) -> Result<Drained, StoreError> {
    let due = store
        .claim_usage(now, i64::from(per_second), LEASE_SECS)
        .await?;
    let outcomes: Vec<(DueUsage, Result<(), StripeError>)> = futures_util::stream::iter(due)
        .map(|usage| async move {
            limiter.until_ready().await;
            let sent = stripe
                .create_meter_event(
                    &usage.meter,
                    &usage.identifier,
                    &usage.customer_id,
                    usage.value,
                    usage.occurred_at,
                )
                .await
                .map(|_| ());
            (usage, sent)
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let mut drained = Drained::default();
    for (usage, sent) in outcomes {
        match sent {
            Ok(()) => {
                store.usage_sent(&usage.id, unix_now()).await?;
                drained.sent += 1;
            }
            Err(err) if is_permanent(&err) => {
                log::warn!(
                    "Stripe refused usage {} of meter {}: {err}",
                    usage.identifier,
                    usage.meter
                );
                store.usage_failed(&usage.id, &refusal(&err)).await?;
                drained.failed += 1;
            }
            Err(err) => {
                let at = now + backoff_secs(usage.attempts);
                store.retry_usage(&usage.id, at, &err.to_string()).await?;
                drained.retried += 1;
            }
        }
    }
    Ok(drained)
}

/// A refusal that sending again cannot change: Stripe's 4xx other than
/// 409 (a concurrent request under the same key) and 429.
fn is_permanent(err: &StripeError) -> bool {
    err.status().is_some_and(|status| {
        status.is_client_error()
            && status != StatusCode::CONFLICT
            && status != StatusCode::TOO_MANY_REQUESTS
            && status != StatusCode::UNAUTHORIZED
    })
}

/// Stripe's own sentence, for the operator.
fn refusal(err: &StripeError) -> String {
    match err {
        StripeError::Api { body, .. } => body.message.clone().unwrap_or_else(|| err.to_string()),
        other => other.to_string(),
    }
}

fn backoff_secs(attempts: i32) -> i64 {
    let exponent = u32::try_from(attempts.clamp(0, 10)).unwrap_or(10);
    2i64.saturating_pow(exponent).min(MAX_BACKOFF_SECS)
}

/// A limiter of `per_second` requests, without bursts beyond it.
pub fn limiter(per_second: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(NonZeroU32::MIN))
}

/// Drains the outbox every second until `stop`, on one instance at a time.
pub async fn run(store: Store, stripe: StripeClient, per_second: u32, stop: CancellationToken) {
    let limiter = limiter(per_second);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let lock = match store.try_lock_job("usage-outbox").await {
            Ok(Some(lock)) => lock,
            Ok(None) => continue,
            Err(err) => {
                log::warn!("the usage outbox could not take its lock: {err}");
                continue;
            }
        };
        let drained = tokio::select! {
            () = stop.cancelled() => None,
            drained = drain_due(&store, &stripe, &limiter, per_second, unix_now()) => Some(drained),
        };
        lock.release().await;
        match drained {
            None => return,
            Some(Err(err)) => log::warn!("the usage outbox could not be drained: {err}"),
            Some(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff_secs(1), 2);
        assert_eq!(backoff_secs(3), 8);
        assert_eq!(backoff_secs(40), MAX_BACKOFF_SECS);
    }
}
