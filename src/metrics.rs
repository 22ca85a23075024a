//! The process's metrics, in Prometheus' text format (`GET /metrics`).
//! One registry for the process: the counters are bumped where things
//! happen (HTTP, webhooks, Stripe calls, ingest), and the gauges that
//! describe the database (queues, the newest event) are read when scraped.
//! Labels never carry ids of organizations, customers or users: routes are
//! templates, Stripe paths have their ids replaced, event types come from
//! the handled lists.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    webhook_events: IntCounterVec,
    ingest_batch_events: Histogram,
    ingest_commit_seconds: Histogram,
    batch_items: HistogramVec,
    batch_seconds: HistogramVec,
    stripe_requests: IntCounterVec,
    stripe_seconds: HistogramVec,
    stripe_retries: IntCounter,
    jwks_refreshes: IntCounterVec,
    cache_reads: IntCounterVec,
    /// Read when scraped: queues, ages, connections.
    state: IntGaugeVec,
}

/// The process's metrics; `None` only if they could not be built (then
/// nothing is counted, and the log says why once).
static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match Metrics::new() {
    Ok(metrics) => Some(metrics),
    Err(err) => {
        log::error!("metrics are off: they could not be built ({err})");
        None
    }
});

const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Items a transaction, for the histograms of batch sizes.
const BATCH_SIZES: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    registered(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, prometheus::Error> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(registry, HistogramVec::new(opts, labels)?)
}

fn plain_histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram, prometheus::Error> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(registry, Histogram::with_opts(opts)?)
}

impl Metrics {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("lance_billing".to_owned()), None)?;
        Ok(Self {
            http_requests: counter(
                &registry,
                "http_requests_total",
                "HTTP requests by route template, method and status.",
                &["route", "method", "status"],
            )?,
            http_seconds: histogram(
                &registry,
                "http_request_duration_seconds",
                "Time to answer, by route template.",
                &["route"],
                &LATENCY_BUCKETS,
            )?,
            webhook_events: counter(
                &registry,
                "webhook_events_total",
                "Webhook deliveries by source (stripe, clerk), type and outcome (applied, duplicate, ignored, failed, refused, error).",
                &["source", "type", "outcome"],
            )?,
            ingest_batch_events: plain_histogram(
                &registry,
                "ingest_batch_events",
                "Stripe events written per ingest transaction.",
                &BATCH_SIZES,
            )?,
            ingest_commit_seconds: plain_histogram(
                &registry,
                "ingest_batch_seconds",
                "Time to write and commit one ingest batch.",
                &LATENCY_BUCKETS,
            )?,
            batch_items: histogram(
                &registry,
                "batch_items",
                "Requests written per transaction by a batch writer (`queue`: debits, usage).",
                &["queue"],
                &BATCH_SIZES,
            )?,
            batch_seconds: histogram(
                &registry,
                "batch_seconds",
                "Time to write and commit one batch of a batch writer, by queue.",
                &["queue"],
                &LATENCY_BUCKETS,
            )?,
            stripe_requests: counter(
                &registry,
                "stripe_requests_total",
                "Requests to Stripe's API by method, endpoint (ids replaced) and status (`error` without an answer).",
                &["method", "endpoint", "status"],
            )?,
            stripe_seconds: histogram(
                &registry,
                "stripe_request_duration_seconds",
                "Time for one request to Stripe, by endpoint.",
                &["endpoint"],
                &LATENCY_BUCKETS,
            )?,
            stripe_retries: registered(
                &registry,
                IntCounter::new(
                    "stripe_retries_total",
                    "Stripe requests sent again after a 409, a 429, a 5xx or a network error.",
                )?,
            )?,
            jwks_refreshes: counter(
                &registry,
                "clerk_jwks_refreshes_total",
                "Fetches of Clerk's signing keys, by outcome (ok, error).",
                &["outcome"],
            )?,
            cache_reads: counter(
                &registry,
                "cache_reads_total",
                "In-memory reads by cache (plans, entitlements) and result (hit, miss).",
                &["cache", "result"],
            )?,
            state: registered(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "state",
                        "Read when scraped: `what` names a queue's length, an age in seconds (-1: never), or connections.",
                    ),
                    &["what"],
                )?,
            )?,
            registry,
        })
    }
}

