//! Where the writers run: webhook ingest's, the debits' and the usage
//! intake's. By default on a thread of their own, held to one core beside
//! their connections, and woken without preempting them.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use crate::cores;
use crate::store::Store;

/// The writers' runtime and the store they write through.
#[derive(Clone)]
pub struct Writers {
    runtime: Handle,
    store: Store,
    tasks: TaskTracker,
}

impl Writers {
    /// With `pinned`, on a thread of their own
    /// (`on_a_thread_of_their_own`), writing through `connections`
    /// PostgreSQL connections opened there; otherwise on the current
    /// runtime, through `store`'s.
    pub async fn start(store: Store, connections: usize, pinned: bool) -> std::io::Result<Self> {
        if pinned {
            on_a_thread_of_their_own(store, connections).await
        } else {
            Ok(Self {
                runtime: Handle::current(),
                store,
                tasks: TaskTracker::new(),
            })
        }
    }

    /// The store the writers write through.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs a writer; a writer ends when its queue's last sender is dropped.
    pub fn spawn(&self, writer: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn_on(writer, &self.runtime);
    }

    /// Says every writer has been spawned: the writers' thread ends, and
    /// closes the connections it opened, once they have all ended.
    pub fn all_spawned(&self) {
        self.tasks.close();
    }
}

/// Runs the writers on a thread of their own, held to one core, writing
/// through connections opened from it (`Store::open_writes_here`). sqlx runs
/// each SQLite connection on a thread of its own, which a writer meets at
/// every statement (each a hand-off both ways); on two cores, each hand-off
/// wakes the other core, which on a virtual machine costs about 0.1 ms. A
/// thread starts on its creator's cores, so the reopened connection's
/// thread shares the writers' core, and the hand-offs stay on it: 1.25x the
/// ingest rate on SQLite, 1.28x the debits (docs/benchmarks.md). A
/// PostgreSQL connection's socket wakes the runtime it was opened on:
/// opened here, its answers wake the writers' thread itself instead of the
/// main runtime's (1.11-1.30x ingest on PostgreSQL). The rest of the server
/// keeps every core.
async fn on_a_thread_of_their_own(store: Store, connections: usize) -> std::io::Result<Writers> {
    let (started, ready) = oneshot::channel();
    std::thread::Builder::new()
        .name("writers".to_owned())
        .spawn(move || {
            cores::hold("the writers", cores::writers());
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = started.send(Err(err));
                    return;
                }
            };
            runtime.block_on(async move {
                let connections = u32::try_from(connections).unwrap_or(u32::MAX);
                let own = match store.open_writes_here(connections).await {
                    Ok(own) => Some(own),
                    Err(err) => {
                        // The store's own connections serve: slower, not wrong.
                        log::warn!("could not open write connections beside the writers: {err}");
                        None
                    }
                };
                // After the connections open: the thread each SQLite
                // connection starts keeps the usual policy.
                wake_without_preempting();
                let writers = Writers {
                    runtime: Handle::current(),
                    store: own.clone().unwrap_or(store),
                    tasks: TaskTracker::new(),
                };
                let tasks = writers.tasks.clone();
                if started.send(Ok(writers)).is_err() {
                    return;
                }
                tasks.wait().await;
                if let Some(own) = own {
                    own.close_writes_opened_here().await;
                }
            });
        })?;
    ready
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the writers' thread ended at start")))
}

/// Puts the calling thread under `SCHED_BATCH`, at the usual nice value: a
/// thread under it that is woken does not preempt the one running, and
/// waits for it to block or for the scheduler's tick. sqlx's SQLite
/// connection sends each row a statement returns on its own, and each wakes
/// the writer: on their shared core the woken writer took the core for each
/// row and gave it back at once: about 190 switches a batch of 32 (a batch's
/// statements return about three rows an event). Under this policy the
/// connection sends all its rows first and the writer takes them at once:
/// about 45, and 1.12x the ingest rate on SQLite (docs/benchmarks.md). Only
/// the writer's thread: its connection's thread, under it too,
/// measured no better.
fn wake_without_preempting() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityOsValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    let usual_nice = ThreadPriority::Os(ThreadPriorityOsValue::default());
    match set_thread_priority_and_policy(thread_native_id(), usual_nice, batch) {
        Ok(()) => log::debug!("the writers run under SCHED_BATCH"),
        // Not every platform has the policy: more switches, not wrong.
        Err(err) => log::info!("could not put the writers under SCHED_BATCH: {err:?}"),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// The cores the calling thread may run on (`Cpus_allowed_list`).
    fn allowed_cores() -> Option<String> {
        let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
        let cores = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
        Some(cores.trim().to_owned())
    }

    /// The calling thread's scheduling policy: field 41 of `stat`, counted
    /// after the name's closing parenthesis (0 SCHED_OTHER, 3 SCHED_BATCH).
    fn policy() -> Option<String> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        let (_, fields) = stat.rsplit_once(')')?;
        fields.split_whitespace().nth(38).map(str::to_owned)
    }

    #[tokio::test]
    async fn writers_run_on_their_thread_which_ends_once_they_all_have() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("writers.db").display());
        let env = crate::config::Env::from_pairs([("DATABASE_URL", url.as_str())]);
        let settings = crate::config::DatabaseSettings::from_env(&env).unwrap();
        let store = Store::connect(&settings).await.unwrap();
        let writers = Writers::start(store, 1, true).await.unwrap();
        let (finish, finished) = oneshot::channel::<()>();
        let (ran, ran_on) = oneshot::channel();
        writers.spawn(async move {
            let _ = finished.await;
            let _ = ran.send(std::thread::current().name().map(str::to_owned));
        });
        writers.all_spawned();
        finish.send(()).unwrap();
        assert_eq!(ran_on.await.unwrap().as_deref(), Some("writers"));
        // Once its runtime is gone, whatever is spawned on it is dropped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while writers.runtime.spawn(async {}).await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread still runs"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn the_writer_holds_one_core_which_the_threads_it_starts_share() {
        std::thread::spawn(|| {
            cores::hold("the writers", cores::writers());
            let writer = allowed_cores().unwrap();
            assert!(!writer.contains([',', '-']), "writer on {writer}");
            let connection = std::thread::spawn(allowed_cores).join().unwrap();
            assert_eq!(connection, Some(writer));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_writer_is_woken_without_preempting_its_connection() {
        std::thread::spawn(|| {
            let (ask, asked) = mpsc::channel::<()>();
            let connection = std::thread::spawn(move || {
                asked.recv().unwrap();
                policy()
            });
            wake_without_preempting();
            assert_eq!(policy().unwrap(), "3", "the writer is under SCHED_BATCH");
            ask.send(()).unwrap();
            let connection = connection.join().unwrap();
            assert_eq!(connection.as_deref(), Some("0"), "its connection is not");
        })
        .join()
        .unwrap();
    }
}
