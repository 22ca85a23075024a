//! Background jobs that must run on one instance at a time. On PostgreSQL a
//! session advisory lock, held on a connection of its own for the job's
//! length, makes the others skip; SQLite serves one instance, so it always
//! gets the lock.

use sqlx::pool::PoolConnection;

use super::{Pool, Store, StoreError};

/// Held while a job runs; `release` it when done.
pub struct JobLock {
    held: Option<(PoolConnection<sqlx::Postgres>, i64)>,
}

impl Store {
    /// The lock of job `name`, or `None` when another instance holds it.
    pub async fn try_lock_job(&self, name: &str) -> Result<Option<JobLock>, StoreError> {
        let Pool::Postgres { reads: pool, .. } = &self.pool else {
            return Ok(Some(JobLock { held: None }));
        };
        let key = job_key(name);
        let mut conn = pool.acquire().await?;
        // Never handed back to the pool: if the job dies before releasing,
        // closing the connection frees the lock.
        conn.close_on_drop();
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(locked.then_some(JobLock {
            held: Some((conn, key)),
        }))
    }
}

impl JobLock {
    pub async fn release(self) {
        if let Some((mut conn, key)) = self.held {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .execute(&mut *conn)
                .await;
            if let Err(err) = unlocked {
                log::warn!("could not release a job lock ({err}); closing its connection frees it");
            }
        }
    }
}

/// A stable 64-bit key per job name (FNV-1a), the same on every instance.
fn job_key(name: &str) -> i64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_keys_are_stable_and_distinct() {
        assert_eq!(job_key("events-catch-up"), job_key("events-catch-up"));
        assert_ne!(job_key("events-catch-up"), job_key("snapshot"));
    }
}
