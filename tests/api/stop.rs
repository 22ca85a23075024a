//! Stopping the real binary with SIGTERM, as an orchestrator does on every
//! rolling deploy: it exits 0 within a bounded time, with every acknowledged
//! webhook stored, on either backend (on PostgreSQL the change feed used to
//! keep the process alive forever).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lance_billing::domain::unix_now;
use serde_json::Value;

use crate::db::{TestDb, fresh_database_url};
use crate::helpers::*;
use crate::stripe_fixtures::*;

struct Process {
    child: Child,
    address: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(database_url: &str, dir: &std::path::Path, stripe: &str) -> Process {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_lance-billing"))
        .arg("serve")
        .env_clear()
        .envs([
            ("DATABASE_URL", database_url),
            ("BIND_ADDR", &format!("127.0.0.1:{port}")),
            ("PUBLIC_URL", PUBLIC_URL),
            ("STRIPE_SECRET_KEY", STRIPE_KEY),
            ("STRIPE_API_BASE", stripe),
            ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("STRIPE_CATCHUP_INTERVAL", "1s"),
            ("STRIPE_MAX_RETRIES", "0"),
            ("DEV_AUTH", "true"),
            ("DEV_KEY_FILE", &dir.join("dev.pem").display().to_string()),
            ("WORKERS", "2"),
            ("RUST_LOG", "warn"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{address}/healthz")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Process { child, address }
}

async fn post_signed(address: &str, event: &Value) -> u16 {
    let body = serde_json::to_vec(event).unwrap();
    let signature =
        lance_billing::stripe::webhook::signature_header(WEBHOOK_SECRET, unix_now(), &body);
    reqwest::Client::new()
        .post(format!("{address}/api/v1/webhooks/stripe"))
        .header("Stripe-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_with_every_acknowledged_webhook_stored() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("TEST_DATABASE_URL").ok();
    let database_url = fresh_database_url(dir.path(), postgres.as_deref(), "lt")
        .await
        .unwrap();
    let stripe = wiremock::MockServer::start().await;
    let mut process = start(&database_url, dir.path(), &stripe.uri()).await;
    // Let the background tasks (change feed, catch-up schedule) get going.
    let mut acknowledged = 0;
    for i in 0..20 {
        let event = event(
            &format!("evt_stop_{i}"),
            "customer.created",
            100 + i,
            customer(&format!("cus_stop{i}"), None, None),
        );
        if post_signed(&process.address, &event).await == 200 {
            acknowledged += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let stopping = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &process.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
    let db = TestDb::connect(&database_url).await.unwrap();
    assert_eq!(acknowledged, 20);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM stripe_events")
            .await
            .unwrap(),
        acknowledged
    );
}
