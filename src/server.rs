//! Builds the application from typed settings. `main` and the tests call the
//! same `Application::build`, so tests exercise the real server: the session
//! middleware, the security headers and the route table of `crate::web`.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::{self, DefaultHeaders, Logger};
use actix_web::web::Data;
use actix_web::{App, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::billing::budget::StripeBudget;
use crate::billing::credits::{self, Debits};
use crate::billing::versions::VersionWatch;
use crate::billing::writers::Writers;
use crate::billing::{Ingestor, catchup, refetch, retention, seats, snapshot, synced_plans, usage};
use crate::clerk::svix::SvixVerifier;
use crate::config::{AuthSettings, DatabaseSettings, PagesSettings, Settings};
use crate::cores;
use crate::state::AppState;
use crate::store::{AuditLog, Store};
use crate::stripe::StripeClient;
use crate::stripe::webhook::WebhookVerifier;
use crate::web;
use crate::web::{metrics, request_id};

/// How long a stop waits for background tasks and the database, each.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    /// Tells the background tasks to finish.
    stop: CancellationToken,
    /// The change feed, the catch-up schedule, the audit writer.
    tasks: Vec<JoinHandle<()>>,
}

impl Application {
    /// The application listening on `BIND_ADDR`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.server.bind_addr)
            .with_context(|| format!("could not listen on {}", settings.server.bind_addr))?;
        Self::build_on(settings, listener).await
    }

    /// The application on a socket already bound: whoever must know the
    /// port before the settings (a test whose `PUBLIC_URL` names it) binds
    /// port 0 and keeps the socket, so no other process can take the port
    /// in between.
    pub async fn build_on(settings: Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let store = connect_and_migrate(&settings.database).await?;
        let ingest_writers = settings.database.ingest_writers.max(1);
        // Ingest's writers, then the debits' and the usage intake's.
        let connections = ingest_writers + 2;
        // First, while nothing else writes: it opens the write connections again
        // beside the writers (on SQLite, the one every writer shares).
        let writers = Writers::start(store.clone(), connections, settings.database.ingest_pinned)
            .await
            .context("could not start the writers")?;
        let ingestor = Ingestor::for_store(&writers, ingest_writers);
        let debits = Debits::start(&writers);
        let usage_intake = usage::UsageIntake::start(&writers);
        writers.all_spawned();
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        tasks.extend(
            store
                .follow_other_instances(stop.clone())
                .await
                .context("could not listen for other instances' billing changes")?,
        );
        // One client (one connection pool, one TLS configuration) for all.
        let stripe =
            StripeClient::new(&settings.stripe).context("could not build the Stripe client")?;
        if let Some(interval) = settings.stripe.catchup_interval {
            let schedule =
                catchup::run_every(store.clone(), stripe.clone(), interval, stop.clone());
            tasks.push(tokio::spawn(schedule));
        }
        tasks.push(tokio::spawn(refetch::run(
            store.clone(),
            stripe.clone(),
            stop.clone(),
        )));
        if let Some(kept) = settings.database.event_payload_retention {
            tasks.push(tokio::spawn(retention::run_hourly(
                store.clone(),
                kept,
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(usage::run(
            store.clone(),
            stripe.clone(),
            settings.stripe.meter_events_per_second,
            stop.clone(),
        )));
        if settings.seats.follow_members {
            tasks.push(tokio::spawn(seats::run(
                store.clone(),
                stripe.clone(),
                settings.seats.clone(),
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(credits::expiry::run_every_minute(
            store.clone(),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(synced_plans::run(store.clone(), stop.clone())));
        tasks.push(tokio::spawn(snapshot::run_daily(
            store.clone(),
            stop.clone(),
        )));
        let (audit, audit_writer) = AuditLog::spawn(store.clone(), stop.clone());
        tasks.push(audit_writer);
        let authenticator = Data::new(Authenticator::from_settings(&settings.auth)?);
        let state = Data::new(AppState {
            store: store.clone(),
            stripe,
            plans_url: settings.server.plans_url(),
            origin: settings.server.origin(),
            pages: settings.pages.clone(),
            access: settings.access.clone(),
            seats: settings.seats.clone(),
            metrics_token: settings.server.metrics_token.clone(),
            audit,
            portal_configuration: settings.stripe.portal_configuration.clone(),
            webhooks: settings
                .webhooks
                .as_ref()
                .map(|w| WebhookVerifier::new(w.secrets.clone(), w.tolerance.as_secs() as i64)),
            clerk_webhooks: clerk_webhooks(&settings.auth)?,
            ingestor,
            debits,
            meters: settings.stripe.meters.clone(),
            usage: usage_intake,
            body_timeout: settings.server.client_body_timeout,
            versions: VersionWatch::new(&settings.stripe.api_version),
            stripe_budget: StripeBudget::default(),
        });
        if let Some(addr) = settings.server.metrics_addr {
            tasks.extend(serve_metrics(addr, state.clone(), stop.clone())?);
        }
        let address = listener.local_addr()?;
        let port = address.port();
        let session_key = session_key(&settings.pages);
        let secure_cookies = settings.server.public_url.scheme() == "https";
        let csp = content_security_policy(&settings);
        let workers = settings
            .server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let worker_start = WorkerStart::new(&settings.database, &store, workers);
        let server = HttpServer::new(move || {
            if let Some(start) = &worker_start {
                start.run(&state.store);
            }
            App::new()
                .wrap(
                    SessionMiddleware::builder(CookieSessionStore::default(), session_key.clone())
                        .cookie_name("lb_session".to_owned())
                        .cookie_secure(secure_cookies)
                        .cookie_http_only(true)
                        .cookie_same_site(SameSite::Lax)
                        .build(),
                )
                .wrap(Logger::new("%a \"%r\" %s %b %Dms %{x-request-id}i"))
                .wrap(security_headers(&csp))
                .wrap(middleware::from_fn(metrics::observe))
                // Outermost: the logger and every handler run inside its scope.
                .wrap(middleware::from_fn(request_id::assign))
                .app_data(state.clone())
                .app_data(authenticator.clone())
                .app_data(web::query_config())
                .app_data(web::path_config())
                .configure(web::routes)
        })
        .client_request_timeout(settings.server.client_request_timeout)
        .keep_alive(settings.server.keep_alive)
        .shutdown_timeout(settings.server.shutdown_timeout.as_secs())
        .workers(workers)
        .listen(listener)?;
        log::info!(
            "lance-billing listening on {address} ({} database)",
            store.backend_name()
        );
        Ok(Self {
            port,
            server: server.run(),
            store,
            stop,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT, then stops cleanly: no new
    /// connections, in-flight requests finish (so every acknowledged webhook
    /// is committed), the audit queue is written, background tasks end, and
    /// the database pool closes; each wait is bounded.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        log::info!("stopping: finishing background work");
        self.stop.cancel();
        for task in self.tasks {
            if tokio::time::timeout(STOP_TIMEOUT, task).await.is_err() {
                log::warn!("a background task did not finish within {STOP_TIMEOUT:?}");
            }
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.store.close())
            .await
            .is_err()
        {
            log::warn!("the database pool did not close within {STOP_TIMEOUT:?}");
        }
        log::info!("stopped");
        result
    }
}

/// `GET /metrics` alone on `addr`, without a token (an address only
/// Prometheus reaches), until `stop`.
fn serve_metrics(
    addr: std::net::SocketAddr,
    state: Data<AppState>,
    stop: CancellationToken,
) -> std::io::Result<[tokio::task::JoinHandle<()>; 2]> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", actix_web::web::get().to(metrics::open))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?
    .run();
    let handle = server.handle();
    log::info!("metrics on http://{addr}/metrics");
    Ok([
        tokio::spawn(async move {
            if let Err(err) = server.await {
                log::warn!("the metrics listener stopped: {err}");
            }
        }),
        tokio::spawn(async move {
            stop.cancelled().await;
            handle.stop(true).await;
        }),
    ])
}

/// Headers every response carries. Pages load nothing from elsewhere and run
/// no inline script; forms may only lead to us and to Stripe's checkout.
fn security_headers(csp: &str) -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
        .add(("Content-Security-Policy", csp.to_owned()))
}

fn content_security_policy(settings: &Settings) -> String {
    // Chrome applies form-action to the redirect after a POST, so the
    // checkout host must be allowed; a stand-in Stripe (tests) is its API origin.
    let mut checkout_hosts = "https://checkout.stripe.com".to_owned();
    let api = &settings.stripe.api_base;
    if api.host_str() != Some("api.stripe.com") {
        checkout_hosts.push(' ');
        checkout_hosts.push_str(api.origin().ascii_serialization().as_str());
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         form-action 'self' {checkout_hosts}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
}

/// The session cookie (CSRF tokens) is signed with SESSION_KEY; without one,
/// a random key per process (sessions then do not survive restarts or span
/// instances: set SESSION_KEY when running several).
fn session_key(pages: &PagesSettings) -> Key {
    match &pages.session_key {
        Some(secret) => Key::derive_from(secret.expose_secret().as_bytes()),
        None => Key::generate(),
    }
}

pub async fn connect_and_migrate(settings: &DatabaseSettings) -> anyhow::Result<Store> {
    let store = Store::connect(settings)
        .await
        .context("could not connect to the database (check DATABASE_URL)")?;
    store
        .migrate()
        .await
        .context("could not apply database migrations")?;
    Ok(store)
}

/// The verifier of Clerk's deliveries, when a secret is configured (the
/// secrets were checked when the configuration was read).
fn clerk_webhooks(auth: &AuthSettings) -> anyhow::Result<Option<SvixVerifier>> {
    if auth.clerk_webhook_secrets.is_empty() {
        return Ok(None);
    }
    Ok(Some(SvixVerifier::new(&auth.clerk_webhook_secrets)?))
}

/// What each HTTP worker does as it starts, on SQLite with `READS_PIN`:
/// it takes a core and opens read connections of its own from it
/// (`store::worker_reads`), so their threads share that core.
#[derive(Clone)]
struct WorkerStart {
    /// Each worker's share of `DATABASE_MAX_CONNECTIONS`, two at least: one
    /// statement may wait on another's.
    connections: u32,
    /// Leave the writers' core (`cores::writers`) to them (`INGEST_PIN`).
    spare_writers: bool,
    started: Arc<AtomicUsize>,
}

impl WorkerStart {
    fn new(database: &DatabaseSettings, store: &Store, workers: usize) -> Option<Self> {
        if !(database.reads_pinned && store.is_sqlite()) {
            return None;
        }
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        Some(Self {
            connections: (database.max_connections / workers).max(2),
            spare_writers: database.ingest_pinned,
            started: Arc::default(),
        })
    }

    fn run(&self, store: &Store) {
        self.hold_to_core(self.started.fetch_add(1, Ordering::Relaxed));
        store.read_from_this_thread(self.connections);
    }

    /// Holds the `index`th worker to one core, the workers taking the cores
    /// in turn; one whose turn is the writers' core runs on any instead.
    fn hold_to_core(&self, index: usize) {
        let cores = cores::available();
        let turn = cores.get(index % cores.len().max(1)).copied();
        if self.spare_writers && cores.len() > 1 && turn == cores::writers() {
            return;
        }
        cores::hold(&format!("HTTP worker {index}"), turn);
    }
}
