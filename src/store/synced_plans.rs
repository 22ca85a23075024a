//! Each customer's synced Plans parts kept as one document (`synced_plans`):
//! cleared by every transaction that changes them, before it commits, and
//! built again off the request path once the customer settles, by the
//! instance whose commit cleared it. A page reads a kept document only in
//! the snapshot where it is current; otherwise it reads the parts from the
//! rows (`plans_document/`).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use super::sets::{InsertRows, ListQuery, Values};
use super::tx::TxConn;
use super::{Store, StoreError, Tx, with_pool, with_tx};

/// Moves each listed customer's version on and clears its document; a
/// customer seen for the first time gets a row, to build. In the order of
/// the ids, so two transactions lock the rows they share in the same order.
static CLEAR: LazyLock<ListQuery> = LazyLock::new(|| {
    ListQuery::new(
        "INSERT INTO synced_plans (customer_id, version, document) \
         SELECT id, 1, NULL FROM {listed} WHERE TRUE ORDER BY id \
         ON CONFLICT (customer_id) DO UPDATE \
         SET version = synced_plans.version + 1, document = NULL",
    )
});

/// The same for every customer: a product or feature many show changed, or
/// a card left a customer this transaction does not know.
const CLEAR_ALL_SQLITE: &str = "UPDATE synced_plans SET version = version + 1, document = NULL";
const CLEAR_ALL_POSTGRES: &str = "UPDATE synced_plans SET version = version + 1, document = NULL \
     WHERE customer_id IN (SELECT customer_id FROM synced_plans ORDER BY customer_id FOR UPDATE)";

/// Keeps each built document where its customer's version is still the
/// one it was built at: a change committed since has cleared it again.
static KEEP: LazyLock<InsertRows> = LazyLock::new(|| {
    InsertRows::new(
        "synced_plans",
        &["customer_id", "version", "document"],
        "ON CONFLICT (customer_id) DO UPDATE SET document = excluded.document \
         WHERE synced_plans.version = excluded.version RETURNING customer_id",
    )
});

/// A customer's synced Plans parts, read at `version`, to keep.
#[derive(Debug)]
pub struct BuiltPlans {
    pub(super) customer: String,
    pub(super) version: i64,
    pub(super) document: String,
}

impl Tx {
    /// Clears the kept documents of the customers this transaction changed
    /// (all of them, when it changed something many show). Run by `commit`.
    pub(super) async fn clear_synced_plans(&mut self) -> Result<(), StoreError> {
        if self.changed.everything {
            let text = match self.conn {
                TxConn::Sqlite(_) => CLEAR_ALL_SQLITE,
                TxConn::Postgres(_) => CLEAR_ALL_POSTGRES,
            };
            with_tx!(self, |conn| {
                sqlx::query(text).execute(conn).await?;
            });
            return Ok(());
        }
        let mut customers = self.changed.customers.clone();
        customers.sort_unstable();
        customers.dedup();
        let ids: Vec<&str> = customers.iter().map(String::as_str).collect();
        self.execute_listed(&CLEAR, &ids, None).await?;
        Ok(())
    }
}

impl Store {
    /// Builds and keeps the documents of up to `limit` customers whose
    /// documents this instance's commits cleared and who have had no change
    /// for `settle`. Returns how many it kept.
    pub async fn build_synced_plans(
        &self,
        settle: Duration,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let built = self.build_settled(settle, limit).await;
        if built.is_err() {
            // What was taken is still cleared: look for it in the table.
            self.look_for_synced_plans_to_build();
        }
        built
    }

    async fn build_settled(&self, settle: Duration, limit: usize) -> Result<usize, StoreError> {
        if self.plans_to_build.take_look_in_table() {
            let cleared = self.cleared_synced_plans().await?;
            let long_ago = Instant::now()
                .checked_sub(settle)
                .unwrap_or_else(Instant::now);
            self.plans_to_build.found(cleared, long_ago);
        }
        let mut built = Vec::new();
        for customer in self.plans_to_build.take_settled(settle, limit) {
            built.extend(self.build_synced_plans_of(&customer).await?);
        }
        self.keep_synced_plans(built).await
    }

    /// Builds every document to build, those found in the table included,
    /// a few hundred at a time: for a command that writes and then exits,
    /// whose clearings no server hears of. Returns how many it kept.
    pub async fn build_every_synced_plans(&self) -> Result<usize, StoreError> {
        const AT_A_TIME: usize = 500;
        let mut kept = 0;
        loop {
            kept += self.build_synced_plans(Duration::ZERO, AT_A_TIME).await?;
            if self.synced_plans_to_build() == 0 {
                return Ok(kept);
            }
        }
    }

    /// Has the next build look in the table for every document to build, as
    /// at start: those whose builds failed, or another instance's commits
    /// cleared and it stopped before building.
    pub fn look_for_synced_plans_to_build(&self) {
        self.plans_to_build.look_in_table();
    }

    /// How many customers' documents wait to be built here.
    pub fn synced_plans_to_build(&self) -> usize {
        self.plans_to_build.len()
    }

    /// Every customer whose document is to build.
    async fn cleared_synced_plans(&self) -> Result<Vec<String>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT customer_id FROM synced_plans WHERE document IS NULL")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Keeps each built document whose customer has not changed since it
    /// was read; returns how many it kept.
    pub async fn keep_synced_plans(&self, mut built: Vec<BuiltPlans>) -> Result<usize, StoreError> {
        // In the order of the ids, as a transaction clearing them locks them.
        built.sort_unstable_by(|a, b| a.customer.cmp(&b.customer));
        let (mut ids, mut versions, mut documents) = (Vec::new(), Vec::new(), Vec::new());
        for plans in built {
            ids.push(Some(plans.customer));
            versions.push(Some(plans.version));
            documents.push(Some(plans.document));
        }
        let kept = self
            .insert_rows_alone(
                &KEEP,
                vec![
                    Values::Text(ids),
                    Values::Int(versions),
                    Values::Text(documents),
                ],
            )
            .await?;
        Ok(kept.len())
    }
}
