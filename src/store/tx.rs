//! A write transaction on either backend, and how one begins.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use super::cache::{Caches, Changed};
use super::plans_to_build::PlansToBuild;
use super::{EntitlementFacts, Plans, StoreError};

/// The caches every write invalidates.
pub(super) type StoreCaches = Caches<Plans, EntitlementFacts>;

/// A write transaction on either backend. Store functions that must commit
/// together take `&mut Tx`, so sync rules stay backend-agnostic. Each write
/// notes whose billing state it changed; `commit` clears those customers'
/// kept Plans documents with it, then drops their cached Plans reads and
/// has their documents built again.
pub struct Tx {
    pub(super) conn: TxConn,
    pub(super) changed: Changed,
    pub(super) caches: Arc<StoreCaches>,
    pub(super) plans_to_build: Arc<PlansToBuild>,
    pub(super) statements: Arc<AtomicU64>,
    /// Seconds a grant lasts, when credits expire.
    pub(super) credit_lifetime: Option<i64>,
}

pub(super) enum TxConn {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Like `with_pool!`, for the connection inside a `Tx`. Each use runs one
/// statement, and is counted as one.
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {{
        $tx.count_statement();
        match &mut $tx.conn {
            $crate::store::tx::TxConn::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::store::tx::TxConn::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    }};
}
pub(crate) use with_tx;

impl Tx {
    pub(super) fn count_statement(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.clear_synced_plans().await?;
        match self.conn {
            TxConn::Sqlite(tx) => tx.commit().await?,
            TxConn::Postgres(tx) => tx.commit().await?,
        }
        self.caches.invalidate(&self.changed);
        self.plans_to_build.committed(&self.changed);
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
