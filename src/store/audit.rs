//! The audit log of portal and checkout sessions. Writes are queued and
//! committed off the request path, gathered for up to `BATCH_WINDOW` into one
//! statement, so recording every portal visit costs a few commits a second
//! rather than a disk sync per click. A full queue holds requests back rather
//! than drop an entry.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError, TxConn};
use crate::domain::unix_now;

/// How long the writer gathers entries, and how many rows go in one
/// statement (6 binds each on SQLite, well inside its limit). Nothing reads an
/// entry sooner: the portal flag it feeds matters only once the user is back
/// from Stripe. After a full batch the next goes out at once, so under load
/// batches go out back to back. Measured under the portal benchmark (docs/benchmarks.md):
/// smaller batches cap the writer below the request rate on PostgreSQL, and
/// the full queue then holds requests back.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
const MAX_BATCH: usize = 1000;

pub struct AuditEntry {
    pub org_id: String,
    pub user_id: String,
    pub action: &'static str,
    pub stripe_session_id: Option<String>,
}

#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<(AuditEntry, i64)>,
}

impl AuditLog {
    /// Spawns the writer. After `stop` it writes what is queued and ends, so
    /// a stopping server loses no entry; await the handle for that.
    pub fn spawn(store: Store, stop: CancellationToken) -> (Self, JoinHandle<()>) {
        let (queue, mut entries) = mpsc::channel::<(AuditEntry, i64)>(10_000);
        let writer = tokio::spawn(async move {
            let mut backlogged = false;
            loop {
                let first = tokio::select! {
                    first = entries.recv() => first,
                    () = stop.cancelled() => {
                        drain(&store, &mut entries).await;
                        return;
                    }
                };
                let Some(first) = first else { return };
                // The window is slept through rather than woken into at each
                // entry: under load a wake-up per click cost the request
                // threads more than the writes. A full queue needs no window.
                if !backlogged {
                    tokio::select! {
                        () = tokio::time::sleep(BATCH_WINDOW) => {}
                        () = stop.cancelled() => {}
                    }
                }
                let mut batch = vec![first];
                take_queued(&mut entries, &mut batch);
                backlogged = batch.len() == MAX_BATCH;
                write_with_retries(&store, &batch).await;
            }
        });
        (Self { queue }, writer)
    }

    /// Entries waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    pub async fn record(&self, entry: AuditEntry) {
        if self.queue.send((entry, unix_now())).await.is_err() {
            log::error!("the audit log is closed");
        }
    }
}

/// Everything still queued, in full batches.
async fn drain(store: &Store, entries: &mut mpsc::Receiver<(AuditEntry, i64)>) {
    loop {
        let mut batch = Vec::new();
        take_queued(entries, &mut batch);
        if batch.is_empty() {
            return;
        }
        write_with_retries(store, &batch).await;
    }
}

/// Moves what is queued into `batch`, up to a full batch, without waiting.
fn take_queued(
    entries: &mut mpsc::Receiver<(AuditEntry, i64)>,
    batch: &mut Vec<(AuditEntry, i64)>,
) {
    while batch.len() < MAX_BATCH {
        match entries.try_recv() {
            Ok(entry) => batch.push(entry),
            Err(_) => break,
        }
    }
}

