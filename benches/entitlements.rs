//! Load benchmark of the entitlements answer other services ask for:
//! GET /api/v1/internal/organizations/{org_id}/entitlements.
//!
//!     cargo bench --bench entitlements                                  # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench entitlements
//!
//! Runs the real release binary on a fresh database, syncs 1,000
//! organizations (customer, active subscription, active entitlements) through
//! signed webhooks, then drives the route with `wrk` (apt install wrk) and a
//! Lua script that spreads requests over all 1,000 organizations. Prints
//! answers/s, p50/p99 latency and the server's peak RSS.
//! Knobs: BENCH_ORGS (1000), BENCH_CONNECTIONS (64), BENCH_SECONDS (10), BENCH_THREADS (2).

mod common;
#[path = "../tests/support/db.rs"]
mod db;

use std::process::Command;

use common::{Server, knob};
use lance_billing::domain::unix_now;
use lance_billing::stripe::webhook::signature_header;
use serde_json::{Value, json};

const SECRET: &str = "whsec_bench";
const TOKEN: &str = "svc_bench_0123456789abcdef0123456789abcdef";

#[tokio::main]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), String> {
    let orgs = knob("BENCH_ORGS", 1000);
    let load = (
        knob("BENCH_CONNECTIONS", 64),
        knob("BENCH_SECONDS", 10),
        knob("BENCH_THREADS", 2),
    );
    let mut server = Server::prepare(&[
        ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
        ("INTERNAL_API_TOKENS", TOKEN.to_owned()),
    ])
    .await?;
    server.start()?;
    let base = format!("http://127.0.0.1:{}", server.port);
    seed(&base, orgs).await?;
    let first = format!("{base}/api/v1/internal/organizations/org_bench0/entitlements");
    check_full_access(&first)?;
    let script = lua_script(orgs)?;
    let report = common::wrk_scripted(
        &first,
        &[format!("Authorization: Bearer {TOKEN}")],
        Some(script.path()),
        load,
    )?;
    let backend = server.backend();
    let (connections, seconds, threads) = load;
    let title = format!(
        "entitlements benchmark ({backend}, {orgs} organizations, {connections} connections, {threads} wrk threads, {seconds} s)"
    );
    report.print(
        &title,
        "answers/s",
        "non-2xx",
        backend,
        server.peak_rss_mib(),
    );
    Ok(())
}

/// Each organization's customer, subscription and active features, as Stripe
/// would deliver them.
async fn seed(base: &str, orgs: u64) -> Result<(), String> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/webhooks/stripe");
    for chunk in (0..orgs).collect::<Vec<_>>().chunks(32) {
        let sends = chunk.iter().map(|i| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                for event in events_of(*i) {
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
                    if !status.is_success() {
                        return Err(format!("seeding answered {status}"));
                    }
                }
                Ok::<(), String>(())
            }
        });
        for result in futures_util::future::join_all(sends).await {
            result?;
        }
    }
    Ok(())
}

fn events_of(i: u64) -> [Value; 3] {
    let (org, customer, sub) = (
        format!("org_bench{i}"),
        format!("cus_bench{i}"),
        format!("sub_bench{i}"),
    );
    let envelope = |id: String, kind: &str, created: i64, object: Value| {
        json!({"id": id, "object": "event", "type": kind, "created": created, "livemode": false,
               "api_version": "2025-09-30.clover", "data": {"object": object}})
    };
    [
        envelope(
            format!("evt_c{i}"),
            "customer.created",
            1_700_000_000,
            json!({"id": customer, "object": "customer", "metadata": {"org_id": org}}),
        ),
        envelope(
            format!("evt_s{i}"),
            "customer.subscription.created",
            1_700_000_001,
            json!({"id": sub, "object": "subscription", "customer": customer, "status": "active",
                   "created": 1_700_000_001, "items": {"object": "list", "data": [{
                       "id": format!("si_bench{i}"), "quantity": 1,
                       "price": {"id": "price_bench", "currency": "usd", "unit_amount": 4900,
                                 "recurring": {"interval": "month"}}}]}}),
        ),
        envelope(
            format!("evt_e{i}"),
            "entitlements.active_entitlement_summary.updated",
            1_700_000_002,
            json!({"object": "entitlements.active_entitlement_summary", "customer": customer,
                   "entitlements": {"object": "list", "has_more": false, "data": [
                       {"id": format!("ent_a{i}"), "feature": "feat_api", "lookup_key": "api"},
                       {"id": format!("ent_s{i}"), "feature": "feat_sso", "lookup_key": "sso"}]}}),
        ),
    ]
}

fn check_full_access(url: &str) -> Result<(), String> {
    let out = Command::new("curl")
        .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}"), url])
        .output()
        .map_err(|e| e.to_string())?;
    let body = String::from_utf8_lossy(&out.stdout);
    if body.contains(r#""access":"full""#) && body.contains(r#""features":["api","sso"]"#) {
        Ok(())
    } else {
        Err(format!(
            "expected full access with two features before measuring, got {body}"
        ))
    }
}

/// Each request asks for the next of the `orgs` organizations.
fn lua_script(orgs: u64) -> Result<tempfile::NamedTempFile, String> {
    let script = format!(
        "local i = 0\n\
         request = function()\n\
           i = (i + 1) % {orgs}\n\
           return wrk.format(nil, \"/api/v1/internal/organizations/org_bench\" .. i .. \"/entitlements\")\n\
         end\n"
    );
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(file.path(), script).map_err(|e| e.to_string())?;
    Ok(file)
}
