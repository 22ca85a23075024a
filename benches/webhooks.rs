//! Ingest benchmark of POST /api/v1/webhooks/stripe.
//!
//!     cargo bench --bench webhooks                                  # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench webhooks
//!
//! Fires BENCH_EVENTS (20 000) signed events for BENCH_CUSTOMERS (2 000)
//! organizations at BENCH_CONCURRENCY (32) against the real release binary on
//! a fresh database, then prints events/s, p50/p99 latency, the rows that
//! landed, whether sampled organizations show their newest state, and the
//! server's peak RSS. Durability is the production setting: a 2xx means the
//! event is committed (SQLite synchronous=FULL in WAL mode).
//!
//! Then the same events go through the ingest queue in-process on another
//! fresh database, without HTTP, which tells the statements each event costs
//! and the events each batch carried. BENCH_WRITERS=1,2,4 (a list) repeats
//! that for each number of writer tasks; BENCH_INGEST_WRITERS sets the
//! server's (INGEST_WRITERS).
//!
//! BENCH_AGAINST=/path/to/another/lance-billing compares that build (B) with
//! this one (A, or BENCH_BINARY) over HTTP instead: BENCH_PAIRS (5) pairs of
//! runs in alternating order, each run checked as above, then the medians
//! and the median of the per-pair ratios. BENCH_DATABASE_DELAY_US puts that
//! many microseconds of round trip between the server and PostgreSQL (a relay
//! on loopback), as a database on another host would.

mod common;
#[path = "../tests/support/db.rs"]
mod db;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Server, count, knob, median, percentile_ms};
use db::{TestDb, fresh_database_url};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lance_billing::billing::Ingestor;
use lance_billing::billing::ingest::{Batching, ReceivedEvent};
use lance_billing::billing::writers::Writers;
use lance_billing::config::{DatabaseSettings, Env};
use lance_billing::domain::unix_now;
use lance_billing::store::Store;
use lance_billing::stripe::webhook::signature_header;
use serde_json::{Value, json};

const SECRET: &str = "whsec_bench_secret";

#[tokio::main]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), String> {
    let shape = Shape {
        events: knob("BENCH_EVENTS", 20_000) as usize,
        customers: knob("BENCH_CUSTOMERS", 2_000) as usize,
        concurrency: knob("BENCH_CONCURRENCY", 32) as usize,
    };
    let bodies = build_events(shape.events, shape.customers);
    if let Ok(other) = std::env::var("BENCH_AGAINST") {
        let pairs = knob("BENCH_PAIRS", 5) as usize;
        return compare(&shape, &bodies, &common::binary(), &other, pairs).await;
    }
    let run = over_http(&common::binary(), &shape, &bodies).await?;
    println!(
        "\nwebhook ingest benchmark ({}, {} events, {} organizations, concurrency {})",
        run.backend, shape.events, shape.customers, shape.concurrency
    );
    println!(
        "| backend | events/s | p50 | p99 | events stored | subscriptions / invoices / payment methods | sampled organizations at their newest state | server peak RSS | CPU an event: server / PostgreSQL / load generator |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.0} | {:.2} ms | {:.2} ms | {} of {} | {} / {} / {} | {} of {} | {:.1} MiB | {} |",
        run.backend,
        run.per_sec,
        run.p50_ms,
        run.p99_ms,
        run.stored,
        shape.events,
        run.tables.0,
        run.tables.1,
        run.tables.2,
        run.newest.0,
        run.newest.1,
        run.rss_mib,
        run.cpu
    );
    run.check(&shape)?;
    without_http(&bodies, shape.concurrency).await
}

/// The benchmark's load: how many events, for how many organizations, from
/// how many clients.
struct Shape {
    events: usize,
    customers: usize,
    concurrency: usize,
}

/// What one run over HTTP measured.
struct HttpRun {
    backend: &'static str,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    stored: i64,
    /// Subscriptions, invoices, payment methods.
    tables: (i64, i64, i64),
    /// Sampled organizations at their newest state, of those sampled.
    newest: (usize, usize),
    rss_mib: f64,
    /// CPU an event: server / PostgreSQL / load generator.
    cpu: String,
}

