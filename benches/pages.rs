//! Render benchmark of the Plans page (`GET /organization`) with 24 invoices.
//!
//!     cargo bench --bench pages                                  # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench pages
//!
//! 1. End to end: the real release binary on a fresh database, an
//!    organization with a synced plan, card and 24 invoices (delivered as
//!    signed webhooks), and `wrk` loading the page with the `__session`
//!    cookie (auth, queries, rendering and HTTP): pages/s, p50/p99, peak RSS.
//!    Run twice: with the Plans cache (the default) and with it off
//!    (`PLANS_CACHE_TTL=0`), where every load reads the database.
//! 2. The Askama render alone, in-process on one core: pages/s.
//!
//! With BENCH_ORGS=1000: that many organizations, each with its plan, card
//! and 24 invoices, and the Plans cache off (`PLANS_CACHE_TTL=0`); `wrk`
//! loads each organization's page in turn, with its member's session
//! cookie: every load reads the database.
//!
//! Knobs: BENCH_CONNECTIONS (64), BENCH_SECONDS (10), BENCH_THREADS (2),
//! BENCH_ORGS (1).

mod common;
#[path = "../tests/support/db.rs"]
mod db;

use std::time::Instant;

use askama::Template;
use common::{Server, fleet, knob};
use lance_billing::domain::unix_now;
use lance_billing::store::{BillingState, Card, InvoiceLine, PeriodUsage, Plans, SubscriptionView};
use lance_billing::stripe::webhook::signature_header;
use lance_billing::views::{Catalog, OrganizationContext, OrganizationPage};
use lance_billing::web::PORTAL_PATH;
use serde_json::{Value, json};

const SECRET: &str = "whsec_bench_secret";
const CUSTOMER: &str = "cus_Bench";

#[tokio::main]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), String> {
    let connections = knob("BENCH_CONNECTIONS", 64);
    let seconds = knob("BENCH_SECONDS", 10);
    let threads = knob("BENCH_THREADS", 2);
    let orgs = knob("BENCH_ORGS", 1);
    match orgs {
        1 => {}
        1000 => return many_organizations(orgs, (connections, seconds, threads)).await,
        other => return Err(format!("BENCH_ORGS is 1 or 1000, not {other}")),
    }
    let mut server = Server::prepare(&[
        ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
        ("STRIPE_API_BASE", "http://127.0.0.1:9".to_owned()),
        // Fixed, so the session cookie stays valid across the restart.
        ("SESSION_KEY", "bench-session-key-".repeat(4)),
    ])
    .await?;
    server.cli(&[
        "org",
        "link",
        "--org",
        "org_bench",
        "--customer",
        CUSTOMER,
        "--no-verify",
    ])?;
    let token = server.cli(&[
        "dev",
        "token",
        "--org",
        "org_bench",
        "--slug",
        "bench",
        "--ttl",
        "3600",
    ])?;
    server.start()?;
    seed(&reqwest::Client::new(), server.port, CUSTOMER, "").await?;
    let url = format!("http://127.0.0.1:{}/organization", server.port);
    let response = reqwest::Client::new()
        .get(&url)
        .header("Cookie", format!("__session={token}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    // A browser sends back the session cookie (its CSRF token) it was given.
    let session_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("lb_session="))
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let page = response.text().await.map_err(|e| e.to_string())?;
    let rows = page.matches("<tr>").count();
    if rows < 24 {
        return Err(format!("the page shows {rows} invoice rows, expected 24"));
    }
    let cookies = [format!("Cookie: __session={token}; {session_cookie}")];
    let cached = common::wrk(&url, &cookies, connections, seconds, threads)?;
    let cached_rss = server.peak_rss_mib();
    // The same load with the Plans cache off: every page reads the database,
    // as for organizations whose page nobody opened within the cache's TTL.
    server.restart_with("PLANS_CACHE_TTL", "0")?;
    let uncached = common::wrk(&url, &cookies, connections, seconds, threads)?;
    let uncached_rss = server.peak_rss_mib();
    let renders = render_in_process();
    let backend = server.backend();
    println!(
        "\nPlans page benchmark ({backend}, 24 invoices, {connections} connections, {seconds} s)"
    );
    println!(
        "| backend | reads | pages/s (HTTP, end to end) | p50 | p99 | errors | server peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (reads, report, rss) in [
        ("cached (default, 1 s)", cached, cached_rss),
        ("every load from the database", uncached, uncached_rss),
    ] {
        println!(
            "| {backend} | {reads} | {:.0} | {} | {} | {} | {rss:.1} MiB |",
            report.requests_per_sec, report.p50, report.p99, report.errors,
        );
    }
    println!("Askama render alone: {renders:.0} pages/s on one core");
    Ok(())
}

