//! What the benchmarks share: the real release binary as a child process on
//! a fresh database, with its peak memory read from /proc.
#![allow(dead_code)]

pub mod fleet;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::db::{TestDb, drop_schema_of, fresh_database_url};

pub const BINARY: &str = env!("CARGO_BIN_EXE_lance-billing");

/// The server binary: this build's, or BENCH_BINARY (another build, to
/// compare two versions in one sitting on one machine).
pub fn binary() -> String {
    std::env::var("BENCH_BINARY").unwrap_or_else(|_| BINARY.to_owned())
}

pub struct Server {
    /// The binary `start` and `cli` run: `binary()` unless set.
    pub binary: String,
    pub child: Child,
    pub port: u16,
    pub database_url: String,
    pub env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Environment for a server on a fresh database (SQLite, or a new schema
    /// in BENCH_DATABASE_URL), development sign-in, and `extra`.
    pub async fn prepare(extra: &[(&'static str, String)]) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let postgres = std::env::var("BENCH_DATABASE_URL").ok();
        let database_url = fresh_database_url(dir.path(), postgres.as_deref(), "bench")
            .await
            .map_err(|e| e.to_string())?;
        let port = free_port()?;
        let server_database_url = match knob("BENCH_DATABASE_DELAY_US", 0) {
            0 => database_url.clone(),
            us => through_delay(&database_url, Duration::from_micros(us))?,
        };
        let mut env = vec![
            ("DATABASE_URL", server_database_url),
            ("DEV_AUTH", "true".to_owned()),
            (
                "DEV_KEY_FILE",
                dir.path().join("dev-key.pem").display().to_string(),
            ),
            ("STRIPE_SECRET_KEY", "sk_test_bench".to_owned()),
            ("PUBLIC_URL", "https://app.lance.test".to_owned()),
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("RUST_LOG", "warn".to_owned()),
            // No Stripe to catch up from.
            ("STRIPE_CATCHUP_INTERVAL", "0".to_owned()),
        ];
        // Server sizing knobs, passed through when set.
        for (knob, var) in [
            ("BENCH_DATABASE_MAX_CONNECTIONS", "DATABASE_MAX_CONNECTIONS"),
            ("BENCH_WORKERS", "WORKERS"),
            ("BENCH_INGEST_WRITERS", "INGEST_WRITERS"),
        ] {
            if let Ok(value) = std::env::var(knob) {
                env.push((var, value));
            }
        }
        env.extend(extra.iter().cloned());
        // A placeholder child until `start`; replaced there.
        let child = Command::new("true").spawn().map_err(|e| e.to_string())?;
        Ok(Self {
            binary: binary(),
            child,
            port,
            database_url,
            env,
            _dir: dir,
        })
    }

    /// Runs a CLI command with the server's environment; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.binary)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
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

    pub fn start(&mut self) -> Result<(), String> {
        let _ = self.child.wait();
        self.child = Command::new(&self.binary)
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", self.binary))?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if answers_healthz(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("the server did not start within 20 s".into())
    }

    /// Stops the server and starts it again with `var` set to `value`.
    pub fn restart_with(&mut self, var: &'static str, value: &str) -> Result<(), String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.env.retain(|(k, _)| *k != var);
        self.env.push((var, value.to_owned()));
        self.start()
    }

    pub fn backend(&self) -> &'static str {
        if self.database_url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// The CPU time the server has used, user and system, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.child.id().to_string())
    }

    /// VmHWM: the server's peak resident set size, in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        status_mib(self.child.id(), "VmHWM:")
    }

    /// RssAnon: the server's own memory now, without the file pages it
    /// maps (SQLite's database, shared with the OS page cache), in MiB.
    /// Waits until every customer's Plans document is kept (the server
    /// builds each a moment after its customer's last change, off the
    /// request path), so a run measures the steady state, not those builds.
    /// A build that keeps none has nothing to wait for.
    pub async fn plans_documents_built(&self) -> Result<(), String> {
        let started = Instant::now();
        let to_build = "SELECT COUNT(*) FROM synced_plans WHERE document IS NULL";
        while count(self, to_build).await.unwrap_or(0) > 0 {
            if started.elapsed() > Duration::from_secs(120) {
                return Err("the Plans documents were not built in 120 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "Plans documents built {:.1} s after the last delivery",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    pub fn private_mib(&self) -> f64 {
        status_mib(self.child.id(), "RssAnon:")
    }
}

/// A size field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), in MiB.
pub fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Whether `GET /healthz` is answered 200: the port is bound before the
/// migrations run, so an accepted connection does not mean the server is up.
fn answers_healthz(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

/// The CPU time process `pid` (or `self`) has used, user and system, in
/// seconds: fields 14 and 15 of `/proc/<pid>/stat`, in Linux's fixed
/// 100 ticks a second (`USER_HZ`).
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")).unwrap_or_default();
    // The command name, in parentheses, may hold spaces: count after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The CPU time all PostgreSQL processes on this machine have used, in
/// seconds (0 where none run).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|entry| cpu_seconds(&entry.file_name().to_string_lossy()))
        .sum()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop_schema_of(&self.database_url);
    }
}

/// Ends the benchmark with its error, if any, and a failing status.
pub fn exit_on_error(result: Result<(), String>) {
    if let Err(err) = result {
        eprintln!("benchmark failed: {err}");
        std::process::exit(1);
    }
}

/// `url` with its host and port those of a relay that holds each chunk
/// `round_trip / 2` each way: the database across a network, on loopback
/// (BENCH_DATABASE_DELAY_US, PostgreSQL only). The bench's own reads go
/// direct.
fn through_delay(url: &str, round_trip: Duration) -> Result<String, String> {
    let mut url = url::Url::parse(url).map_err(|e| e.to_string())?;
    if !url.scheme().starts_with("postgres") {
        return Err("BENCH_DATABASE_DELAY_US needs BENCH_DATABASE_URL (PostgreSQL)".into());
    }
    let upstream = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let port = delay_relay(upstream, round_trip / 2)?;
    url.set_host(Some("127.0.0.1")).map_err(|e| e.to_string())?;
    url.set_port(Some(port))
        .map_err(|()| "a PostgreSQL URL has a port".to_owned())?;
    Ok(url.to_string())
}

/// A TCP relay to `upstream` on a free port, passing each chunk on
/// `one_way` after it arrived, in order, on threads of its own.
fn delay_relay(upstream: String, one_way: Duration) -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            let (Ok(client_side), Ok(server_side)) = (client.try_clone(), server.try_clone())
            else {
                continue;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            relay_one_way(client, server_side, one_way);
            relay_one_way(server, client_side, one_way);
        }
    });
    Ok(port)
}

