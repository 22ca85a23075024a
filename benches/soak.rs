//! A soak: minutes of mixed load on the real release binary, with its memory
//! and queues sampled as it runs.
//!
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench soak
//!     cargo bench --bench soak                                   # SQLite
//!
//! 1,000 linked organizations, a member's token each. `wrk` sends, in turn,
//! the Plans page (session cookie) and the internal entitlements answer
//! (service token) of each organization, and for one in ten first the
//! portal redirect (bearer token; the next page load refreshes from Stripe),
//! while a client posts signed `customer.subscription.updated` webhooks at a
//! steady rate, each a newer state of one organization's subscription (the
//! status moves between active and past due, so caches are dropped and
//! answers change). Every BENCH_SAMPLE_SECONDS the server's resident memory
//! and the queues of `/metrics` are read.
//!
//! The run fails on any answer other than 2xx/3xx and on any refused
//! webhook. It prints the samples (the RSS curve) and the change of RSS
//! from the end of the warm-up (the first minute) to the end.
//!
//! Knobs: BENCH_SECONDS (600), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
//! BENCH_WEBHOOKS_PER_SECOND (100), BENCH_SAMPLE_SECONDS (30).

mod common;
#[path = "../tests/support/db.rs"]
mod db;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, fleet, knob};
use lance_billing::domain::unix_now;
use lance_billing::stripe::webhook::signature_header;
use serde_json::Value;

const SECRET: &str = "whsec_bench_secret";
const SERVICE_TOKEN: &str = "svc_0123456789abcdef0123456789abcdef";
const METRICS_TOKEN: &str = "metrics-bench-token-0123456789";
const ORGS: usize = 1_000;
/// The queues and ages read from `/metrics` at each sample.
const WATCHED: [&str; 5] = [
    "audit_queue",
    "refetch_queue",
    "failed_events",
    "usage_outbox_pending",
    "seat_syncs_waiting",
];
/// One organization in this many opens the portal in each round, so its
/// next page load refreshes from Stripe as a return from the portal does.
const PORTAL_EVERY: usize = 10;
/// Samples before this belong to the warm-up.
const WARM_UP: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() {
    common::exit_on_error(run().await);
}

struct Sample {
    at: Duration,
    rss_mib: f64,
    queues: Vec<i64>,
}

