//! Load benchmark of GET /api/v1/operations/payment/customer-portal.
//!
//!     cargo bench --bench portal                                  # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1/test cargo bench --bench portal
//!
//! Starts an instant Stripe stand-in on loopback, runs the real release
//! binary as a child process (development sign-in, a fresh database, one
//! linked organization), drives it with `wrk` (apt install wrk) and prints
//! redirects/s, p50/p99 latency and the server's peak RSS.
//!
//!     BENCH_TOKENS=cold cargo bench --bench portal   # 1,000 organizations, every token new
//!     BENCH_TOKENS=warm cargo bench --bench portal   # 1,000 organizations, 10,000 tokens rotating
//!
//! The token modes link 1,000 organizations and mint tokens beforehand
//! (signed with the development key, each for its own user and one of the
//! organizations); `wrk` sends each thread's share in turn. Cold: a token is
//! never sent twice, so each signature is checked (the real pattern: a user
//! clicks once); it mints BENCH_COLD_TOKENS (150,000) and says if the run
//! outlasted them. Warm: 10,000 tokens over and over.
//! Knobs: BENCH_CONNECTIONS (64), BENCH_SECONDS (10), BENCH_THREADS (2),
//! BENCH_TOKENS (one: one organization, one token).

mod common;
#[path = "../tests/support/db.rs"]
mod db;

use std::process::Command;

use common::{Server, fleet, knob};

#[tokio::main]
async fn main() {
    common::exit_on_error(run().await);
}

async fn run() -> Result<(), String> {
    let connections = knob("BENCH_CONNECTIONS", 64);
    let seconds = knob("BENCH_SECONDS", 10);
    let threads = knob("BENCH_THREADS", 2);
    let stripe_port = fleet::start_stripe_stand_in()?;
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
    let mode = std::env::var("BENCH_TOKENS").unwrap_or_else(|_| "one".to_owned());
    let report = match mode.as_str() {
        "one" => common::wrk(
            &url,
            &[format!("Authorization: Bearer {token}")],
            connections,
            seconds,
            threads,
        )?,
        "cold" | "warm" => {
            fleet::link_organizations(&server).await?;
            let count = if mode == "cold" {
                knob("BENCH_COLD_TOKENS", 150_000)
            } else {
                10_000
            };
            let started = std::time::Instant::now();
            let tokens = fleet::mint_tokens(&server, count as usize)?;
            println!(
                "minted {count} tokens in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            // The list is read by the script: both live until the run ends.
            let (script, _list) = token_script(&tokens)?;
            let report = common::wrk_scripted(
                &url,
                &[],
                Some(script.path()),
                (connections, seconds, threads),
            )?;
            let sent = report.requests_per_sec * seconds as f64;
            if mode == "cold" && sent > count as f64 {
                println!("note: about {sent:.0} requests for {count} tokens: some were sent twice");
            }
            report
        }
        other => {
            return Err(format!(
                "BENCH_TOKENS must be one, cold or warm, not {other}"
            ));
        }
    };
    let backend = server.backend();
    let title = format!(
        "portal benchmark ({backend}, tokens: {mode}, {connections} connections, {threads} wrk threads, {seconds} s)"
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

/// A `wrk` script, and the list of tokens it reads: each thread sends its
/// own share of the tokens in turn.
fn token_script(
    tokens: &[String],
) -> Result<(tempfile::NamedTempFile, tempfile::NamedTempFile), String> {
    let lines: Vec<String> = tokens
        .iter()
        .map(|t| format!("\tAuthorization\tBearer {t}"))
        .collect();
    common::request_list_script(&lines, knob("BENCH_THREADS", 2))
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