impl HttpRun {
    /// Fails unless every event landed and the sampled organizations show
    /// their newest state.
    fn check(&self, shape: &Shape) -> Result<(), String> {
        if self.stored != shape.events as i64 {
            return Err(format!(
                "only {} of {} events were stored",
                self.stored, shape.events
            ));
        }
        if self.newest.0 != self.newest.1 {
            return Err(format!(
                "{} of {} sampled organizations do not show their newest state",
                self.newest.1 - self.newest.0,
                self.newest.1
            ));
        }
        Ok(())
    }
}

/// The server `binary` on a fresh database, the deliveries posted to it.
async fn over_http(binary: &str, shape: &Shape, bodies: &[Vec<u8>]) -> Result<HttpRun, String> {
    let mut server = Server::prepare(&[
        ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
        ("STRIPE_API_BASE", "http://127.0.0.1:9".to_owned()),
    ])
    .await?;
    server.binary = binary.to_owned();
    server.start()?;
    let deliveries = Arc::new(sign_all(bodies));
    let cpu_before = (
        server.cpu_seconds(),
        common::cpu_seconds("self"),
        common::postgres_cpu_seconds(),
    );
    let started = Instant::now();
    let mut latencies = fire(server.port, deliveries, shape.concurrency)?;
    let elapsed = started.elapsed();
    // CPU a delivered event cost the server, PostgreSQL (all its processes;
    // SQLite runs inside the server) and the load generator: on the same
    // cores, their sum bounds the rate.
    let cpu_per_event_us = |before: f64, after: f64| (after - before) * 1e6 / shape.events as f64;
    let server_cpu = cpu_per_event_us(cpu_before.0, server.cpu_seconds());
    let client_cpu = cpu_per_event_us(cpu_before.1, common::cpu_seconds("self"));
    let database_cpu = match server.backend() {
        "postgres" => format!(
            "{:.0}",
            cpu_per_event_us(cpu_before.2, common::postgres_cpu_seconds())
        ),
        _ => "—".to_owned(),
    };
    latencies.sort();
    let stored = count(
        &server,
        "SELECT COUNT(*) FROM stripe_events WHERE processed_at IS NOT NULL",
    )
    .await?;
    let tables = (
        count(&server, "SELECT COUNT(*) FROM subscriptions").await?,
        count(&server, "SELECT COUNT(*) FROM invoices").await?,
        count(&server, "SELECT COUNT(*) FROM payment_methods").await?,
    );
    Ok(HttpRun {
        backend: server.backend(),
        per_sec: shape.events as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
        stored,
        tables,
        newest: sampled_newest_state(&server, shape.events, shape.customers).await?,
        rss_mib: server.peak_rss_mib(),
        cpu: format!("{server_cpu:.0} / {database_cpu} / {client_cpu:.0} µs"),
    })
}

/// Two builds over HTTP in alternating pairs (A B, then B A, …), so that a
/// machine whose speed drifts by a third within minutes still gives a fair
/// comparison: the median of the per-pair ratios, not of single runs.
async fn compare(
    shape: &Shape,
    bodies: &[Vec<u8>],
    a: &str,
    b: &str,
    pairs: usize,
) -> Result<(), String> {
    println!(
        "\nwebhook ingest, two builds in {pairs} alternating pairs ({} events, {} organizations, concurrency {})\nA = {a}\nB = {b}",
        shape.events, shape.customers, shape.concurrency
    );
    println!(
        "| pair | build | events/s | p50 | p99 | server peak RSS | CPU an event: server / PostgreSQL / load generator |"
    );
    println!("|---|---|---|---|---|---|---|");
    let builds = [("A", a), ("B", b)];
    let (mut per_sec, mut p99): ([Vec<f64>; 2], [Vec<f64>; 2]) = Default::default();
    let mut ratios = Vec::new();
    for pair in 1..=pairs {
        let order = if pair % 2 == 1 { [0, 1] } else { [1, 0] };
        for build in order {
            let (label, binary) = builds[build];
            let run = over_http(binary, shape, bodies).await?;
            println!(
                "| {pair} | {label} | {:.0} | {:.2} ms | {:.2} ms | {:.1} MiB | {} |",
                run.per_sec, run.p50_ms, run.p99_ms, run.rss_mib, run.cpu
            );
            run.check(shape)?;
            per_sec[build].push(run.per_sec);
            p99[build].push(run.p99_ms);
        }
        ratios.push(per_sec[1][pair - 1] / per_sec[0][pair - 1]);
    }
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{lo:.2}–{hi:.2}")
    };
    println!(
        "\nA: {:.0} events/s, p99 {:.2} ms; B: {:.0} events/s, p99 {:.2} ms (medians); B / A: median {:.2} of {} pairs ({})",
        median(&per_sec[0]),
        median(&p99[0]),
        median(&per_sec[1]),
        median(&p99[1]),
        median(&ratios),
        ratios.len(),
        range(&ratios)
    );
    Ok(())
}

