//! Debit requests by idempotency key: the same key answers the same result,
//! and a debit is written to the ledger only if the balance covers it.

use super::{StoreError, Tx, with_tx};
use crate::domain::unix_now;

/// What a debit request finds under its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebitStart {
    /// The key is new: the debit is to be decided in this transaction.
    New,
    /// The key answered before; the stored answer, to be sent again.
    Answered(String),
    /// The key was first sent with another request.
    KeyReused,
}

/// A debit written to the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct DebitRecord<'a> {
    pub org_id: &'a str,
    pub id: &'a str,
    pub amount: i64,
    pub reason: &'a str,
    pub metadata: &'a str,
    pub created_at: i64,
}

impl Tx {
    /// Claims `key` for a debit request of `hash`, or finds what it
    /// answered. A request of the same key in flight elsewhere holds the key
    /// until it commits; this waits for it, then finds its answer.
    pub async fn start_debit(
        &mut self,
        org: &str,
        key: &str,
        hash: &str,
    ) -> Result<DebitStart, StoreError> {
        let claimed: Option<String> = with_tx!(self, |conn| {
            sqlx::query_scalar(
                "INSERT INTO credit_debit_requests \
                 (org_id, idempotency_key, request_hash, status, response, created_at) \
                 VALUES ($1, $2, $3, 0, '', $4) \
                 ON CONFLICT (org_id, idempotency_key) DO NOTHING RETURNING org_id",
            )
            .bind(org)
            .bind(key)
            .bind(hash)
            .bind(unix_now())
            .fetch_optional(conn)
            .await?
        });
        if claimed.is_some() {
            return Ok(DebitStart::New);
        }
        let (stored_hash, response): (String, String) = with_tx!(self, |conn| {
            sqlx::query_as(
                "SELECT request_hash, response FROM credit_debit_requests \
                 WHERE org_id = $1 AND idempotency_key = $2",
            )
            .bind(org)
            .bind(key)
            .fetch_one(conn)
            .await?
        });
        Ok(if stored_hash == hash {
            DebitStart::Answered(response)
        } else {
            DebitStart::KeyReused
        })
    }

    /// Takes the debit from the balance and records it in the ledger if the
    /// balance covers it; the balance after, or `None` (nothing written).
    pub async fn debit_credits(
        &mut self,
        debit: &DebitRecord<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let Some(balance) = self
            .take_from_balance(debit.org_id, debit.amount, debit.created_at)
            .await?
        else {
            return Ok(None);
        };
        self.insert_entry(
            "debit",
            debit.id,
            debit.org_id,
            -debit.amount,
            debit.created_at,
            (Some(debit.reason), None, Some(debit.metadata)),
        )
        .await?;
        Ok(Some(balance))
    }

    /// Stores the answer to a debit request, for its key's repeats.
    pub async fn answer_debit(
        &mut self,
        org: &str,
        key: &str,
        status: u16,
        response: &str,
    ) -> Result<(), StoreError> {
        with_tx!(self, |conn| {
            sqlx::query(
                "UPDATE credit_debit_requests SET status = $3, response = $4 \
                 WHERE org_id = $1 AND idempotency_key = $2",
            )
            .bind(org)
            .bind(key)
            .bind(i32::from(status))
            .bind(response)
            .execute(conn)
            .await?;
        });
        Ok(())
    }
}
