//! The database: a pool on either backend, migrations, and the connection
//! options each backend needs.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::cache::{self, Caches, OrgCache};
use super::plans_to_build::PlansToBuild;
use super::tx::{BeginWrite, StoreCaches, Tx, TxConn};
use super::worker_reads::WorkerReads;
use super::{ENTITLEMENTS_TTL_SECS, StoreError};
use crate::config::DatabaseSettings;

/// Migrations are embedded in the binary and shared by both backends.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database, and the caches of reads that its writes keep current.
#[derive(Clone, Debug)]
pub struct Store {
    pub(super) pool: Pool,
    pub(super) caches: Arc<StoreCaches>,
    /// Organizations with a customer, briefly, for the portal's hot path.
    pub(super) orgs: Arc<OrgCache>,
    /// Customers whose kept Plans documents this instance is to build.
    pub(super) plans_to_build: Arc<PlansToBuild>,
    /// PostgreSQL: how this instance hears of the others' changes.
    pub(super) feed: Option<Feed>,
    /// Statements run inside write transactions, since start: what explains
    /// a write path's cost (the ingest benchmark reports it per event).
    statements: Arc<AtomicU64>,
    /// Seconds a grant lasts, when credits expire (`credit_lots`).
    credit_lifetime: Option<i64>,
}

#[derive(Clone, Debug)]
pub(super) struct Feed {
    pub(super) channel: String,
    /// Tells our own announcements apart from the others'.
    pub(super) instance: String,
}

#[derive(Clone, Debug)]
pub(super) enum Pool {
    /// Reads share a pool; write transactions take the one connection of
    /// `writes`. SQLite allows one writer at a time anyway, and a connection
    /// drops its page cache whenever another one has committed since its last
    /// transaction: with writers taking turns on pooled connections, every
    /// batch began by reading back the pages the previous one had written.
    /// One write connection keeps them cached, and writers queue in the pool
    /// (in order) instead of sleeping in SQLite's busy handler.
    /// `workers` holds the HTTP workers' own read connections
    /// (`worker_reads.rs`), which their reads take instead of `reads`.
    Sqlite {
        reads: SqlitePool,
        writes: SqlitePool,
        workers: Arc<WorkerReads>,
    },
    /// `writes` is `reads` until the writers open connections of their
    /// own from their thread (`open_writes_here`).
    Postgres { reads: PgPool, writes: PgPool },
}

/// Runs the same block against whichever pool the store holds. The block is
/// expanded once per backend, so it is type-checked against both.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::pool::Pool::Sqlite { reads, workers, .. } => {
                let here = workers.here();
                let $pool = here.as_ref().unwrap_or(reads);
                $body
            }
            $crate::store::pool::Pool::Postgres { reads: $pool, .. } => $body,
        }
    };
}
pub(crate) use with_pool;

/// PostgreSQL's default `random_page_cost` (4) prices an index probe for a
/// spinning disk. This service's tables are small and hot, and with it a
/// batch's lookups of a few ids in tables of thousands of rows were planned
/// as sequential scans: 1.3 ms against 0.3 ms for reading the links a batch
/// decides on, 1.2 ms against 0.1 ms for finding the items of its
/// subscriptions (2,000 organizations, `EXPLAIN ANALYZE`). 1.1 is the usual
/// value for SSDs and cached data; `options` in DATABASE_URL overrides it
/// (`?options[random_page_cost]=4`).
const RANDOM_PAGE_COST: &str = "1.1";

/// A pooled PostgreSQL connection idle for longer than this is pinged before
/// it serves again; one used more recently is not. sqlx pings every
/// connection given back, so one back in the pool answered a moment ago; a
/// ping at every lending too made a read of one statement three round trips
/// (the uncached Plans page: median 1.12× the pages a second without it,
/// `docs/benchmarks.md`). A connection the server dropped during a quiet
/// spell (a restart, a proxy's idle timeout) is still found out and
/// replaced before a request meets it.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// What the writers' own PostgreSQL connections are called in
/// `pg_stat_activity`.
const WRITERS_APPLICATION_NAME: &str = "lance-billing writers";

/// How much of a SQLite database each connection reads through a memory
/// map instead of `read` calls into its own 2 MB page cache. A page read
/// then costs no system call and no copy, and the pages are the OS page
/// cache's, shared by every connection. With 1,000 organizations (a 116 MB
/// database) the uncached Plans page served 1.3× the pages (6,591–6,900
/// against 4,850–5,403 a second, in pairs). A larger database reads its
/// tail as before.
const SQLITE_MMAP_BYTES: &str = "268435456";

