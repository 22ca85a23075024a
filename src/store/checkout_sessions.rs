//! Checkout sessions by the organization they name: those this service
//! created, and completed ones it did not create, flagged for an operator.

use super::{Store, StoreError, Tx, with_pool, with_tx};
use crate::domain::unix_now;

/// A session once: a later record of the same id changes nothing.
const RECORD: &str = "INSERT INTO checkout_sessions \
     (id, org_id, customer_id, created_here, created_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (id) DO NOTHING";

/// A completed session this service did not create that named an organization.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ForeignCheckout {
    pub id: String,
    pub org_id: String,
    pub customer_id: Option<String>,
    pub created_at: i64,
}

/// What is known of a session a return link names, for its organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutReturn {
    /// A refresh applied it already.
    pub answered: bool,
}

impl Store {
    /// The session this service created for `org`, if `session` is one.
    pub async fn checkout_return(
        &self,
        session: &str,
        org: &str,
    ) -> Result<Option<CheckoutReturn>, StoreError> {
        let found: Option<Option<i64>> = with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT answered_at FROM checkout_sessions WHERE id = $1 AND org_id = $2 \
                 AND created_here = TRUE",
            )
            .bind(session)
            .bind(org)
            .fetch_optional(pool)
            .await?
        });
        Ok(found.map(|answered| CheckoutReturn {
            answered: answered.is_some(),
        }))
    }

    /// Remembers that a refresh applied `session`.
    pub async fn mark_checkout_answered(&self, session: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE checkout_sessions SET answered_at = $2 WHERE id = $1")
                .bind(session)
                .bind(unix_now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records a session this service created for `org`, before the browser
    /// is sent to it.
    pub async fn record_checkout_session(
        &self,
        session: &str,
        org: &str,
        customer: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(RECORD)
                .bind(session)
                .bind(org)
                .bind(customer)
                .bind(true)
                .bind(unix_now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The newest flagged sessions, for the operators.
    pub async fn foreign_checkouts(&self, limit: i64) -> Result<Vec<ForeignCheckout>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, org_id, customer_id, created_at FROM checkout_sessions \
                 WHERE created_here = FALSE ORDER BY created_at DESC, id LIMIT CAST($1 AS BIGINT)",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

impl Tx {
    /// Whether this service created `session` for `org`.
    pub async fn checkout_created_here(
        &mut self,
        session: &str,
        org: &str,
    ) -> Result<bool, StoreError> {
        let found: Option<String> = with_tx!(self, |conn| {
            sqlx::query_scalar(
                "SELECT id FROM checkout_sessions WHERE id = $1 AND org_id = $2 \
                 AND created_here = TRUE",
            )
            .bind(session)
            .bind(org)
            .fetch_optional(conn)
            .await?
        });
        Ok(found.is_some())
    }

    /// Keeps a completed session this service did not create for `org`.
    pub async fn flag_foreign_checkout(
        &mut self,
        session: &str,
        org: &str,
        customer: Option<&str>,
    ) -> Result<(), StoreError> {
        with_tx!(self, |conn| {
            sqlx::query(RECORD)
                .bind(session)
                .bind(org)
                .bind(customer)
                .bind(false)
                .bind(unix_now())
                .execute(conn)
                .await?;
        });
        Ok(())
    }
}
