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

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};

const PORTAL_SESSION: &str = r#"{"id":"bps_bench","object":"billing_portal.session","configuration":"bpc_1","created":1700000000,"customer":"cus_Bench","flow":null,"livemode":false,"locale":null,"on_behalf_of":null,"return_url":"https://app.lance.test/organization#/plans","url":"https://billing.stripe.com/p/session/test_bench"}"#;

fn main() {
    if let Err(err) = run() {
        eprintln!("benchmark failed: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let connections = knob("BENCH_CONNECTIONS", 64);
    let seconds = knob("BENCH_SECONDS", 10);
    let threads = knob("BENCH_THREADS", 2);
    let binary = env!("CARGO_BIN_EXE_lance-billing");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let database_url = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => fresh_postgres_schema(&url)?,
        Err(_) => format!("sqlite://{}/bench.db", dir.path().display()),
    };
    let backend = if database_url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let stripe_port = start_stripe_stand_in()?;
    let port = free_port()?;
    let env = [
        ("DATABASE_URL", database_url.clone()),
        ("DEV_AUTH", "true".to_owned()),
        (
            "DEV_KEY_FILE",
            dir.path().join("dev-key.pem").display().to_string(),
        ),
        ("STRIPE_SECRET_KEY", "sk_test_bench".to_owned()),
        ("STRIPE_API_BASE", format!("http://127.0.0.1:{stripe_port}")),
        ("PUBLIC_URL", "https://app.lance.test".to_owned()),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let cli = |args: &[&str]| command_output(binary, args, &env);
    cli(&[
        "org",
        "link",
        "--org",
        "org_bench",
        "--customer",
        "cus_Bench",
        "--no-verify",
    ])?;
    let token = cli(&["dev", "token", "--org", "org_bench", "--ttl", "3600"])?;
    let mut server = Command::new(binary)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start {binary}: {e}"))?;
    let outcome = measure(&server, port, &token, connections, seconds, threads);
    let _ = server.kill();
    let _ = server.wait();
    let result = outcome?;
    println!(
        "\nportal benchmark ({backend}, {connections} connections, {threads} wrk threads, {seconds} s)"
    );
    println!("| backend | redirects/s | p50 | p99 | non-302 | server peak RSS |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {backend} | {:.0} | {} | {} | {} | {:.1} MiB |",
        result.rps,
        result.p50,
        result.p99,
        result.errors,
        result.peak_rss_kib as f64 / 1024.0
    );
    Ok(())
}

struct Outcome {
    rps: f64,
    p50: String,
    p99: String,
    errors: u64,
    peak_rss_kib: u64,
}

fn measure(
    server: &Child,
    port: u16,
    token: &str,
    connections: u32,
    seconds: u32,
    threads: u32,
) -> Result<Outcome, String> {
    wait_until_ready(port)?;
    let url = format!("http://127.0.0.1:{port}/api/v1/operations/payment/customer-portal");
    check_one_redirect(&url, token)?;
    let output = Command::new("wrk")
        .args([
            "--latency",
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
        ])
        .args([
            "-d",
            &format!("{seconds}s"),
            "-H",
            &format!("Authorization: Bearer {token}"),
            &url,
        ])
        .output()
        .map_err(|e| format!("could not run wrk (apt install wrk): {e}"))?;
    let report = String::from_utf8_lossy(&output.stdout).to_string();
    let field = |prefix: &str| {
        report
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected wrk output:\n{report}"))?;
    // wrk counts 3xx as success; anything else (a 4xx/5xx) shows up here.
    let errors = report
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    Ok(Outcome {
        rps,
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        errors,
        peak_rss_kib: peak_rss_kib(server.id()).unwrap_or(0),
    })
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

fn wait_until_ready(port: u16) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("the server did not start within 20 s".into())
}

/// VmHWM: the peak resident set size of the process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn start_stripe_stand_in() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| {
                App::new().default_service(web::to(|| async {
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

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn command_output(binary: &str, args: &[&str], env: &[(&str, String)]) -> Result<String, String> {
    let out = Command::new(binary)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn knob(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A new schema in the given PostgreSQL database, via psql (keeps the bench free of async setup).
fn fresh_postgres_schema(base: &str) -> Result<String, String> {
    let schema = format!("bench_{}", std::process::id());
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};");
    let out = Command::new("psql")
        .args([base, "-q", "-c", &sql])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options[search_path]={schema}"))
}
