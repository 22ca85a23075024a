//! The audit log of portal and checkout sessions. Writes are queued and
//! committed in batches off the request path, so recording every portal
//! visit does not cost a disk sync per click.

use tokio::sync::mpsc;

use super::{Store, StoreError, with_tx};
use crate::domain::unix_now;

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
        tokio::spawn(async move {
            while let Some(first) = entries.recv().await {
                let mut batch = vec![first];
                while batch.len() < 256 {
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
    /// Inserts `entries` (each with its time) in one transaction.
    pub async fn record_audits(&self, entries: &[(AuditEntry, i64)]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for (entry, at) in entries {
            with_tx!(&mut tx, |conn| {
                sqlx::query(
                    "INSERT INTO billing_audit (id, org_id, user_id, action, stripe_session_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&entry.org_id)
                .bind(&entry.user_id)
                .bind(entry.action)
                .bind(&entry.stripe_session_id)
                .bind(*at)
                .execute(conn)
                .await?;
            });
        }
        tx.commit().await
    }
}