async fn run() -> Result<(), String> {
    let seconds = knob("BENCH_SECONDS", 600);
    let connections = knob("BENCH_CONNECTIONS", 32);
    let threads = knob("BENCH_THREADS", 2);
    let webhooks_per_second = knob("BENCH_WEBHOOKS_PER_SECOND", 100);
    let every = Duration::from_secs(knob("BENCH_SAMPLE_SECONDS", 30));
    let stripe_port = fleet::start_stripe_stand_in()?;
    let mut server = Server::prepare(&[
        ("STRIPE_API_BASE", format!("http://127.0.0.1:{stripe_port}")),
        ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
        ("INTERNAL_API_TOKENS", SERVICE_TOKEN.to_owned()),
        ("METRICS_TOKEN", METRICS_TOKEN.to_owned()),
        ("SESSION_KEY", "bench-session-key-".repeat(4)),
    ])
    .await?;
    server.start()?;
    fleet::link_organizations(&server).await?;
    let tokens = fleet::mint_tokens(&server, ORGS)?;
    let (script, _list) = mixed_script(&tokens, threads)?;
    let base = format!("http://127.0.0.1:{}", server.port);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let webhooks = tokio::spawn(post_webhooks(
        base.clone(),
        webhooks_per_second,
        stop.clone(),
        tally.clone(),
    ));
    let sampler = tokio::spawn(sample(base.clone(), server.child.id(), every, stop.clone()));
    let url = format!("{base}/organization");
    let report = tokio::task::spawn_blocking(move || {
        common::wrk_scripted(
            &url,
            &[],
            Some(script.path()),
            (connections, seconds, threads),
        )
    })
    .await
    .map_err(|e| e.to_string())??;
    stop.store(true, Ordering::Relaxed);
    webhooks.await.map_err(|e| e.to_string())?;
    let samples = sampler.await.map_err(|e| e.to_string())?;

    let backend = server.backend();
    println!(
        "\nsoak ({backend}, {seconds} s, {ORGS} organizations, wrk {connections} connections: Plans page and entitlements, a portal visit for one in {PORTAL_EVERY}; {webhooks_per_second} webhooks/s)"
    );
    println!("| t (s) | RSS (MiB) | {} |", WATCHED.join(" | "));
    println!("|---|---|{}", "---|".repeat(WATCHED.len()));
    for s in &samples {
        let queues: Vec<String> = s.queues.iter().map(i64::to_string).collect();
        println!(
            "| {} | {:.1} | {} |",
            s.at.as_secs(),
            s.rss_mib,
            queues.join(" | ")
        );
    }
    let posted = tally.posted.load(Ordering::Relaxed);
    let refused = tally.refused.load(Ordering::Relaxed);
    println!(
        "\nrequests: {:.0}/s, p50 {}, p99 {}, non-2xx/3xx {}; webhooks: {posted} posted ({:.0}/s), {refused} refused; peak RSS {:.1} MiB",
        report.requests_per_sec,
        report.p50,
        report.p99,
        report.errors,
        posted as f64 / seconds as f64,
        server.peak_rss_mib(),
    );
    let warm = samples.iter().find(|s| s.at >= WARM_UP);
    if let (Some(warm), Some(last)) = (warm, samples.last()) {
        println!(
            "RSS from {}s to {}s: {:.1} -> {:.1} MiB ({:+.1} %)",
            warm.at.as_secs(),
            last.at.as_secs(),
            warm.rss_mib,
            last.rss_mib,
            (last.rss_mib / warm.rss_mib - 1.0) * 100.0
        );
    }
    if report.errors > 0 || refused > 0 {
        return Err(format!(
            "{} answers were errors and {refused} webhooks were refused",
            report.errors
        ));
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    posted: AtomicU64,
    refused: AtomicU64,
}

/// A `wrk` script, and the list it reads: for each organization its Plans
/// page and its entitlements (and for one in ten its portal redirect first),
/// each thread taking its share of the lines in turn.
fn mixed_script(
    tokens: &[String],
    threads: u64,
) -> Result<(tempfile::NamedTempFile, tempfile::NamedTempFile), String> {
    let mut lines = Vec::with_capacity(tokens.len() * 3);
    for (i, token) in tokens.iter().enumerate() {
        if i % PORTAL_EVERY == 0 {
            lines.push(format!(
                "/api/v1/operations/payment/customer-portal\tAuthorization\tBearer {token}"
            ));
        }
        lines.push(format!("/organization\tCookie\t__session={token}"));
        lines.push(format!(
            "/api/v1/internal/organizations/org_bench{i}/entitlements\tAuthorization\tBearer {SERVICE_TOKEN}"
        ));
    }
    common::request_list_script(&lines, threads)
}

/// Posts a newer state of one organization's subscription `per_second`
/// times a second until `stop`, counting what was refused.
async fn post_webhooks(base: String, per_second: u64, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let fixtures: Value =
        serde_json::from_str(include_str!("../tests/fixtures/stripe_objects.json"))
            .unwrap_or_default();
    let template = fixtures["resources"]["subscription"].clone();
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/webhooks/stripe");
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(16));
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let org = n % ORGS as u64;
        let mut sub = template.clone();
        sub["id"] = format!("sub_soak{org}").into();
        sub["customer"] = format!("cus_bench{org}").into();
        sub["status"] = if (n / ORGS as u64).is_multiple_of(2) {
            "active"
        } else {
            "past_due"
        }
        .into();
        sub["cancel_at"] = Value::Null;
        let body = serde_json::json!({
            "id": format!("evt_soak{n}"), "object": "event", "created": 1_700_000_000 + n as i64,
            "type": "customer.subscription.updated", "data": {"object": sub}, "livemode": false,
        })
        .to_string();
        n += 1;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
        tokio::spawn(async move {
            let signature = signature_header(SECRET, unix_now(), body.as_bytes());
            let sent = client
                .post(url)
                .header("Stripe-Signature", signature)
                .body(body)
                .send()
                .await;
            let counter = match sent {
                Ok(r) if r.status().is_success() => &tally.posted,
                _ => &tally.refused,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    let _ = in_flight.acquire_many(16).await;
}

/// The server's resident memory and watched queues every `every`.
async fn sample(base: String, pid: u32, every: Duration, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next = every;
    while !stop.load(Ordering::Relaxed) {
        if started.elapsed() < next {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        next += every;
        let metrics = match client
            .get(format!("{base}/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
        {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        samples.push(Sample {
            at: started.elapsed(),
            rss_mib: common::status_mib(pid, "VmRSS:"),
            queues: WATCHED.iter().map(|w| state_of(&metrics, w)).collect(),
        });
    }
    samples
}

/// `lance_billing_state{what="<what>"}`, or -1 when absent.
fn state_of(metrics: &str, what: &str) -> i64 {
    let name = format!("lance_billing_state{{what=\"{what}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&name)?.trim().parse().ok())
        .unwrap_or(-1)
}