/// Every 97th organization: its subscription holds the quantity of its last
/// subscription event, and it is linked to its customer.
async fn sampled_newest_state(
    server: &Server,
    events: usize,
    customers: usize,
) -> Result<(usize, usize), String> {
    let db = TestDb::connect(&server.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let (mut newest, mut sampled) = (0, 0);
    for customer in (0..customers).step_by(97) {
        let Some(last) = (0..events)
            .rev()
            .find(|&i| i % 4 == 0 && customer_of(i, customers) == customer)
        else {
            continue;
        };
        sampled += 1;
        let sub = format!("sub_bench{customer:05}");
        let cus = format!("cus_bench{customer:05}");
        let org = format!("org_bench{customer:05}");
        let (quantity, linked): (Option<i64>, Option<String>) = with_db!(&db, |pool| {
            let quantity = sqlx::query_scalar("SELECT quantity FROM subscriptions WHERE id = $1")
                .bind(&sub)
                .fetch_optional(pool)
                .await
                .map_err(|e| e.to_string())?
                .flatten();
            let linked =
                sqlx::query_scalar("SELECT stripe_customer_id FROM organizations WHERE id = $1")
                    .bind(&org)
                    .fetch_optional(pool)
                    .await
                    .map_err(|e| e.to_string())?
                    .flatten();
            (quantity, linked)
        });
        if quantity == Some(quantity_of(last)) && linked.as_deref() == Some(cus.as_str()) {
            newest += 1;
        }
    }
    Ok((newest, sampled))
}

/// The same events through the ingest queue in-process (fresh database each
/// run): events/s without HTTP, statements per event and per batch, events
/// per batch.
async fn without_http(bodies: &[Vec<u8>], concurrency: usize) -> Result<(), String> {
    let writers: Vec<usize> = std::env::var("BENCH_WRITERS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|w| w.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    println!(
        "\ningest without HTTP ({} events, concurrency {concurrency})",
        bodies.len()
    );
    println!(
        "| backend | writers | events/s | statements per event | statements per batch | events per batch |"
    );
    println!("|---|---|---|---|---|---|");
    let runs: Vec<Option<usize>> = if writers.is_empty() {
        vec![None]
    } else {
        writers.into_iter().map(Some).collect()
    };
    for writers in runs {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let postgres = std::env::var("BENCH_DATABASE_URL").ok();
        let url = fresh_database_url(dir.path(), postgres.as_deref(), "bench")
            .await
            .map_err(|e| e.to_string())?;
        let env = Env::from_pairs([("DATABASE_URL", url.as_str())]);
        let settings = DatabaseSettings::from_env(&env).map_err(|e| e.to_string())?;
        let store = Store::connect(&settings).await.map_err(|e| e.to_string())?;
        store.migrate().await.map_err(|e| e.to_string())?;
        let count = writers.unwrap_or(1);
        let on = Writers::start(store.clone(), count, settings.ingest_pinned)
            .await
            .map_err(|e| e.to_string())?;
        let ingestor = Ingestor::spawn(&on, count, Batching::for_store(&store));
        on.all_spawned();
        let events: Vec<ReceivedEvent> = bodies
            .iter()
            .map(|body| {
                let payload = String::from_utf8_lossy(body).into_owned();
                let event = serde_json::from_str(&payload).map_err(|e| e.to_string())?;
                Ok(ReceivedEvent::new(event, payload))
            })
            .collect::<Result<_, String>>()?;
        let queue = Arc::new(std::sync::Mutex::new(events.into_iter()));
        let before = store.write_statements();
        let started = Instant::now();
        let senders: Vec<_> = (0..concurrency)
            .map(|_| {
                let (queue, ingestor) = (queue.clone(), ingestor.clone());
                tokio::spawn(async move {
                    loop {
                        let next = queue.lock().map_err(|e| e.to_string())?.next();
                        let Some(event) = next else {
                            return Ok::<_, String>(());
                        };
                        ingestor.submit(event).await.map_err(|e| e.to_string())?;
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await.map_err(|e| e.to_string())??;
        }
        let elapsed = started.elapsed();
        let statements = store.write_statements() - before;
        let n = bodies.len() as f64;
        let batches = ingestor.batches_written().max(1) as f64;
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.2} | {:.1} |",
            store.backend_name(),
            writers.map_or("default".to_owned(), |w| w.to_string()),
            n / elapsed.as_secs_f64(),
            statements as f64 / n,
            statements as f64 / batches,
            n / batches,
        );
        store.close().await;
        db::drop_schema_of(&url);
    }
    Ok(())
}

/// A delivery as Stripe sends it: the body and its `Stripe-Signature`.
struct Delivery {
    body: Bytes,
    signature: String,
}

/// Signs every body up front: Stripe's work, not the server's, so it stays
/// out of the timed run (a signature is good for five minutes).
fn sign_all(bodies: &[Vec<u8>]) -> Vec<Delivery> {
    bodies
        .iter()
        .map(|body| Delivery {
            signature: signature_header(SECRET, unix_now(), body),
            body: Bytes::copy_from_slice(body),
        })
        .collect()
}

/// `concurrency` connections post the deliveries in order, each waiting for
/// its answer before the next; returns every latency. The load runs on one
/// thread of its own, over hyper's bare HTTP/1.1 connections: on a 2-core
/// machine every microsecond the load generator spends is taken from the
/// server, so it should spend as few as it can.
fn fire(
    port: u16,
    deliveries: Arc<Vec<Delivery>>,
    concurrency: usize,
) -> Result<Vec<Duration>, String> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let next = Arc::new(AtomicUsize::new(0));
            let senders: Vec<_> = (0..concurrency)
                .map(|_| tokio::spawn(send_in_turn(port, deliveries.clone(), next.clone())))
                .collect();
            let mut all = Vec::new();
            for sender in senders {
                all.extend(sender.await.map_err(|e| e.to_string())??);
            }
            Ok(all)
        })
    })
    .join()
    .map_err(|_| "the load generator panicked".to_owned())?
}

