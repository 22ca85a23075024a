//! Organizations whose per-seat quantity waits to be set in Stripe (see
//! `billing::seats`), and the reads the seats need: members counted and
//! the subscription that pays for them.

use super::{Store, StoreError, Tx, with_pool, with_tx};

/// A due update, claimed for a while (`LEASE_MS`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SeatSync {
    pub org_id: String,
    pub burst: String,
    pub generation: i64,
    pub attempts: i32,
}

/// The subscription an organization's seats are paid by: its newest live one.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SeatSubscription {
    pub id: String,
    pub quantity: Option<i64>,
}

/// An organization whose members and paid seats differ.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SeatsOutOfStep {
    pub org_id: String,
    pub name: Option<String>,
    pub members: i64,
    pub paid: i64,
}

/// How long a claimed update is left to its instance before another may
/// take it (an instance that died mid-update).
const LEASE_MS: i64 = 60_000;

impl Tx {
    /// Schedules `org`'s update at `due_at_ms`, unless one is already due
    /// sooner: later changes of a burst join it.
    pub async fn schedule_seat_sync(
        &mut self,
        org: &str,
        due_at_ms: i64,
    ) -> Result<(), StoreError> {
        with_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO seat_syncs (org_id, burst, generation, due_at_ms) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (org_id) DO UPDATE SET generation = seat_syncs.generation + 1, \
                   due_at_ms = CASE WHEN seat_syncs.due_at_ms < excluded.due_at_ms \
                     THEN seat_syncs.due_at_ms ELSE excluded.due_at_ms END",
            )
            .bind(org)
            .bind(uuid::Uuid::now_v7().simple().to_string())
            .bind(due_at_ms)
            .execute(conn)
            .await?;
        });
        Ok(())
    }
}

impl Store {
    /// Claims up to `limit` updates due at `now_ms`, leasing each.
    pub async fn claim_seat_syncs(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<SeatSync>, StoreError> {
        let mut tx = self.begin().await?;
        let claimed: Vec<SeatSync> = with_tx!(tx, |conn| {
            sqlx::query_as(
                "UPDATE seat_syncs SET due_at_ms = $1 + $2 WHERE org_id IN ( \
                   SELECT org_id FROM seat_syncs WHERE due_at_ms <= $1 \
                   ORDER BY due_at_ms LIMIT CAST($3 AS BIGINT)) \
                 RETURNING org_id, burst, generation, attempts",
            )
            .bind(now_ms)
            .bind(LEASE_MS)
            .bind(limit)
            .fetch_all(conn)
            .await?
        });
        tx.commit().await?;
        Ok(claimed)
    }

    /// The update is done: forgotten, unless a change came meanwhile.
    pub async fn seat_sync_done(&self, sync: &SeatSync) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM seat_syncs WHERE org_id = $1 AND generation = $2")
                .bind(&sync.org_id)
                .bind(sync.generation)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The update failed: tried again at `retry_at_ms`.
    pub async fn seat_sync_failed(
        &self,
        sync: &SeatSync,
        retry_at_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE seat_syncs SET attempts = attempts + 1, due_at_ms = $2, last_error = $3 \
                 WHERE org_id = $1",
            )
            .bind(&sync.org_id)
            .bind(retry_at_ms)
            .bind(error)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Makes `org`'s update due now (an operator's "update now").
    pub async fn seat_sync_now(&self, org: &str, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.schedule_seat_sync(org, now_ms).await?;
        tx.commit().await
    }

    /// The newest active or trialing subscription of `org`'s customer;
    /// none once Clerk deleted the organization (its billing is an
    /// operator's to end).
    pub async fn seat_subscription(
        &self,
        org: &str,
    ) -> Result<Option<SeatSubscription>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.id, s.quantity FROM subscriptions s \
                 JOIN organizations o ON o.stripe_customer_id = s.customer_id \
                 WHERE o.id = $1 AND o.deleted_at IS NULL AND s.status IN ('active', 'trialing') \
                 ORDER BY s.created DESC, s.id DESC LIMIT 1",
            )
            .bind(org)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Organizations with a live subscription whose members (all roles)
    /// and paid quantity differ, by id.
    pub async fn seats_out_of_step(&self, limit: i64) -> Result<Vec<SeatsOutOfStep>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT o.id AS org_id, COALESCE(o.name, o.slug) AS name, \
                   CAST((SELECT COUNT(*) FROM organization_members m \
                     WHERE m.org_id = o.id AND m.deleted = FALSE) AS BIGINT) AS members, \
                   CAST(COALESCE(s.quantity, 1) AS BIGINT) AS paid \
                 FROM organizations o JOIN subscriptions s ON s.customer_id = o.stripe_customer_id \
                 WHERE s.status IN ('active', 'trialing') AND o.deleted_at IS NULL \
                   AND EXISTS (SELECT 1 FROM organization_members m WHERE m.org_id = o.id) \
                   AND COALESCE(s.quantity, 1) <> (SELECT CASE WHEN COUNT(*) < 1 THEN 1 ELSE COUNT(*) END \
                     FROM organization_members m WHERE m.org_id = o.id AND m.deleted = FALSE) \
                 ORDER BY o.id LIMIT CAST($1 AS BIGINT)",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
