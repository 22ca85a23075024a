//! SQLite reads on connections of an HTTP worker's own. sqlx runs each
//! SQLite connection on a thread of its own, and every statement is a
//! hand-off to that thread and back. A thread starts held to the cores its
//! creator is held to, so connections opened from a worker held to one core
//! run on that core, and each hand-off stays on it instead of waking a
//! thread on the other core. The uncached Plans page over 1,000
//! organizations served 1.26–1.63× the pages a second (`docs/benchmarks.md`);
//! own connections without the core gave less, the core without them
//! nothing.
//!
//! Everything not on such a worker (background jobs, the metrics listener)
//! reads through the shared pool.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

use super::{Pool, Store};

/// Every worker's read connections, each pool by a number of its own: what
/// the metrics count and `close` closes.
#[derive(Debug, Default)]
pub(crate) struct WorkerReads {
    pools: Mutex<Vec<(u64, SqlitePool)>>,
    numbered: AtomicU64,
}

/// A thread's own connections. When the thread ends (a worker actix
/// replaced, say), they leave the registry, and with their last handle
/// gone they close.
struct Here {
    owner: Weak<WorkerReads>,
    number: u64,
    pool: SqlitePool,
}

impl Drop for Here {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.lock().retain(|(number, _)| *number != self.number);
        }
    }
}

thread_local! {
    static HERE: RefCell<Option<Here>> = const { RefCell::new(None) };
}

impl WorkerReads {
    /// The calling thread's own connections for this store, if it has some.
    pub(crate) fn here(self: &Arc<Self>) -> Option<SqlitePool> {
        HERE.with(|here| match &*here.borrow() {
            Some(here) if Weak::as_ptr(&here.owner) == Arc::as_ptr(self) => Some(here.pool.clone()),
            _ => None,
        })
    }

    /// Gives the calling thread up to `connections` of its own, opened with
    /// `shared`'s options from this thread when it first reads.
    fn open_here(self: &Arc<Self>, shared: &SqlitePool, connections: u32) {
        let pool = SqlitePoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(shared.options().get_acquire_timeout())
            .connect_lazy_with((*shared.connect_options()).clone());
        let number = self.numbered.fetch_add(1, Ordering::Relaxed);
        self.lock().push((number, pool.clone()));
        let here = Here {
            owner: Arc::downgrade(self),
            number,
            pool,
        };
        HERE.with(|slot| *slot.borrow_mut() = Some(here));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, SqlitePool)>> {
        self.pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn pools(&self) -> Vec<SqlitePool> {
        self.lock().iter().map(|(_, pool)| pool.clone()).collect()
    }

    /// Connections open, and of them idle, over every worker.
    pub(crate) fn sizes(&self) -> (u32, usize) {
        self.pools().iter().fold((0, 0), |(open, idle), pool| {
            (open + pool.size(), idle + pool.num_idle())
        })
    }

    pub(crate) async fn close(&self) {
        for pool in self.pools() {
            pool.close().await;
        }
    }
}

impl Store {
    /// On SQLite, gives the calling thread (an HTTP worker, held to one
    /// core) up to `connections` read connections of its own: every read it
    /// makes goes through them. Nothing on PostgreSQL, whose connections
    /// are sockets with no thread.
    pub fn read_from_this_thread(&self, connections: u32) {
        if let Pool::Sqlite { reads, workers, .. } = &self.pool {
            workers.open_here(reads, connections);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{DatabaseSettings, Env};
    use crate::store::{Pool, Store};

    async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}", dir.path().join("reads.db").display());
        let env = Env::from_pairs([("DATABASE_URL", url.as_str())]);
        let store = Store::connect(&DatabaseSettings::from_env(&env).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Runs `work` to its end on a thread of its own, with a runtime of its
    /// own, as an HTTP worker runs; the thread then ends.
    fn on_another_thread<F, W>(work: W) -> F::Output
    where
        W: FnOnce() -> F + Send + 'static,
        F: std::future::Future,
        F::Output: Send + 'static,
    {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(work())
        })
        .join()
        .unwrap()
    }

    fn worker_connections(store: &Store) -> u32 {
        match &store.pool {
            Pool::Sqlite { workers, .. } => workers.sizes().0,
            Pool::Postgres { .. } => unreachable!("a SQLite store"),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_thread_given_connections_reads_through_them_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let elsewhere = store.clone();
        on_another_thread(move || async move { elsewhere.linked_customers().await.unwrap() });
        assert_eq!(worker_connections(&store), 0);

        store.read_from_this_thread(2);
        assert_eq!(worker_connections(&store), 0, "opened as it first reads");
        store.linked_customers().await.unwrap();
        assert_eq!(worker_connections(&store), 1);

        let other_dir = tempfile::tempdir().unwrap();
        let other = sqlite_store(&other_dir).await;
        other.linked_customers().await.unwrap();
        assert_eq!(worker_connections(&other), 0, "another store's thread");
        store.close().await;
        other.close().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_thread_that_ends_takes_its_connections_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        let worker = store.clone();
        on_another_thread(move || async move {
            worker.read_from_this_thread(2);
            worker.linked_customers().await.unwrap();
            // Back in the pool, idle, before the thread ends.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert_eq!(worker_connections(&worker), 1);
        });
        assert_eq!(worker_connections(&store), 0);
        store.close().await;
    }
}