/// Everything, in Prometheus' text format, with `state` set first.
pub fn render(state: &[(&str, i64)]) -> String {
    let Some(metrics) = METRICS.as_ref() else {
        return String::new();
    };
    for (what, value) in state {
        metrics.state.with_label_values(&[*what]).set(*value);
    }
    let mut out = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&metrics.registry.gather(), &mut out) {
        log::warn!("could not render the metrics: {err}");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// An HTTP request answered.
pub fn http_request(route: &str, method: &str, status: u16, seconds: f64) {
    if let Some(m) = METRICS.as_ref() {
        m.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        m.http_seconds.with_label_values(&[route]).observe(seconds);
    }
}

/// One exchange with Stripe (`status` is `error` when none came back).
pub fn stripe_request(method: &str, path: &str, status: &str, seconds: f64) {
    if let Some(m) = METRICS.as_ref() {
        let endpoint = endpoint_of(path);
        m.stripe_requests
            .with_label_values(&[method, endpoint.as_str(), status])
            .inc();
        m.stripe_seconds
            .with_label_values(&[endpoint.as_str()])
            .observe(seconds);
    }
}

/// A Stripe request about to be sent again.
pub fn stripe_retry() {
    if let Some(m) = METRICS.as_ref() {
        m.stripe_retries.inc();
    }
}

/// An ingest batch of `events`, written and committed in `seconds`.
pub fn ingest_batch(events: usize, seconds: f64) {
    if let Some(m) = METRICS.as_ref() {
        m.ingest_batch_events.observe(events as f64);
        m.ingest_commit_seconds.observe(seconds);
    }
}

/// A batch of `items` written and committed by the `queue` writer in `seconds`.
pub fn batch(queue: &str, items: usize, seconds: f64) {
    if let Some(m) = METRICS.as_ref() {
        m.batch_items
            .with_label_values(&[queue])
            .observe(items as f64);
        m.batch_seconds.with_label_values(&[queue]).observe(seconds);
    }
}

/// A fetch of Clerk's keys (`ok` or `error`).
pub fn jwks_refresh(outcome: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.jwks_refreshes.with_label_values(&[outcome]).inc();
    }
}

/// A read of an in-memory cache (`hit` or `miss`).
pub fn cache_read(cache: &str, result: &str) {
    if let Some(m) = METRICS.as_ref() {
        m.cache_reads.with_label_values(&[cache, result]).inc();
    }
}

/// Counts a webhook delivery. `kind` is kept only when it is one of
/// `handled` (anything else is `other`), so a sender cannot grow the labels.
pub fn webhook(source: &str, kind: Option<&str>, handled: &[&str], outcome: &str) {
    let kind = kind.filter(|k| handled.contains(k)).unwrap_or("other");
    if let Some(m) = METRICS.as_ref() {
        m.webhook_events
            .with_label_values(&[source, kind, outcome])
            .inc();
    }
}

/// A Stripe path with its ids replaced: `/v1/subscriptions/{id}`.
pub fn endpoint_of(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    path.split('/')
        .map(|segment| {
            // Stripe's ids are a prefix and a random part with digits or
            // capitals; its resource names are lowercase words.
            let is_id = (segment.contains('_')
                && segment
                    .bytes()
                    .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase()))
                || segment.contains('%');
            if is_id { "{id}" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_paths_lose_their_ids() {
        assert_eq!(
            endpoint_of("/v1/subscriptions/sub_1Nx"),
            "/v1/subscriptions/{id}"
        );
        assert_eq!(
            endpoint_of("/v1/customers/cus_9/payment_methods?limit=100"),
            "/v1/customers/{id}/payment_methods"
        );
        assert_eq!(
            endpoint_of("/v1/billing/meter_events"),
            "/v1/billing/meter_events"
        );
        assert_eq!(
            endpoint_of("/v1/billing_portal/sessions"),
            "/v1/billing_portal/sessions"
        );
    }
}