async fn send_in_turn(
    port: u16,
    deliveries: Arc<Vec<Delivery>>,
    next: Arc<AtomicUsize>,
) -> Result<Vec<Duration>, String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let host = format!("127.0.0.1:{port}");
    let mut latencies = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(delivery) = deliveries.get(i) else {
            return Ok(latencies);
        };
        let request = hyper::Request::post("/api/v1/webhooks/stripe")
            .header("Host", &host)
            .header("Stripe-Signature", &delivery.signature)
            .header("Content-Type", "application/json")
            .body(Full::new(delivery.body.clone()))
            .map_err(|e| e.to_string())?;
        let sent = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        latencies.push(sent.elapsed());
        if !status.is_success() {
            return Err(format!("event {i} answered {status}"));
        }
    }
}

/// The organization (and customer, and subscription) event `i` is about:
/// each gets all four kinds in turn.
fn customer_of(i: usize, customers: usize) -> usize {
    (i / 4) % customers
}

fn quantity_of(i: usize) -> i64 {
    (i % 50 + 1) as i64
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
            let n = customer_of(i, customers);
            let customer = format!("cus_bench{n:05}");
            let created = 1_700_000_000 + (i / 100) as i64;
            let (kind, data) = match i % 4 {
                0 => {
                    let mut sub = object("subscription");
                    sub["id"] = format!("sub_bench{n:05}").into();
                    sub["customer"] = customer.clone().into();
                    sub["status"] = "active".into();
                    sub["items"]["data"][0]["id"] = format!("si_bench{n:05}").into();
                    sub["items"]["data"][0]["quantity"] = quantity_of(i).into();
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
                    cus["metadata"] = json!({"org_id": format!("org_bench{n:05}")});
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
