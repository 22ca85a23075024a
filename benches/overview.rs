//! How fast the operators' overview renders with many organizations:
//! GET /admin (the overview and the list's first page) end to end.
//!
//!     cargo bench --bench overview                                  # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench overview
//!
//! Runs the real release binary on a fresh database holding 10,000
//! organizations, each with a subscription (four currencies, three
//! intervals, every status), 14 days of events and the year's revenue
//! snapshots, then asks for the page with `wrk` (apt install wrk): one
//! connection for the render time, then 8 for throughput.
//! Knobs: BENCH_ORGS (10000), BENCH_SECONDS (10).

mod common;
#[path = "../tests/support/db.rs"]
mod db;

use common::{Server, knob};
use db::TestDb;
use lance_billing::domain::unix_now;

#[tokio::main]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), String> {
    let orgs = knob("BENCH_ORGS", 10_000);
    let seconds = knob("BENCH_SECONDS", 10);
    let mut server = Server::prepare(&[("ADMIN_USER_IDS", "user_ops".to_owned())]).await?;
    server.cli(&["migrate"])?;
    seed(&server, orgs).await.map_err(|e| e.to_string())?;
    let snapshot = server.cli(&["snapshot"])?;
    let token = server.cli(&["dev", "token", "--user", "user_ops", "--org", "org_ops"])?;
    server.start()?;
    let url = format!("http://127.0.0.1:{}/admin", server.port);
    let cookie = [format!("Cookie: __session={token}")];
    let backend = server.backend();
    let latency = common::wrk_scripted(&url, &cookie, None, (1, seconds, 1))?;
    latency.print(
        &format!("overview benchmark ({backend}, {orgs} organizations, {snapshot}; 1 connection)"),
        "pages/s",
        "non-2xx",
        backend,
        server.peak_rss_mib(),
    );
    let load = common::wrk_scripted(&url, &cookie, None, (8, seconds, 2))?;
    load.print(
        &format!("overview benchmark ({backend}, {orgs} organizations; 8 connections)"),
        "pages/s",
        "non-2xx",
        backend,
        server.peak_rss_mib(),
    );
    Ok(())
}

const STATUSES: [&str; 8] = [
    "active", "active", "active", "trialing", "past_due", "unpaid", "canceled", "paused",
];
const CURRENCIES: [&str; 4] = ["usd", "eur", "gbp", "jpy"];
const INTERVALS: [&str; 3] = ["month", "month", "year"];

/// Organizations, their subscriptions and two weeks of events, in a few
/// large transactions.
async fn seed(server: &Server, orgs: u64) -> Result<(), sqlx::Error> {
    let db = TestDb::connect(&server.database_url).await?;
    let now = unix_now();
    with_db!(&db, |pool| {
        let mut tx = pool.begin().await?;
        for i in 0..orgs {
            let created = now - 400 * 86_400 + (i as i64 * 3_000) % (390 * 86_400);
            sqlx::query(
                "INSERT INTO organizations (id, slug, stripe_customer_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(format!("org_b{i:05}"))
            .bind(format!("bench-{i}"))
            .bind(format!("cus_b{i:05}"))
            .bind(created)
            .execute(&mut *tx)
            .await?;
            let status = STATUSES[i as usize % STATUSES.len()];
            sqlx::query(
                "INSERT INTO subscriptions (id, customer_id, status, currency, unit_amount, quantity, \
                 recurring_interval, interval_count, current_period_end, cancel_at_period_end, \
                 canceled_at, created, event_created, event_rank, event_source, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $11, $11, 0, 'bench', $11)",
            )
            .bind(format!("sub_b{i:05}"))
            .bind(format!("cus_b{i:05}"))
            .bind(status)
            .bind(CURRENCIES[i as usize % CURRENCIES.len()])
            .bind(1_000 + (i as i64 % 50) * 100)
            .bind(1 + i as i64 % 5)
            .bind(INTERVALS[i as usize % INTERVALS.len()])
            .bind(now + 86_400 * (1 + i as i64 % 30))
            .bind(i % 17 == 0)
            .bind((status == "canceled").then_some(now - 86_400 * (i as i64 % 60)))
            .bind(created)
            .execute(&mut *tx)
            .await?;
            if i % 2 == 0 {
                let received = now - (i as i64 % 14) * 86_400;
                sqlx::query(
                    "INSERT INTO stripe_events (id, type, created, livemode, payload, received_at, \
                     processed_at, attempts) VALUES ($1, 'invoice.paid', $2, FALSE, '{}', $2, $3, 1)",
                )
                .bind(format!("evt_b{i:05}"))
                .bind(received)
                .bind((i % 40 != 0).then_some(received))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok::<(), sqlx::Error>(())
    })
}
