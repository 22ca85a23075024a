//! Load benchmark of debits other services make:
//! POST /api/v1/internal/organizations/{org_id}/credits/debits.
//!
//!     cargo bench --bench credits                                       # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench credits
//!     BENCH_HOT=1 cargo bench --bench credits           # one organization takes every debit
//!     BENCH_USAGE=1 cargo bench --bench credits         # usage records instead of debits
//!
//! Runs the real release binary on a fresh database, gives 1,000
//! organizations credits through signed Checkout webhooks, then drives the
//! route with `wrk` (apt install wrk) and a Lua script that sends each debit
//! under a key of its own, spread over the organizations (or all to one).
//! Afterwards it checks the books: every balance is the sum of its ledger,
//! none is below zero, every 2xx is one ledger row, and a key sent again
//! debits nothing more. Prints debits/s, p50/p99 latency and the server's
//! peak RSS.
//! With BENCH_USAGE=1 it posts usage records (`POST …/usage`, each under an
//! identifier of its own) and checks each accepted one is stored once.
//! Knobs: BENCH_ORGS (1000), BENCH_CONNECTIONS (64), BENCH_SECONDS (10),
//! BENCH_THREADS (2), BENCH_HOT (0), BENCH_USAGE (0).

mod common;
#[path = "../tests/support/db.rs"]
mod db;

use common::{Server, count, knob};
use lance_billing::domain::unix_now;
use lance_billing::stripe::webhook::signature_header;
use serde_json::json;

const SECRET: &str = "whsec_bench";
const TOKEN: &str = "svc_bench_0123456789abcdef0123456789abcdef";
/// Far more than a run can spend: no debit is refused for want of credits.
const CREDITS: i64 = 100_000_000;

#[tokio::main]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), String> {
    let hot = knob("BENCH_HOT", 0) == 1;
    let usage = knob("BENCH_USAGE", 0) == 1;
    let orgs = if hot { 1 } else { knob("BENCH_ORGS", 1000) };
    let load = (
        knob("BENCH_CONNECTIONS", 64),
        knob("BENCH_SECONDS", 10),
        knob("BENCH_THREADS", 2),
    );
    let mut server = Server::prepare(&[
        ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
        ("INTERNAL_API_TOKENS", TOKEN.to_owned()),
        ("STRIPE_METERS", "api_calls".to_owned()),
        // The outbox is not measured: it sends one record a second, nowhere.
        ("STRIPE_METER_EVENTS_PER_SECOND", "1".to_owned()),
        ("STRIPE_API_BASE", "http://127.0.0.1:9".to_owned()),
    ])
    .await?;
    server.start()?;
    let base = format!("http://127.0.0.1:{}", server.port);
    seed(&base, orgs).await?;
    server.plans_documents_built().await?;
    let script = lua_script(orgs, usage)?;
    let first = format!("{base}/api/v1/internal/organizations/org_bench0/credits/debits");
    let report = common::wrk_scripted(
        &first,
        &[format!("Authorization: Bearer {TOKEN}")],
        Some(script.path()),
        load,
    )?;
    // Requests in flight when wrk stopped are still being written.
    if usage {
        settle(&server, "SELECT COUNT(*) FROM usage_records").await?;
        check_usage(&server, &report).await?;
    } else {
        settle(&server, "SELECT COUNT(*) FROM credit_debit_requests").await?;
        check_the_books(&server, &base, orgs).await?;
    }
    let backend = server.backend();
    let (connections, seconds, threads) = load;
    let spread = if hot {
        "one organization".to_owned()
    } else {
        format!("{orgs} organizations")
    };
    let what = if usage { "usage records" } else { "debits" };
    let title = format!(
        "credits benchmark: {what} ({backend}, {spread}, {connections} connections, {threads} wrk threads, {seconds} s)"
    );
    report.print(
        &title,
        &format!("{what}/s"),
        "non-2xx",
        backend,
        server.peak_rss_mib(),
    );
    Ok(())
}

/// Each organization buys `CREDITS` through Checkout, as Stripe delivers it.
async fn seed(base: &str, orgs: u64) -> Result<(), String> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/webhooks/stripe");
    for chunk in (0..orgs).collect::<Vec<_>>().chunks(32) {
        let sends = chunk.iter().map(|i| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let session = json!({
                    "id": format!("cs_bench{i}"), "object": "checkout.session", "mode": "payment",
                    "status": "complete", "payment_status": "paid",
                    "customer": format!("cus_bench{i}"),
                    "metadata": {"org_id": format!("org_bench{i}"), "credits": CREDITS.to_string()}
                });
                let event = json!({"id": format!("evt_cs{i}"), "object": "event",
                    "type": "checkout.session.completed", "created": 1_700_000_000,
                    "livemode": false, "api_version": "2025-09-30.clover",
                    "data": {"object": session}});
                let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
                let signature = signature_header(SECRET, unix_now(), &body);
                let status = client
                    .post(&url)
                    .header("Stripe-Signature", signature)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("seeding answered {status}"))
                }
            }
        });
        for result in futures_util::future::join_all(sends).await {
            result?;
        }
    }
    Ok(())
}

