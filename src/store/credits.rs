//! The credits wallet: the ledger (one row a movement, keyed by what caused
//! it, so it happens once) and each organization's balance kept beside it in
//! the same transaction; its reads, adjustments and clawbacks.

use super::credit_reversals::PaidGrant;
use super::{Store, StoreError, Tx, with_pool, with_tx};
use crate::domain::unix_now;

/// One row of an organization's ledger.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Deserialize)]
pub struct CreditEntry {
    /// What caused it: `checkout_session`, `invoice`, `debit`, `adjustment`,
    /// `clawback`.
    pub kind: String,
    /// The cause's id (a checkout session, an invoice, a debit's id).
    pub source_id: String,
    pub amount: i64,
    pub reason: Option<String>,
    /// A debit's metadata, a JSON object.
    pub metadata: Option<String>,
    /// Who made an adjustment.
    pub actor: Option<String>,
    pub created_at: i64,
}

impl CreditEntry {
    /// The entry's id in the API: `<kind>:<source id>`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.kind, self.source_id)
    }
}

/// `$1`'s balance at `$2`, less what its expired lots still hold.
pub(super) const AVAILABLE_BALANCE: &str = "SELECT CAST(\
     COALESCE((SELECT balance FROM credit_balances WHERE org_id = $1), 0) \
     - COALESCE((SELECT SUM(remaining) FROM credit_lots \
       WHERE org_id = $1 AND remaining > 0 AND expires_at <= $2), 0) AS BIGINT)";

/// Adds to an organization's balance, creating it.
const ADD_TO_BALANCE: &str = "INSERT INTO credit_balances (org_id, balance, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (org_id) DO UPDATE \
     SET balance = credit_balances.balance + excluded.balance, updated_at = excluded.updated_at \
     RETURNING balance";

const INSERT_ENTRY: &str = "INSERT INTO credit_ledger \
     (source_type, source_id, org_id, customer_id, amount, created_at, reason, actor, metadata) \
     VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8)";

impl Store {
    /// An organization's balance: 0 before its first grant; credits that
    /// have expired are not in it, written off yet or not.
    pub async fn credit_balance(&self, org_id: &str) -> Result<i64, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar(AVAILABLE_BALANCE)
                .bind(org_id)
                .bind(unix_now())
                .fetch_one(pool)
                .await?
        }))
    }

    /// Up to `limit` of an organization's ledger entries, newest first,
    /// after the entry `starting_after` (`<kind>:<source id>`); `None` when
    /// that is not one of its entries.
    pub async fn credit_entries(
        &self,
        org_id: &str,
        starting_after: Option<&str>,
        limit: i64,
    ) -> Result<Option<Vec<CreditEntry>>, StoreError> {
        let cursor = match starting_after {
            None => (i64::MAX, String::new(), String::new()),
            Some(id) => {
                let Some((kind, source)) = id.split_once(':') else {
                    return Ok(None);
                };
                match self.credit_entry_created(org_id, kind, source).await? {
                    Some(created) => (created, kind.to_owned(), source.to_owned()),
                    None => return Ok(None),
                }
            }
        };
        // No entry is as new as `i64::MAX`: the first page's cursor.
        let (created, kind, source) = cursor;
        Ok(Some(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT source_type AS kind, source_id, amount, reason, metadata, actor, \
                 created_at FROM credit_ledger WHERE org_id = $1 \
                 AND (created_at, source_type, source_id) < ($2, $3, $4) \
                 ORDER BY created_at DESC, source_type DESC, source_id DESC LIMIT CAST($5 AS BIGINT)",
            )
            .bind(org_id)
            .bind(created)
            .bind(&kind)
            .bind(&source)
            .bind(limit)
            .fetch_all(pool)
            .await?
        })))
    }

    async fn credit_entry_created(
        &self,
        org_id: &str,
        kind: &str,
        source: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT created_at FROM credit_ledger \
                 WHERE org_id = $1 AND source_type = $2 AND source_id = $3",
            )
            .bind(org_id)
            .bind(kind)
            .bind(source)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Every organization's balance and the sum of its ledger, where they
    /// differ (none should): for checks and tests.
    pub async fn credit_mismatches(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT b.org_id, b.balance, CAST(COALESCE(SUM(l.amount), 0) AS BIGINT) AS total \
                 FROM credit_balances b LEFT JOIN credit_ledger l ON l.org_id = b.org_id \
                 GROUP BY b.org_id, b.balance HAVING b.balance <> COALESCE(SUM(l.amount), 0)",
            )
            .fetch_all(pool)
            .await?
        }))
    }
}

