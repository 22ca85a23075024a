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

use std::net::TcpListener;
use std::process::Command;

use actix_web::{App, HttpResponse, HttpServer, web};
use common::{Server, knob};
use lance_billing::auth::dev::{DevKey, DevTokenRequest};
use lance_billing::domain::{OrgId, UserId};

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
            link_organizations(&server).await?;
            let count = if mode == "cold" {
                knob("BENCH_COLD_TOKENS", 150_000)
            } else {
                10_000
            };
            let started = std::time::Instant::now();
            let tokens = mint_tokens(&server, count as usize)?;
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

/// 1,000 organizations, each linked to a customer of its own.
async fn link_organizations(server: &Server) -> Result<(), String> {
    let db = db::TestDb::connect(&server.database_url)
        .await
        .map_err(|e| e.to_string())?;
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999) \
         INSERT INTO organizations (id, slug, stripe_customer_id, created_at, updated_at) \
         SELECT 'org_bench' || CAST(i AS TEXT), 'bench' || CAST(i AS TEXT), \
           'cus_bench' || CAST(i AS TEXT), 0, 0 FROM n",
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// `count` tokens, each for a user of its own in one of the organizations,
/// minted on every core.
fn mint_tokens(server: &Server, count: usize) -> Result<Vec<String>, String> {
    let path = server
        .env
        .iter()
        .find(|(k, _)| *k == "DEV_KEY_FILE")
        .map(|(_, v)| std::path::PathBuf::from(v))
        .ok_or("no DEV_KEY_FILE")?;
    let key = std::sync::Arc::new(DevKey::load_or_create(&path).map_err(|e| e.to_string())?);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let handles: Vec<_> = (0..cores)
        .map(|core| {
            let key = key.clone();
            std::thread::spawn(move || {
                (core..count)
                    .step_by(cores)
                    .map(|i| {
                        let user =
                            UserId::parse(&format!("user_bench{i}")).map_err(|e| e.to_string())?;
                        let org = OrgId::parse(&format!("org_bench{}", i % 1000))
                            .map_err(|e| e.to_string())?;
                        key.mint(&DevTokenRequest {
                            user: &user,
                            org: Some(&org),
                            role: "org:admin",
                            slug: None,
                            ttl_secs: 3600,
                        })
                        .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<String>, String>>()
            })
        })
        .collect();
    let mut tokens = Vec::with_capacity(count);
    for handle in handles {
        tokens.extend(handle.join().map_err(|_| "a minting thread panicked")??);
    }
    Ok(tokens)
}

/// A `wrk` script, and the list of tokens it reads: each thread sends its
/// own share of the tokens in turn.
fn token_script(
    tokens: &[String],
) -> Result<(tempfile::NamedTempFile, tempfile::NamedTempFile), String> {
    let list = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(list.path(), tokens.join("\n")).map_err(|e| e.to_string())?;
    let script = format!(
        "local threads = 0\n\
         function setup(thread)\n\
           thread:set(\"id\", threads)\n\
           threads = threads + 1\n\
         end\n\
         function init(args)\n\
           tokens = {{}}\n\
           local n = 0\n\
           for line in io.lines(\"{}\") do\n\
             if n % {THREADS} == id then table.insert(tokens, line) end\n\
             n = n + 1\n\
           end\n\
           i = 0\n\
         end\n\
         request = function()\n\
           i = i % #tokens + 1\n\
           return wrk.format(\"GET\", nil, {{[\"Authorization\"] = \"Bearer \" .. tokens[i]}})\n\
         end\n",
        list.path().display(),
        THREADS = knob("BENCH_THREADS", 2),
    );
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(file.path(), script).map_err(|e| e.to_string())?;
    Ok((file, list))
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