/// Where SQLite keeps its temporary files, statement journals among them.
/// A statement inside a transaction that may change many rows (a batch's
/// multi-row upserts) journals the pages it changes, so that a failure
/// undoes that statement alone; past 64 KiB SQLite spills the journal to a
/// file it creates, writes and deletes in `/var/tmp`, once per statement.
/// A debit batch of about 30 wrote nearly as many pages there as to the
/// WAL. In memory: 1.07× the debits and 1.13× the webhook ingest.
const SQLITE_TEMP_STORE: &str = "memory";

/// How long a SQLite write waits for the one before it.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Pings a connection before it serves only when it idled past
/// `PING_AFTER_IDLE`.
fn ping_after_idle(options: PgPoolOptions) -> PgPoolOptions {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

fn with_planner_costs(options: PgConnectOptions) -> PgConnectOptions {
    let set_by_url = options
        .get_options()
        .is_some_and(|o| o.contains("random_page_cost"));
    if set_by_url {
        options
    } else {
        options.options([("random_page_cost", RANDOM_PAGE_COST)])
    }
}

impl Store {
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let url = settings.url.expose_secret();
        let acquire_timeout = Duration::from_secs(5);
        if settings.is_postgres() {
            let options = with_planner_costs(PgConnectOptions::from_str(url)?);
            let pool = ping_after_idle(PgPoolOptions::new())
                .max_connections(settings.max_connections)
                .acquire_timeout(acquire_timeout)
                .connect_with(options)
                .await?;
            let feed = Feed {
                channel: cache::change_feed::channel(&pool).await?,
                instance: uuid::Uuid::new_v4().to_string(),
            };
            let store = Self::new(
                Pool::Postgres {
                    reads: pool.clone(),
                    writes: pool.clone(),
                },
                settings,
                Some(feed.clone()),
            );
            store
                .caches
                .announce_to(cache::change_feed::spawn_announcer(
                    pool,
                    feed.channel,
                    feed.instance,
                ));
            Ok(store)
        } else {
            // WAL lets readers proceed during a write; the busy timeout makes
            // concurrent writers wait for the lock instead of failing. The
            // default synchronous=FULL is kept: a commit is on disk when we answer.
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .pragma("mmap_size", SQLITE_MMAP_BYTES)
                .pragma("temp_store", SQLITE_TEMP_STORE)
                .foreign_keys(true);
            let reads = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(acquire_timeout)
                .connect_with(options.clone())
                .await?;
            // Waiting for the write connection replaces waiting for the write
            // lock, so it gets the busy timeout's patience. The connection is
            // kept for good (no idle timeout, no lifetime): the writers'
            // thread reopens it beside itself (`open_writes_here`), and
            // nothing should reopen it elsewhere.
            let writes = SqlitePoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(SQLITE_BUSY_TIMEOUT)
                .connect_with(options.thread_name(|id| format!("sqlite-writes-{id}")))
                .await?;
            let pool = Pool::Sqlite {
                reads,
                writes,
                workers: Arc::default(),
            };
            Ok(Self::new(pool, settings, None))
        }
    }

    fn new(pool: Pool, settings: &DatabaseSettings, feed: Option<Feed>) -> Self {
        Self {
            pool,
            caches: Arc::new(Caches::new(
                settings.plans_cache_ttl,
                Duration::from_secs(ENTITLEMENTS_TTL_SECS),
            )),
            orgs: Arc::default(),
            plans_to_build: Arc::default(),
            feed,
            statements: Arc::default(),
            credit_lifetime: settings
                .credits_expire_after
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        }
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let conn = match &self.pool {
            Pool::Sqlite { writes, .. } => TxConn::Sqlite(writes.begin_write().await?),
            Pool::Postgres { writes, .. } => TxConn::Postgres(writes.begin_write().await?),
        };
        Ok(Tx {
            conn,
            changed: Default::default(),
            caches: self.caches.clone(),
            plans_to_build: self.plans_to_build.clone(),
            statements: self.statements.clone(),
            credit_lifetime: self.credit_lifetime,
        })
    }

    /// Opens the write connections again from the calling thread, for the
    /// writers running there (`billing::writers`): SQLite's one write
    /// connection is reopened, so the thread sqlx runs it on starts on this
    /// thread's cores (a new thread inherits its creator's); on PostgreSQL,
    /// the returned store writes through `connections` connections of its
    /// own, opened here, so their sockets wake this thread's runtime.
    pub async fn open_writes_here(&self, connections: u32) -> Result<Store, StoreError> {
        let mut store = self.clone();
        match &mut store.pool {
            Pool::Sqlite { writes, .. } => {
                writes.acquire().await?.close().await?;
                drop(writes.acquire().await?);
            }
            Pool::Postgres { reads, writes } => {
                *writes = ping_after_idle(PgPoolOptions::new())
                    .max_connections(connections.max(1))
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(reads.options().get_acquire_timeout())
                    .connect_with(
                        (*reads.connect_options())
                            .clone()
                            .application_name(WRITERS_APPLICATION_NAME),
                    )
                    .await?;
            }
        }
        Ok(store)
    }

    /// Closes the PostgreSQL connections a store from `open_writes_here`
    /// opened. SQLite's one write connection is every writer's, and `close`
    /// closes it.
    pub async fn close_writes_opened_here(&self) {
        if let Pool::Postgres { writes, .. } = &self.pool {
            writes.close().await;
        }
    }

    /// How many statements writes have run since start.
    pub fn write_statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub(super) fn count_write_statement(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| MIGRATOR.run(pool).await?);
        if let Pool::Postgres { reads: pool, .. } = &self.pool {
            compress_payloads_with_lz4(pool).await;
        }
        Ok(())
    }

    /// How many of the embedded migrations the database has not applied.
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let applied: Vec<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(pool)
                .await
                .unwrap_or_default()
        });
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }

    /// Used by `/readyz`: a round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite { .. } => "sqlite",
            Pool::Postgres { .. } => "postgres",
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.pool, Pool::Sqlite { .. })
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite {
                reads,
                writes,
                workers,
            } => {
                workers.close().await;
                writes.close().await;
                reads.close().await;
            }
            // This store writes through its reads' pool.
            Pool::Postgres { reads, .. } => reads.close().await,
        }
    }
}

