//! Load benchmark of GET /api/v1/operations/payment/customer-portal.
//!
//!     cargo bench --bench portal                                  # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench portal
//!
//! Starts an instant Stripe stand-in on loopback, runs the real release
//! binary as a child process (development sign-in, a fresh database, one
//! linked organization), drives it with `wrk` (apt install wrk) and prints
//! redirects/s, p50/p99 latency and the server's peak RSS.
//! Knobs: BENCH_CONNECTIONS (64), BENCH_SECONDS (10), BENCH_THREADS (2).

mod common;
#[path = "../tests/support/db.rs"]
mod db;

use std::net::TcpListener;
use std::process::Command;

use actix_web::{App, HttpResponse, HttpServer, web};
use common::{Server, knob};

const PORTAL_SESSION: &str = r#"{"id":"bps_bench","object":"billing_portal.session","configuration":"bpc_1","created":1700000000,"customer":"cus_Bench","flow":null,"livemode":false,"locale":null,"on_behalf_of":null,"return_url":"https://app.lance.test/organization#/plans","url":"https://billing.stripe.com/p/session/test_bench"}"#;

#[tokio::main]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), String> {
    let connections = knob("BENCH_CONNECTIONS", 64);
    let seconds = knob("BENCH_SECONDS", 10);
    let threads = knob("BENCH_THREADS", 2);
    let stripe_port = start_stripe_stand_in()?;
    let mut server =
        Server::prepare(&[("STRIPE_API_BASE", format!("http://127.0.0.1:{stripe_port}"))]).await?;
    server.cli(&[
        "org",
        "link",
        "--org",
        "org_bench",
        "--customer",
        "cus_Bench",
        "--no-verify",
    ])?;
    let token = server.cli(&["dev", "token", "--org", "org_bench", "--ttl", "3600"])?;
    server.start()?;
    let url = format!(
        "http://127.0.0.1:{}/api/v1/operations/payment/customer-portal",
        server.port
    );
    check_one_redirect(&url, &token)?;
    let report = common::wrk(
        &url,
        &[format!("Authorization: Bearer {token}")],
        connections,
        seconds,
        threads,
    )?;
    let backend = server.backend();
    let title = format!(
        "portal benchmark ({backend}, {connections} connections, {threads} wrk threads, {seconds} s)"
    );
    report.print(
        &title,
        "redirects/s",
        "non-302",
        backend,
        server.peak_rss_mib(),
    );
    Ok(())
}

fn check_one_redirect(url: &str, token: &str) -> Result<(), String> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("Authorization: Bearer {token}"),
            url,
        ])
        .output()
        .map_err(|e| e.to_string())?;
    match String::from_utf8_lossy(&out.stdout).as_ref() {
        "302" => Ok(()),
        other => Err(format!("expected a 302 before measuring, got {other}")),
    }
}

/// Answers every request with a portal session, at once, on its own thread.
/// It reads each request's body: actix closes a connection whose body was
/// left unread, and the reconnects would be measured as the service's cost.
fn start_stripe_stand_in() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| {
                App::new().default_service(web::to(|_form: web::Bytes| async {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(PORTAL_SESSION)
                }))
            })
            .workers(1)
            .listen(listener);
            if let Ok(server) = server {
                let _ = server.run().await;
            }
        });
    });
    Ok(port)
}