impl Tx {
    /// Adds `amount` (either sign) to an organization's balance, creating
    /// it; the balance after, as the ledger has it (expired lots not yet
    /// written off still in it).
    pub(super) async fn add_to_balance(
        &mut self,
        org: &str,
        amount: i64,
        now: i64,
    ) -> Result<i64, StoreError> {
        let balance = with_tx!(self, |conn| {
            sqlx::query_scalar(ADD_TO_BALANCE)
                .bind(org)
                .bind(amount)
                .bind(now)
                .fetch_one(conn)
                .await?
        });
        self.changed.org(org);
        Ok(balance)
    }

    /// The balance as this transaction sees it, expired credits left out.
    pub async fn credit_balance(&mut self, org: &str) -> Result<i64, StoreError> {
        Ok(with_tx!(self, |conn| {
            sqlx::query_scalar(AVAILABLE_BALANCE)
                .bind(org)
                .bind(unix_now())
                .fetch_one(conn)
                .await?
        }))
    }

    /// An operator's adjustment of `amount` (either sign) with its reason;
    /// the balance after, or `None` when it would fall below zero (nothing
    /// written). A positive one is a grant: a lot, when credits expire.
    pub async fn adjust_credits(
        &mut self,
        org: &str,
        amount: i64,
        reason: &str,
        actor: &str,
    ) -> Result<Option<i64>, StoreError> {
        let now = unix_now();
        let id = uuid::Uuid::now_v7().to_string();
        if amount < 0 {
            // Written first: on PostgreSQL it locks the balance, so the
            // check below cannot race another debit.
            self.add_to_balance(org, 0, now).await?;
            if self.credit_balance(org).await? < -amount {
                return Ok(None);
            }
            self.add_to_balance(org, amount, now).await?;
            self.take_from_lots(org, -amount, now, None).await?;
        } else {
            let balance = self.add_to_balance(org, amount, now).await?;
            self.add_lots(org, &[("adjustment", &id, amount, now)], balance)
                .await?;
        }
        self.insert_entry(
            "adjustment",
            &id,
            org,
            amount,
            now,
            (Some(reason), Some(actor), None),
        )
        .await?;
        Ok(Some(self.credit_balance(org).await?))
    }

    /// Takes `amount` back from the purchase `grant` for `source_id` (a
    /// refund, a dispute, a credit note), once; the balance may go below
    /// zero. Whether it was taken now.
    pub async fn record_clawback(
        &mut self,
        grant: &PaidGrant,
        source_id: &str,
        amount: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let now = unix_now();
        let taken: Option<String> = with_tx!(self, |conn| {
            sqlx::query_scalar(
                "INSERT INTO credit_ledger (source_type, source_id, org_id, customer_id, amount, \
                 created_at, reason, grant_ref) VALUES ('clawback', $1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (source_type, source_id) DO NOTHING RETURNING source_id",
            )
            .bind(source_id)
            .bind(&grant.org_id)
            .bind(&grant.customer_id)
            .bind(-amount)
            .bind(now)
            .bind(reason)
            .bind(grant.reference())
            .fetch_optional(conn)
            .await?
        });
        if taken.is_none() {
            return Ok(false);
        }
        if let Some(org) = &grant.org_id {
            self.add_to_balance(org, -amount, now).await?;
            self.take_from_lots(org, amount, now, Some(&grant.reference()))
                .await?;
        }
        if let Some(customer) = &grant.customer_id {
            self.changed.customer(customer);
        }
        Ok(true)
    }

    /// One ledger row; `(reason, actor, metadata)`.
    pub(super) async fn insert_entry(
        &mut self,
        kind: &str,
        source_id: &str,
        org: &str,
        amount: i64,
        created_at: i64,
        (reason, actor, metadata): (Option<&str>, Option<&str>, Option<&str>),
    ) -> Result<(), StoreError> {
        with_tx!(self, |conn| {
            sqlx::query(INSERT_ENTRY)
                .bind(kind)
                .bind(source_id)
                .bind(org)
                .bind(amount)
                .bind(created_at)
                .bind(reason)
                .bind(actor)
                .bind(metadata)
                .execute(conn)
                .await?;
        });
        Ok(())
    }
}
