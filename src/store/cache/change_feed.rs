//! Keeps the Plans caches of several instances sharing one PostgreSQL
//! database in step: each instance announces what its commits changed with
//! `NOTIFY`, and drops what the others announce.
//!
//! Announcements go out just after the commit, gathered while the previous
//! one is being sent, so a burst of webhooks costs a few of them. They are
//! lost while a listener is disconnected (and if an instance dies between a
//! commit and its announcement): a listener that reconnects clears its whole
//! cache, and the cache's time to live bounds whatever else goes unheard.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Changed;
use crate::store::StoreCaches;
use crate::store::{Pool, Store, StoreError};

/// PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;

#[derive(Serialize, Deserialize)]
struct Announcement {
    from: String,
    #[serde(flatten)]
    changed: Changed,
}

/// The channel of this database and schema: instances on other schemas of
/// the same database share nothing with us.
pub(crate) async fn channel(pool: &PgPool) -> Result<String, StoreError> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(pool)
        .await?;
    let mut channel = format!("lance_plans.{schema}");
    // Identifiers longer than 63 bytes are truncated by the server.
    while channel.len() > 63 {
        channel.pop();
    }
    Ok(channel)
}

/// Starts the task that announces this instance's changes; returns its queue.
pub(crate) fn spawn_announcer(
    pool: PgPool,
    channel: String,
    instance: String,
) -> mpsc::UnboundedSender<Changed> {
    let (queue, mut changes) = mpsc::unbounded_channel::<Changed>();
    tokio::spawn(async move {
        while let Some(mut changed) = changes.recv().await {
            while let Ok(more) = changes.try_recv() {
                changed.merge(more);
            }
            let payload = payload(&instance, changed);
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&channel)
                .bind(payload)
                .execute(&pool)
                .await;
            if let Err(err) = sent {
                log::warn!("could not announce a billing change to other instances: {err}");
            }
        }
    });
    queue
}

fn payload(instance: &str, changed: Changed) -> String {
    let encode = |changed| {
        serde_json::to_string(&Announcement {
            from: instance.to_owned(),
            changed,
        })
        // Cannot fail for strings; an empty payload would make listeners
        // clear their caches, which is safe.
        .unwrap_or_default()
    };
    let text = encode(changed.deduplicated());
    if text.len() <= MAX_PAYLOAD {
        return text;
    }
    let mut everything = Changed::default();
    everything.everything();
    encode(everything)
}

impl Store {
    /// Follows the other instances' announcements until `stop` (PostgreSQL
    /// only; SQLite has a single instance). Fails if the first connection
    /// cannot be made.
    pub async fn follow_other_instances(
        &self,
        stop: CancellationToken,
    ) -> Result<Option<JoinHandle<()>>, StoreError> {
        let (Pool::Postgres { reads: pool, .. }, Some(feed)) = (&self.pool, &self.feed) else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(&feed.channel).await?;
        let caches = self.caches.clone();
        let instance = feed.instance.clone();
        let pool = pool.clone();
        Ok(Some(tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = follow(listener, &pool, caches, instance) => {}
            }
        })))
    }
}

/// Until the pool is closed: a closed pool means the service is stopping.
async fn follow(
    mut listener: PgListener,
    pool: &PgPool,
    caches: Arc<StoreCaches>,
    instance: String,
) {
    while !pool.is_closed() {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                match serde_json::from_str::<Announcement>(notification.payload()) {
                    Ok(news) if news.from == instance => {}
                    Ok(news) => caches.apply(&news.changed),
                    Err(err) => {
                        log::warn!("unreadable change announcement ({err}); clearing the cache");
                        caches.clear();
                    }
                }
            }
            // Reconnecting: whatever was announced meanwhile is lost.
            Ok(None) => {
                log::warn!("lost the change feed's connection; clearing the Plans cache");
                caches.clear();
            }
            Err(_) if pool.is_closed() => return,
            Err(err) => {
                log::warn!("the change feed failed ({err}); retrying in 1 s");
                caches.clear();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_oversized_ones_say_everything() {
        let mut changed = Changed::default();
        changed.customer("cus_1");
        changed.customer("cus_1");
        changed.org("org_1");
        let text = payload("me", changed);
        let news: Announcement = serde_json::from_str(&text).unwrap();
        assert_eq!(news.from, "me");
        assert_eq!(news.changed.customers, ["cus_1"]);
        assert_eq!(news.changed.orgs, ["org_1"]);
        assert!(!news.changed.everything);

        let mut many = Changed::default();
        for i in 0..1_000 {
            many.customer(&format!("cus_{i:020}"));
        }
        let text = payload("me", many);
        assert!(text.len() <= MAX_PAYLOAD);
        let news: Announcement = serde_json::from_str(&text).unwrap();
        assert!(news.changed.everything && news.changed.customers.is_empty());
    }
}
