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
use std::sync::{Arc, Mutex};

use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

use super::{Pool, Store};

/// Every worker's read connections: what the metrics count and `close`
/// closes.
#[derive(Debug, Default)]
pub(crate) struct WorkerReads {
    pools: Mutex<Vec<SqlitePool>>,
}

thread_local! {
    /// This thread's read connections, and the `WorkerReads` they belong to.
    static HERE: RefCell<Option<(usize, SqlitePool)>> = const { RefCell::new(None) };
}

impl WorkerReads {
    /// The calling thread's own connections for this store, if it has some.
    pub(crate) fn here(self: &Arc<Self>) -> Option<SqlitePool> {
        let id = Arc::as_ptr(self) as usize;
        HERE.with(|here| match &*here.borrow() {
            Some((owner, pool)) if *owner == id => Some(pool.clone()),
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
        self.pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(pool.clone());
        let id = Arc::as_ptr(self) as usize;
        HERE.with(|here| *here.borrow_mut() = Some((id, pool)));
    }

    fn pools(&self) -> Vec<SqlitePool> {
        self.pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
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
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(elsewhere.linked_customers())
        })
        .join()
        .unwrap()
        .unwrap();
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
}
