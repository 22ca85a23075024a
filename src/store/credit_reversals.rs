//! Purchases undone: what Stripe said was refunded, lost in a dispute or
//! credited back, kept until it is settled against the purchase it undoes.

use std::sync::LazyLock;

use super::sets::ListQuery;
use super::{StoreError, Tx, with_tx};

/// A refund, a lost dispute or a credit note: `part` of `whole` undone.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Reversal {
    /// The charge, dispute or credit note.
    pub id: String,
    /// `refund`, `dispute_lost` or `credit_note`.
    pub kind: String,
    pub payment_intent: Option<String>,
    pub invoice: Option<String>,
    pub part: i64,
    /// 0 for a credit note: its invoice's total.
    pub whole: i64,
}

/// A purchase that granted credits, as a reversal finds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PaidGrant {
    pub source_type: String,
    pub source_id: String,
    pub org_id: Option<String>,
    pub customer_id: Option<String>,
    pub amount: i64,
}

impl PaidGrant {
    /// How a clawback names it: `<type>:<id>`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.source_type, self.source_id)
    }
}

impl Tx {
    /// Keeps `reversals`; a refund seen again keeps the most refunded.
    pub async fn record_reversals(&mut self, reversals: &[Reversal]) -> Result<(), StoreError> {
        for r in reversals {
            with_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO credit_reversals \
                     (id, kind, payment_intent, invoice, part, whole, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET \
                     part = CASE WHEN excluded.part > credit_reversals.part \
                       THEN excluded.part ELSE credit_reversals.part END",
                )
                .bind(&r.id)
                .bind(&r.kind)
                .bind(&r.payment_intent)
                .bind(&r.invoice)
                .bind(r.part)
                .bind(r.whole)
                .bind(crate::domain::unix_now())
                .execute(conn)
                .await?;
            });
        }
        Ok(())
    }

    /// The reversals of any of these payments or invoices.
    pub async fn reversals_of(
        &mut self,
        payment_intents: &[&str],
        invoices: &[&str],
    ) -> Result<Vec<Reversal>, StoreError> {
        static BY_PAYMENT: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new(
                "SELECT id, kind, payment_intent, invoice, part, whole FROM credit_reversals \
                 WHERE payment_intent {in_ids} ORDER BY id",
            )
        });
        static BY_INVOICE: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new(
                "SELECT id, kind, payment_intent, invoice, part, whole FROM credit_reversals \
                 WHERE invoice {in_ids} ORDER BY id",
            )
        });
        let mut found: Vec<Reversal> = Vec::new();
        if !payment_intents.is_empty() {
            found.extend(self.fetch_listed(&BY_PAYMENT, payment_intents).await?);
        }
        if !invoices.is_empty() {
            found.extend(self.fetch_listed(&BY_INVOICE, invoices).await?);
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.dedup();
        Ok(found)
    }

    /// The purchase paid by `payment_intent`, or the invoice `invoice`.
    pub async fn grant_paid_by(
        &mut self,
        payment_intent: Option<&str>,
        invoice: Option<&str>,
    ) -> Result<Option<PaidGrant>, StoreError> {
        Ok(with_tx!(self, |conn| {
            sqlx::query_as(
                "SELECT source_type, source_id, org_id, customer_id, amount FROM credit_ledger \
                 WHERE source_type IN ('checkout_session', 'invoice') AND (payment_intent = $1 \
                   OR (source_type = 'invoice' AND source_id = $2)) \
                 ORDER BY created_at, source_id LIMIT 1",
            )
            .bind(payment_intent)
            .bind(invoice)
            .fetch_optional(conn)
            .await?
        }))
    }

    /// An invoice's total, when it is synced.
    pub async fn invoice_total(&mut self, invoice: &str) -> Result<Option<i64>, StoreError> {
        Ok(with_tx!(self, |conn| {
            sqlx::query_scalar("SELECT total FROM invoices WHERE id = $1")
                .bind(invoice)
                .fetch_optional(conn)
                .await?
        }))
    }

    /// What clawbacks took from `grant` so far: in all, and by the sources
    /// whose id starts with `source_prefix`.
    pub async fn clawed_from(
        &mut self,
        grant: &PaidGrant,
        source_prefix: &str,
    ) -> Result<(i64, i64), StoreError> {
        Ok(with_tx!(self, |conn| {
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(-amount), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN SUBSTR(source_id, 1, LENGTH($2)) = $2 \
                   THEN -amount ELSE 0 END), 0) AS BIGINT) \
                 FROM credit_ledger WHERE source_type = 'clawback' AND grant_ref = $1",
            )
            .bind(grant.reference())
            .bind(source_prefix)
            .fetch_one(conn)
            .await?
        }))
    }
}