fn relay_one_way(mut from: std::net::TcpStream, mut to: std::net::TcpStream, delay: Duration) {
    use std::io::{Read, Write};
    let (chunks, arrived) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buffer) {
            if chunks.send((Instant::now(), buffer[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for (at, chunk) in arrived {
            std::thread::sleep((at + delay).saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs one SQL query returning a number against the server's database.
pub async fn count(server: &Server, sql: &'static str) -> Result<i64, String> {
    let db = TestDb::connect(&server.database_url)
        .await
        .map_err(|e| e.to_string())?;
    db.scalar(sql).await.map_err(|e| e.to_string())
}

/// The median of `values` (0 when there are none).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// p-th percentile of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// What `wrk --latency` reported.
pub struct WrkReport {
    pub requests_per_sec: f64,
    pub p50: String,
    pub p99: String,
    /// Responses other than 2xx/3xx.
    pub errors: u64,
    /// Responses received, of any status (`N requests in …`).
    pub responses: u64,
}

impl WrkReport {
    /// The report as a Markdown table under `title`: one row for `backend`.
    pub fn print(&self, title: &str, per_sec: &str, refused: &str, backend: &str, rss_mib: f64) {
        println!("\n{title}");
        println!("| backend | {per_sec} | p50 | p99 | {refused} | server peak RSS |");
        println!("|---|---|---|---|---|---|");
        println!(
            "| {backend} | {:.0} | {} | {} | {} | {rss_mib:.1} MiB |",
            self.requests_per_sec, self.p50, self.p99, self.errors
        );
    }
}

/// Runs `wrk` (Debian package `wrk`) against `url` with `headers`.
pub fn wrk(
    url: &str,
    headers: &[String],
    connections: u64,
    seconds: u64,
    threads: u64,
) -> Result<WrkReport, String> {
    wrk_scripted(url, headers, None, (connections, seconds, threads))
}

/// `wrk` with a Lua `script` (e.g. one that varies the path per request);
/// `load` is (connections, seconds, threads).
pub fn wrk_scripted(
    url: &str,
    headers: &[String],
    script: Option<&Path>,
    (connections, seconds, threads): (u64, u64, u64),
) -> Result<WrkReport, String> {
    let mut command = std::process::Command::new("wrk");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    command.args([
        "--latency",
        "-t",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
    ]);
    command.args(["-d", &format!("{seconds}s")]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command
        .arg(url)
        .output()
        .map_err(|e| format!("could not run wrk (apt-get install wrk): {e}"))?;
    let report = String::from_utf8_lossy(&output.stdout).to_string();
    let field = |prefix: &str| {
        report
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    let requests_per_sec = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected wrk output:\n{report}"))?;
    Ok(WrkReport {
        requests_per_sec,
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        errors: report
            .lines()
            .find(|l| l.contains("Non-2xx or 3xx responses"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0),
        responses: report
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
    })
}

/// A `wrk` script and the list it reads: one request a line, written
/// `path<TAB>header<TAB>value` (an empty path is the URL's). Each of the
/// `threads` threads sends its own share of the lines in turn.
pub fn request_list_script(
    lines: &[String],
    threads: u64,
) -> Result<(tempfile::NamedTempFile, tempfile::NamedTempFile), String> {
    let list = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(list.path(), lines.join("\n")).map_err(|e| e.to_string())?;
    let script = format!(
        "local threads = 0\n\
         function setup(thread)\n\
           thread:set(\"id\", threads)\n\
           threads = threads + 1\n\
         end\n\
         function init(args)\n\
           paths, names, values = {{}}, {{}}, {{}}\n\
           local n = 0\n\
           for line in io.lines(\"{}\") do\n\
             if n % {threads} == id then\n\
               local p, h, v = line:match(\"([^\\t]*)\\t([^\\t]*)\\t(.*)\")\n\
               if p == \"\" then p = false end\n\
               table.insert(paths, p); table.insert(names, h); table.insert(values, v)\n\
             end\n\
             n = n + 1\n\
           end\n\
           i = 0\n\
         end\n\
         request = function()\n\
           i = i % #paths + 1\n\
           return wrk.format(\"GET\", paths[i] or nil, {{[names[i]] = values[i]}})\n\
         end\n",
        list.path().display(),
    );
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(file.path(), script).map_err(|e| e.to_string())?;
    Ok((file, list))
}