/// A plan, a card and 24 paid invoices of `customer`, delivered as Stripe
/// would; `tag` keeps each customer's ids apart.
async fn seed(
    client: &reqwest::Client,
    port: u16,
    customer: &str,
    tag: &str,
) -> Result<(), String> {
    let fixtures: Value =
        serde_json::from_str(include_str!("../tests/fixtures/stripe_objects.json"))
            .map_err(|e| e.to_string())?;
    let object = |name: &str| fixtures["resources"][name].clone();
    let mut events = Vec::new();
    let mut product = object("product");
    product["id"] = "prod_QXg1hqf4jFNsqG".into();
    product["name"] = "Pro".into();
    events.push(("product.created", product));
    let mut sub = object("subscription");
    if !tag.is_empty() {
        sub["id"] = format!("sub_{tag}").into();
    }
    sub["customer"] = customer.into();
    sub["status"] = "active".into();
    sub["cancel_at"] = Value::Null;
    events.push(("customer.subscription.created", sub));
    let mut card = object("payment_method");
    if !tag.is_empty() {
        card["id"] = format!("pm_{tag}").into();
    }
    card["customer"] = customer.into();
    events.push(("payment_method.attached", card));
    for i in 0..24 {
        let mut invoice = object("invoice");
        invoice["id"] = format!("in_bench{tag}{i:02}").into();
        invoice["customer"] = customer.into();
        invoice["status"] = "paid".into();
        invoice["number"] = format!("BENCH-{i:04}").into();
        invoice["created"] = (1_700_000_000 + i * 2_592_000).into();
        invoice["hosted_invoice_url"] =
            format!("https://invoice.stripe.com/i/in_bench{i:02}").into();
        invoice["invoice_pdf"] =
            format!("https://pay.stripe.com/invoice/in_bench{i:02}/pdf").into();
        events.push(("invoice.paid", invoice));
    }
    for (i, (kind, data)) in events.into_iter().enumerate() {
        let body = serde_json::to_vec(&json!({
            "id": format!("evt_seed{tag}{i:03}"), "object": "event", "created": 1_700_000_000 + i as i64,
            "type": kind, "data": {"object": data}, "livemode": false,
        }))
        .map_err(|e| e.to_string())?;
        let status = client
            .post(format!("http://127.0.0.1:{port}/api/v1/webhooks/stripe"))
            .header(
                "Stripe-Signature",
                signature_header(SECRET, unix_now(), &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .status();
        if !status.is_success() {
            return Err(format!("seeding event {i} answered {status}"));
        }
    }
    Ok(())
}

/// `orgs` organizations, each with a plan, a card and 24 invoices, loaded
/// in turn with the cache off.
async fn many_organizations(
    orgs: u64,
    (connections, seconds, threads): (u64, u64, u64),
) -> Result<(), String> {
    let mut server = Server::prepare(&[
        ("STRIPE_WEBHOOK_SECRET", SECRET.to_owned()),
        ("STRIPE_API_BASE", "http://127.0.0.1:9".to_owned()),
        ("SESSION_KEY", "bench-session-key-".repeat(4)),
        ("PLANS_CACHE_TTL", "0".to_owned()),
    ])
    .await?;
    server.start()?;
    fleet::link_organizations(&server).await?;
    let client = reqwest::Client::new();
    let tokens = fleet::mint_tokens(&server, orgs as usize)?;
    let mut cookies = Vec::new();
    let url = format!("http://127.0.0.1:{}/organization", server.port);
    for chunk in (0..orgs).collect::<Vec<_>>().chunks(16) {
        let loads = chunk.iter().map(|i| {
            let (client, url) = (client.clone(), url.clone());
            let org = format!("org_bench{i}");
            let customer = format!("cus_bench{i}");
            let token = tokens[*i as usize].clone();
            let port = server.port;
            async move {
                seed(&client, port, &customer, &format!("o{i}x")).await?;
                let response = client
                    .get(&url)
                    .header("Cookie", format!("__session={token}"))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let session = response
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find(|c| c.starts_with("lb_session="))
                    .and_then(|c| c.split(';').next())
                    .unwrap_or_default()
                    .to_owned();
                let rows = response
                    .text()
                    .await
                    .map_err(|e| e.to_string())?
                    .matches("<tr>")
                    .count();
                if rows < 24 {
                    return Err(format!("{org}'s page shows {rows} invoice rows"));
                }
                Ok::<String, String>(format!("__session={token}; {session}"))
            }
        });
        for cookie in futures_util::future::join_all(loads).await {
            cookies.push(cookie?);
        }
    }
    server.plans_documents_built().await?;
    let lines: Vec<String> = cookies.iter().map(|c| format!("\tCookie\t{c}")).collect();
    let (script, _list) = common::request_list_script(&lines, threads)?;
    let report = common::wrk_scripted(
        &url,
        &[],
        Some(script.path()),
        (connections, seconds, threads),
    )?;
    let backend = server.backend();
    report.print(
        &format!(
            "Plans page benchmark ({backend}, {orgs} organizations, 24 invoices each, cache off, {connections} connections, {seconds} s)"
        ),
        "pages/s",
        "errors",
        backend,
        server.peak_rss_mib(),
    );
    println!(
        "server private memory (RssAnon) {:.1} MiB; on SQLite its RSS also counts the database file each connection maps",
        server.private_mib()
    );
    Ok(())
}

/// Builds and renders the page's view model repeatedly for two seconds.
fn render_in_process() -> f64 {
    let subscription = SubscriptionView {
        id: "sub_1".into(),
        status: "active".into(),
        price_id: Some("price_1".into()),
        product_id: Some("prod_1".into()),
        product_name: Some("Pro".into()),
        quantity: Some(3),
        currency: Some("usd".into()),
        unit_amount: Some(4900),
        recurring_interval: Some("month".into()),
        interval_count: Some(1),
        current_period_start: Some(1_700_000_000),
        current_period_end: Some(1_702_592_000),
        cancel_at_period_end: false,
        cancel_at: None,
        canceled_at: None,
        trial_end: None,
        default_payment_method: None,
    };
    let invoices: Vec<InvoiceLine> = (0..24)
        .map(|i| InvoiceLine {
            id: format!("in_{i}"),
            number: Some(format!("BENCH-{i:04}")),
            status: Some("paid".into()),
            currency: "usd".into(),
            total: 4900,
            hosted_invoice_url: Some(format!("https://invoice.stripe.com/i/in_{i}")),
            invoice_pdf: Some(format!("https://pay.stripe.com/invoice/in_{i}/pdf")),
            created: 1_700_000_000 + i * 2_592_000,
        })
        .collect();
    let plans = Plans {
        billing: BillingState {
            subscriptions: vec![subscription.clone()],
            payment_method: Some(Card {
                id: "pm_1".into(),
                brand: Some("visa".into()),
                last4: Some("4242".into()),
                exp_month: Some(8),
                exp_year: Some(2030),
            }),
            credit_balance: 1500,
            synced_at: Some(1_700_000_000),
            portal_visited: false,
        },
        invoices,
        plan_features: Vec::new(),
        credit_entries: Vec::new(),
        expiring: Vec::new(),
        usage: PeriodUsage {
            starts: 1_700_000_000,
            ends: 1_702_592_000,
            meters: Vec::new(),
        },
    };
    let started = Instant::now();
    let mut pages = 0u64;
    while started.elapsed().as_secs_f64() < 2.0 {
        let context = OrganizationContext {
            org_id: "org_bench".into(),
            org_name: None,
            seats_used: None,
            org_slug: Some("bench".into()),
            role: Some("org:admin".into()),
            can_manage: true,
            csrf: "0123456789abcdef0123456789abcdef".into(),
            has_customer: true,
            can_subscribe: false,
            notice: None,
            sells_credits: false,
            portal_path: PORTAL_PATH,
            grace_ends_at: None,
            credits_low_balance: None,
        };
        let html = OrganizationPage::new(context, &plans, Catalog::default())
            .render()
            .unwrap_or_default();
        std::hint::black_box(html);
        pages += 1;
    }
    pages as f64 / started.elapsed().as_secs_f64()
}
