//! Stopping the real binary with SIGTERM, as an orchestrator does on every
//! rolling deploy, while webhooks and portal visits keep coming: it exits 0
//! within a bounded time, with every acknowledged webhook stored and every
//! redirected portal session audited, on either backend (on PostgreSQL the
//! change feed used to keep the process alive forever).

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

impl Process {
    /// Sends SIGTERM, as an orchestrator does, and waits for a clean exit
    /// (status 0 within 10 s).
    async fn terminate(&mut self) {
        let stopping = Instant::now();
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                stopping.elapsed() < Duration::from_secs(10),
                "still running 10 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit status {status}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn environment(
    database_url: &str,
    dir: &std::path::Path,
    stripe: &str,
) -> Vec<(&'static str, String)> {
    [
        ("DATABASE_URL", database_url.to_owned()),
        // A port of the server's choosing, read from its log (a port picked
        // here could be taken by another test before the server binds it).
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("STRIPE_SECRET_KEY", STRIPE_KEY.to_owned()),
        ("STRIPE_API_BASE", stripe.to_owned()),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("STRIPE_CATCHUP_INTERVAL", "1s".to_owned()),
        ("STRIPE_MAX_RETRIES", "0".to_owned()),
        ("DEV_AUTH", "true".to_owned()),
        ("DEV_KEY_FILE", dir.join("dev.pem").display().to_string()),
        ("WORKERS", "2".to_owned()),
        ("RUST_LOG", "warn,lance_billing::server=info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// Runs a command of the binary with `env`; returns what it printed.
fn cli(env: &[(&'static str, String)], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lance-billing"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The real binary's `serve` with only `env`, its log piped.
fn serve(env: &[(&'static str, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lance-billing"))
        .arg("serve")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn start(env: &[(&'static str, String)]) -> Process {
    let mut child = serve(env);
    let log = child.stderr.take().unwrap();
    let address = format!("http://{}", announced(log, "listening on "));
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
async fn sigterm_under_load_stores_every_acknowledged_webhook_and_audits_every_portal_session() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("TEST_DATABASE_URL").ok();
    let database_url = fresh_database_url(dir.path(), postgres.as_deref(), "lt")
        .await
        .unwrap();
    let stripe = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/v1/billing_portal/sessions"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(portal_session_json()))
        .mount(&stripe)
        .await;
    let env = environment(&database_url, dir.path(), &stripe.uri());
    cli(&env, &["migrate"]);
    cli(
        &env,
        &[
            "org",
            "link",
            "--org",
            "org_stop",
            "--customer",
            "cus_NciAYcXfLnqBoz",
            "--no-verify",
        ],
    );
    let token = cli(&env, &["dev", "token", "--org", "org_stop", "--ttl", "600"]);
    let mut process = start(&env).await;
    // Let the background tasks (change feed, catch-up, snapshot) get going.
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let senders = (0..4).map(|worker| {
        let (client, address) = (client.clone(), process.address.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0.. {
                let id = format!("evt_load_{worker}_{i}");
                let event = event(
                    &id,
                    "customer.created",
                    100,
                    customer(&format!("cus_l{worker}x{i}"), None, None),
                );
                match post_signed_with(&client, &address, &event).await {
                    Some(200) => acknowledged.push(id),
                    Some(_) => {}
                    None => break, // the server no longer accepts
                }
            }
            acknowledged
        })
    });
    let visitors = (0..4).map(|_| {
        let (client, address, token) = (client.clone(), process.address.clone(), token.clone());
        tokio::spawn(async move {
            let mut redirected = 0i64;
            loop {
                let sent = client
                    .get(format!(
                        "{address}/api/v1/operations/payment/customer-portal"
                    ))
                    .bearer_auth(&token)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 302 => redirected += 1,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            redirected
        })
    });
    let (senders, visitors): (Vec<_>, Vec<_>) = (senders.collect(), visitors.collect());
    tokio::time::sleep(Duration::from_millis(800)).await;

    process.terminate().await;

    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    let mut redirected = 0;
    for visitor in visitors {
        redirected += visitor.await.unwrap();
    }
    assert!(!acknowledged.is_empty() && redirected > 0, "there was load");
    let db = TestDb::connect(&database_url).await.unwrap();
    let stored: Vec<String> = crate::with_db!(&db, |pool| {
        sqlx::query_scalar("SELECT id FROM stripe_events")
            .fetch_all(pool)
            .await
            .unwrap()
    });
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    // Every redirect the visitors received is audited; sessions whose answer
    // the stop cut off before it reached them may be audited too.
    let audited = db
        .scalar("SELECT COUNT(*) FROM billing_audit WHERE action = 'portal'")
        .await
        .unwrap();
    assert!(
        audited >= redirected,
        "{audited} audited for {redirected} redirects"
    );
}

async fn post_signed_with(client: &reqwest::Client, address: &str, event: &Value) -> Option<u16> {
    let body = serde_json::to_vec(event).unwrap();
    let signature =
        lance_billing::stripe::webhook::signature_header(WEBHOOK_SECRET, unix_now(), &body);
    client
        .post(format!("{address}/api/v1/webhooks/stripe"))
        .header("Stripe-Signature", signature)
        .body(body)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_with_every_acknowledged_webhook_stored() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("TEST_DATABASE_URL").ok();
    let database_url = fresh_database_url(dir.path(), postgres.as_deref(), "lt")
        .await
        .unwrap();
    let stripe = wiremock::MockServer::start().await;
    let env = environment(&database_url, dir.path(), &stripe.uri());
    let mut process = start(&env).await;
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

    process.terminate().await;
    let db = TestDb::connect(&database_url).await.unwrap();
    assert_eq!(acknowledged, 20);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM stripe_events")
            .await
            .unwrap(),
        acknowledged
    );
}

/// With `LOG_FORMAT=json` every line is one JSON object, and the lines of
/// a request carry its id.
#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("TEST_DATABASE_URL").ok();
    let database_url = fresh_database_url(dir.path(), postgres.as_deref(), "logs")
        .await
        .unwrap();
    let mut env = environment(&database_url, dir.path(), "http://127.0.0.1:9");
    env.push(("LOG_FORMAT", "json".to_owned()));
    env.push(("RUST_LOG", "info".to_owned()));
    let mut child = serve(&env);
    let (address, log) = announced_keeping_log(child.stderr.take().unwrap(), "listening on ");
    let process = Process {
        child,
        address: format!("http://{address}"),
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let answered = client
            .get(format!("{}/healthz", process.address))
            .header("X-Request-Id", "json-log-1")
            .send()
            .await;
        if answered.is_ok() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A line written by a handler: a delivery without Stripe's signature.
    let refused = client
        .post(format!("{}/api/v1/webhooks/stripe", process.address))
        .header("X-Request-Id", "json-log-2")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let started = Instant::now();
    loop {
        let lines = log.lock().unwrap().clone();
        let parsed: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        let access = parsed.iter().find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("/healthz"))
        });
        if let Some(access) = access {
            assert!(
                access["message"].as_str().unwrap().contains("json-log-1"),
                "{access}"
            );
            assert!(
                parsed
                    .iter()
                    .all(|v| v["level"].is_string() && v["time"].is_string())
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
