//! All SQL lives here. The service runs on SQLite (zero set-up) or PostgreSQL
//! (several instances); each query is written once in portable SQL (`$1`
//! placeholders, `ON CONFLICT`, `RETURNING`) and compiled for both backends by
//! `with_pool!`, so both keep their native types and connection options.

mod audit;
mod events;
mod org_cache;
mod organizations;
mod pages;
mod state;
mod sync;

pub use audit::{AuditEntry, AuditLog};
pub use events::{EventRecord, RecordOutcome, StoredEvent};
pub use org_cache::OrgCache;
pub use organizations::{LinkError, LinkOutcome, Organization};
pub use pages::{AdminFilter, AdminOrgRow, CatalogPrice, LedgerEntry, PaymentMethodRowView};
pub use state::{BillingState, InvoiceView, PaymentMethodView, SubscriptionView};
pub use sync::{
    CreditGrant, CustomerRow, InvoiceRow, PaymentMethodRow, PriceRow, ProductRow,
    SubscriptionItemRow, SubscriptionRow, SyncedRow, SyncedTable, Version,
};

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::config::DatabaseSettings;

/// Migrations are embedded in the binary and shared by both backends.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
}

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same block against whichever pool the store holds. The block is
/// expanded once per backend, so it is type-checked against both.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// A write transaction on either backend. Store functions that must commit
/// together take `&mut Tx`, so sync rules stay backend-agnostic.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Like `with_pool!`, for the connection inside a `Tx`.
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::store::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
pub(crate) use with_tx;

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Opens a write transaction. SQLite's plain `BEGIN` defers the write lock, and
/// upgrading it later fails with SQLITE_BUSY under concurrency instead of
/// waiting; `BEGIN IMMEDIATE` takes the lock up front and honours busy_timeout.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

impl Store {
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let url = settings.url.expose_secret();
        let acquire_timeout = Duration::from_secs(5);
        if settings.is_postgres() {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(acquire_timeout)
                .connect_with(options)
                .await?;
            Ok(Self::Postgres(pool))
        } else {
            // WAL lets readers proceed during a write; the busy timeout makes
            // concurrent writers wait for the lock instead of failing. The
            // default synchronous=FULL is kept: a commit is on disk when we answer.
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(acquire_timeout)
                .connect_with(options)
                .await?;
            Ok(Self::Sqlite(pool))
        }
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin_write().await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin_write().await?),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| MIGRATOR.run(pool).await?);
        Ok(())
    }

    /// Used by `/readyz`: a round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await);
    }
}

/// True when the error is a unique-constraint violation (same on both backends).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
