//! Ingest benchmark of POST /api/v1/webhooks/stripe.
//!
//!     cargo bench --bench webhooks                                  # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench webhooks
//!
//! Fires BENCH_EVENTS (20 000) signed events for BENCH_CUSTOMERS (500)
//! customers at BENCH_CONCURRENCY (32) against the real release binary on a
//! fresh database, then prints events/s, p50/p99 latency, the rows that
//! landed and the server's peak RSS. Durability is the production setting:
//! a 2xx means the event is committed (SQLite synchronous=FULL in WAL mode).

mod common;
#[path = "../tests/support/db.rs"]
mod db;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, count, knob, percentile_ms};
use lance_billing::domain::unix_now;
use lance_billing::stripe::webhook::signature_header;
use serde_json::{Value, json};

const SECRET: &str = "whsec_bench_secret";

#[tokio::main]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), String> {
    let events = knob("BENCH_EVENTS", 20_000) as usize;
    let customers = knob("BENCH_CUSTOMERS", 500) as usize;
    let concurrency = knob("BENCH_CONCURRENCY", 32) as usize;
    let mut server = Server::prepare(&[
        ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
        ("STRIPE_API_BASE", "http://127.0.0.1:9".to_owned()),
    ])
    .await?;
    server.start()?;
    let bodies = Arc::new(build_events(events, customers));
    let url = format!("http://127.0.0.1:{}/api/v1/webhooks/stripe", server.port);
    let started = Instant::now();
    let mut latencies = fire(&url, bodies, concurrency).await?;
    let elapsed = started.elapsed();
    latencies.sort();
    let stored = count(
        &server,
        "SELECT COUNT(*) FROM stripe_events WHERE processed_at IS NOT NULL",
    )
    .await?;
    let subscriptions = count(&server, "SELECT COUNT(*) FROM subscriptions").await?;
    let invoices = count(&server, "SELECT COUNT(*) FROM invoices").await?;
    let methods = count(&server, "SELECT COUNT(*) FROM payment_methods").await?;
    let backend = server.backend();
    println!(
        "\nwebhook ingest benchmark ({backend}, {events} events, {customers} customers, concurrency {concurrency})"
    );
    println!(
        "| backend | events/s | p50 | p99 | events stored | subscriptions / invoices / payment methods | server peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {backend} | {:.0} | {:.2} ms | {:.2} ms | {stored} of {events} | {subscriptions} / {invoices} / {methods} | {:.1} MiB |",
        events as f64 / elapsed.as_secs_f64(),
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99),
        server.peak_rss_mib()
    );
    if stored != events as i64 {
        return Err(format!("only {stored} of {events} events were stored"));
    }
    Ok(())
}

/// `concurrency` workers post the bodies in order; returns every latency.
async fn fire(
    url: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
) -> Result<Vec<Duration>, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, bodies, next, url) =
                (client.clone(), bodies.clone(), next.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return Ok(latencies);
                    };
                    let signature = signature_header(SECRET, unix_now(), body);
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("Stripe-Signature", signature)
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    latencies.push(sent.elapsed());
                    if !response.status().is_success() {
                        return Err(format!("event {i} answered {}", response.status()));
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.map_err(|e| e.to_string())??);
    }
    Ok(all)
}

/// A realistic mix: subscription updates, paid invoices, attached cards and
/// customer updates, spread over `customers`, with increasing `created`.
fn build_events(events: usize, customers: usize) -> Vec<Vec<u8>> {
    let fixtures: Value =
        serde_json::from_str(include_str!("../tests/fixtures/stripe_objects.json"))
            .unwrap_or(Value::Null);
    let object = |name: &str| fixtures["resources"][name].clone();
    (0..events)
        .map(|i| {
            let customer = format!("cus_bench{:05}", i % customers);
            let created = 1_700_000_000 + (i / 100) as i64;
            let (kind, data) = match i % 4 {
                0 => {
                    let mut sub = object("subscription");
                    sub["id"] = format!("sub_bench{:05}", i % customers).into();
                    sub["customer"] = customer.clone().into();
                    sub["status"] = "active".into();
                    sub["items"]["data"][0]["quantity"] = (i % 50 + 1).into();
                    ("customer.subscription.updated", sub)
                }
                1 => {
                    let mut invoice = object("invoice");
                    invoice["id"] = format!("in_bench{i:06}").into();
                    invoice["customer"] = customer.clone().into();
                    invoice["status"] = "paid".into();
                    invoice["created"] = created.into();
                    ("invoice.paid", invoice)
                }
                2 => {
                    let mut method = object("payment_method");
                    method["id"] = format!("pm_bench{i:06}").into();
                    method["customer"] = customer.clone().into();
                    ("payment_method.attached", method)
                }
                _ => {
                    let mut cus = object("customer");
                    cus["id"] = customer.clone().into();
                    cus["metadata"] = json!({"org_id": format!("org_bench{:05}", i % customers)});
                    ("customer.updated", cus)
                }
            };
            let event = json!({
                "id": format!("evt_bench{i:07}"), "object": "event", "api_version": "2025-09-30.clover",
                "created": created, "type": kind, "data": {"object": data}, "livemode": false,
                "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
            });
            serde_json::to_vec(&event).unwrap_or_default()
        })
        .collect()
}