/// Event payloads are a few KiB of JSON that PostgreSQL compresses on the
/// way in; lz4 (PostgreSQL 14 and later, when built with it) takes about
/// half the CPU of the default pglz, and ingest pays it for every event. A
/// setting of the column, so not a migration (SQLite has no such thing);
/// done once, and skipped where the server cannot. Stored rows keep theirs.
async fn compress_payloads_with_lz4(pool: &PgPool) {
    let current: Result<String, sqlx::Error> = sqlx::query_scalar(
        "SELECT attcompression::text FROM pg_attribute \
         WHERE attrelid = 'stripe_events'::regclass AND attname = 'payload'",
    )
    .fetch_one(pool)
    .await;
    if matches!(current.as_deref(), Ok("l")) {
        return;
    }
    let altered = match current {
        Ok(_) => sqlx::query("ALTER TABLE stripe_events ALTER COLUMN payload SET COMPRESSION lz4")
            .execute(pool)
            .await
            .map(|_| ()),
        Err(err) => Err(err),
    };
    if let Err(err) = altered {
        log::info!("event payloads keep PostgreSQL's default compression (no lz4 here: {err})");
    }
}

/// True when the error is a unique-constraint violation (same on both backends).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_keeps_statement_journals_in_memory_on_every_connection() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("temp.db").display());
        let env = crate::config::Env::from_pairs([("DATABASE_URL", url.as_str())]);
        let store = Store::connect(&DatabaseSettings::from_env(&env).unwrap())
            .await
            .unwrap();
        let Pool::Sqlite { reads, writes, .. } = &store.pool else {
            unreachable!("a sqlite:// URL")
        };
        for pool in [reads, writes] {
            let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(temp_store, 2, "MEMORY");
        }
    }

    #[test]
    fn planner_costs_are_for_cached_data_unless_the_url_sets_them() {
        let plain = PgConnectOptions::from_str("postgres://u@localhost/db").unwrap();
        assert_eq!(
            with_planner_costs(plain).get_options(),
            Some("-c random_page_cost=1.1")
        );
        let own = PgConnectOptions::from_str(
            "postgres://u@localhost/db?options=-c%20random_page_cost%3D4",
        )
        .unwrap();
        assert_eq!(
            with_planner_costs(own).get_options(),
            Some("-c random_page_cost=4")
        );
        let bracketed =
            PgConnectOptions::from_str("postgres://u@localhost/db?options[random_page_cost]=4")
                .unwrap();
        assert_eq!(
            with_planner_costs(bracketed).get_options(),
            Some("-c random_page_cost=4")
        );
    }
}