/// Balances are their ledgers, none is below zero, and a key sent again
/// debits nothing more.
async fn check_the_books(server: &Server, base: &str, orgs: u64) -> Result<(), String> {
    let mismatched = count(
        server,
        "SELECT COUNT(*) FROM credit_balances b WHERE b.balance <> \
         (SELECT COALESCE(SUM(l.amount), 0) FROM credit_ledger l WHERE l.org_id = b.org_id)",
    )
    .await?;
    let negative = count(
        server,
        "SELECT COUNT(*) FROM credit_balances WHERE balance < 0",
    )
    .await?;
    let debits = count(
        server,
        "SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'debit'",
    )
    .await?;
    let answered = count(
        server,
        "SELECT COUNT(*) FROM credit_debit_requests WHERE status = 200",
    )
    .await?;
    let client = reqwest::Client::new();
    // Thread 1's first request went to the organization of its `i`, 1.
    let url = format!(
        "{base}/api/v1/internal/organizations/org_bench{}/credits/debits",
        1 % orgs
    );
    for _ in 0..2 {
        let status = client
            .post(&url)
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", "k1-1")
            .header("Content-Type", "application/json")
            .body(r#"{"amount":1,"reason":"bench"}"#)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .status();
        if !status.is_success() {
            return Err(format!("a key sent again answered {status}"));
        }
    }
    let after = count(
        server,
        "SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'debit'",
    )
    .await?;
    println!(
        "books: {debits} debits, {answered} answered 200, {mismatched} balances off their ledger, \
         {negative} below zero, {} debited by a key sent again",
        after - debits
    );
    if mismatched > 0 || negative > 0 || debits != answered || after != debits {
        return Err("the books do not balance".to_owned());
    }
    Ok(())
}

/// Waits until `sql`'s count stops changing.
async fn settle(server: &Server, sql: &'static str) -> Result<(), String> {
    let mut last = count(server, sql).await?;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = count(server, sql).await?;
        if now == last {
            return Ok(());
        }
        last = now;
    }
    Err(format!("still writing 10 s after the load stopped: {sql}"))
}

/// Every accepted usage record is stored, once.
async fn check_usage(server: &Server, report: &common::WrkReport) -> Result<(), String> {
    let doubled = count(
        server,
        "SELECT COUNT(*) - COUNT(DISTINCT identifier) FROM usage_records",
    )
    .await?;
    let stored = count(server, "SELECT COUNT(*) FROM usage_records").await?;
    // Every 2xx wrk received was stored; those still in flight may be too.
    let accepted = report.responses.saturating_sub(report.errors);
    println!("usage: {stored} records stored, {doubled} doubled, {accepted} accepted");
    if doubled != 0 || stored == 0 || stored < accepted as i64 {
        return Err(format!(
            "usage records are missing or doubled: {stored} stored, {doubled} doubled, \
             {accepted} accepted ({} responses, {} not 2xx)",
            report.responses, report.errors
        ));
    }
    Ok(())
}

/// Each request a debit of 1 under a key of its own (`k<thread>-<n>`), or
/// a usage record of 1 under an identifier of its own, for the next of the
/// `orgs` organizations.
fn lua_script(orgs: u64, usage: bool) -> Result<tempfile::NamedTempFile, String> {
    let (route, body) = if usage {
        (
            "usage",
            "'{\"meter\":\"api_calls\",\"value\":1,\"identifier\":\"u' .. id .. '-' .. i .. '\"}'",
        )
    } else {
        ("credits/debits", "'{\"amount\":1,\"reason\":\"bench\"}'")
    };
    let script = format!(
        "local threads = 0\n\
         function setup(thread)\n\
           thread:set(\"id\", threads)\n\
           threads = threads + 1\n\
         end\n\
         local i = 0\n\
         request = function()\n\
           i = i + 1\n\
           local path = \"/api/v1/internal/organizations/org_bench\" .. (i % {orgs}) .. \"/{route}\"\n\
           local headers = {{}}\n\
           headers[\"Idempotency-Key\"] = \"k\" .. id .. \"-\" .. i\n\
           headers[\"Content-Type\"] = \"application/json\"\n\
           headers[\"Authorization\"] = \"Bearer {TOKEN}\"\n\
           return wrk.format(\"POST\", path, headers, {body})\n\
         end\n"
    );
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(file.path(), script).map_err(|e| e.to_string())?;
    Ok(file)
}
