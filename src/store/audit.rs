//! The audit log of portal and checkout sessions. Writes are queued and
//! committed off the request path, gathered for up to `BATCH_WINDOW` into one
//! statement, so recording every portal visit costs a few commits a second
//! rather than a disk sync per click.

use std::time::Duration;

use tokio::sync::mpsc;

use super::{Store, StoreError, with_tx};
use crate::domain::unix_now;

/// How long the writer gathers entries, and how many rows go in one
/// statement (6 binds each, well inside both backends' limits). Nothing reads
/// an entry sooner: the portal flag it feeds matters only once the user is
/// back from Stripe. Measured under the portal benchmark: SQLite prefers few
/// commits (each syncs the disk), PostgreSQL prefers small statements.
fn batching(store: &Store) -> (Duration, usize) {
    if store.is_sqlite() {
        (Duration::from_millis(20), 1000)
    } else {
        (Duration::from_millis(5), 100)
    }
}

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
    pub fn spawn(store: Store) -> Self {
        let (queue, mut entries) = mpsc::channel::<(AuditEntry, i64)>(10_000);
        let (window, max_batch) = batching(&store);
        tokio::spawn(async move {
            while let Some(first) = entries.recv().await {
                tokio::time::sleep(window).await;
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match entries.try_recv() {
                        Ok(entry) => batch.push(entry),
                        Err(_) => break,
                    }
                }
                if let Err(err) = store.record_audits(&batch).await {
                    log::error!("could not record {} audit entries: {err}", batch.len());
                }
            }
        });
        Self { queue }
    }

    pub async fn record(&self, entry: AuditEntry) {
        if self.queue.send((entry, unix_now())).await.is_err() {
            log::error!("the audit log is closed");
        }
    }
}

impl Store {
    /// Inserts `entries` (each with its time) as one multi-row statement.
    pub async fn record_audits(&self, entries: &[(AuditEntry, i64)]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        with_tx!(&mut tx, |conn| {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO billing_audit (id, org_id, user_id, action, stripe_session_id, created_at) ",
            );
            insert.push_values(entries, |mut row, (entry, at)| {
                row.push_bind(uuid::Uuid::new_v4().to_string())
                    .push_bind(entry.org_id.clone())
                    .push_bind(entry.user_id.clone())
                    .push_bind(entry.action)
                    .push_bind(entry.stripe_session_id.clone())
                    .push_bind(*at);
            });
            // Each batch size is a different statement: do not cache them.
            insert.build().persistent(false).execute(conn).await?;
        });
        // A portal visit flags the organization's Plans tab for a refresh.
        for (entry, _) in entries {
            tx.changed.org(&entry.org_id);
        }
        tx.commit().await
    }
}