/// A database hiccup must not lose the entries: retry with backoff, and as a
/// last resort put them in the error log.
async fn write_with_retries(store: &Store, batch: &[(AuditEntry, i64)]) {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=5 {
        match store.record_audits(batch).await {
            Ok(()) => return,
            Err(err) if attempt < 5 => {
                log::warn!(
                    "could not record {} audit entries (attempt {attempt}): {err}",
                    batch.len()
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(err) => {
                log::error!("gave up recording {} audit entries: {err}", batch.len());
                for (entry, at) in batch {
                    log::error!(
                        "unrecorded audit entry: {} by {} for {} at {at} ({})",
                        entry.action,
                        entry.user_id,
                        entry.org_id,
                        entry.stripe_session_id.as_deref().unwrap_or("no session")
                    );
                }
            }
        }
    }
}

/// The newest portal visit of each organization among `entries`: one row
/// an organization, as a statement may not write a row twice.
fn newest_portal_visits(entries: &[(AuditEntry, i64)]) -> BTreeMap<&str, i64> {
    let mut visits: BTreeMap<&str, i64> = BTreeMap::new();
    for (entry, at) in entries.iter().filter(|(e, _)| e.action == "portal") {
        let newest = visits.entry(entry.org_id.as_str()).or_insert(*at);
        *newest = (*newest).max(*at);
    }
    visits
}

/// Keeps an organization's newest visit: batches may commit out of order.
const KEEP_NEWEST_VISIT: &str = "ON CONFLICT (org_id) DO UPDATE SET visited_at = excluded.visited_at \
     WHERE excluded.visited_at > portal_visits.visited_at";

/// On PostgreSQL, one prepared statement for every batch size: the entries
/// and the visits as arrays, unnested.
static POSTGRES_RECORD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH audit AS (INSERT INTO billing_audit \
           (id, org_id, user_id, action, stripe_session_id, created_at) \
           SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
           $5::text[], $6::bigint[])) \
         INSERT INTO portal_visits (org_id, visited_at) \
         SELECT * FROM UNNEST($7::text[], $8::bigint[]) {KEEP_NEWEST_VISIT}"
    )
});

impl Store {
    /// Inserts `entries` (each with its time) and moves each organization's
    /// newest portal visit forward, in one round trip. Ids are UUIDv7,
    /// ordered by time, so the primary key grows at its end.
    pub async fn record_audits(&self, entries: &[(AuditEntry, i64)]) -> Result<(), StoreError> {
        let ids: Vec<String> = entries
            .iter()
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let visits = newest_portal_visits(entries);
        let mut tx = self.begin().await?;
        match &mut tx.conn {
            TxConn::Postgres(conn) => {
                sqlx::query(sqlx::AssertSqlSafe(POSTGRES_RECORD.as_str()))
                    .bind(&ids)
                    .bind(
                        entries
                            .iter()
                            .map(|(e, _)| e.org_id.as_str())
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        entries
                            .iter()
                            .map(|(e, _)| e.user_id.as_str())
                            .collect::<Vec<_>>(),
                    )
                    .bind(entries.iter().map(|(e, _)| e.action).collect::<Vec<_>>())
                    .bind(
                        entries
                            .iter()
                            .map(|(e, _)| e.stripe_session_id.as_deref())
                            .collect::<Vec<_>>(),
                    )
                    .bind(entries.iter().map(|(_, at)| *at).collect::<Vec<_>>())
                    .bind(visits.keys().copied().collect::<Vec<_>>())
                    .bind(visits.values().copied().collect::<Vec<_>>())
                    .execute(&mut **conn)
                    .await?;
            }
            // SQLite has no arrays: multi-row VALUES lists, two statements
            // in one query.
            TxConn::Sqlite(conn) => {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO billing_audit (id, org_id, user_id, action, stripe_session_id, created_at) ",
                );
                insert.push_values(entries.iter().zip(&ids), |mut row, ((entry, at), id)| {
                    row.push_bind(id.as_str())
                        .push_bind(entry.org_id.as_str())
                        .push_bind(entry.user_id.as_str())
                        .push_bind(entry.action)
                        .push_bind(entry.stripe_session_id.as_deref())
                        .push_bind(*at);
                });
                if !visits.is_empty() {
                    insert.push(";\nINSERT INTO portal_visits (org_id, visited_at) ");
                    insert.push_values(&visits, |mut row, (org, at)| {
                        row.push_bind(*org).push_bind(*at);
                    });
                    insert.push(" ");
                    insert.push(KEEP_NEWEST_VISIT);
                }
                // Each batch size is a different statement: do not cache them.
                // (`Tx::insert_all` would, and kept prepared texts of up to
                // 1,000 rows: 95 against 56 MiB peak under the portal load.)
                insert
                    .build()
                    .persistent(false)
                    .execute(&mut **conn)
                    .await?;
            }
        }
        // A portal visit flags the organization's Plans tab for a refresh.
        for (entry, _) in entries {
            tx.changed.org(&entry.org_id);
        }
        tx.commit().await
    }
}
