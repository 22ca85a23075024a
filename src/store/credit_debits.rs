//! Debit requests by idempotency key, a batch at a time: a statement reads
//! and locks the batch's balances, one reads the answers stored under its keys,
//! and one round trip writes its ledger rows, balances and answers,
//! whatever the batch's size.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use super::sets::{Column, InsertRows, ListQuery, Values, repeated};
use super::{StoreError, Tx, TxConn};
use crate::domain::unix_now;

/// A debit request's key, and the hash of the request it was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitKey<'a> {
    pub org_id: &'a str,
    pub key: &'a str,
    pub hash: &'a str,
}

impl DebitKey<'_> {
    /// `org:key`, as the read of stored keys returns it (organization ids hold no `:`).
    pub fn joined(&self) -> String {
        format!("{}:{}", self.org_id, self.key)
    }
}

/// A debit written to the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct DebitRecord<'a> {
    pub org_id: &'a str,
    pub id: String,
    pub amount: i64,
    pub reason: &'a str,
    pub metadata: String,
    pub created_at: i64,
}

/// The answer to a debit request, kept under its key.
#[derive(Debug, Clone, PartialEq)]
pub struct DebitAnswerRow<'a> {
    pub key: DebitKey<'a>,
    pub status: u16,
    pub response: String,
}

impl Tx {
    /// What each of `keys` that is stored was first sent with and
    /// answered: `DebitKey::joined` to `(hash, response)`. Called once the
    /// batch's balances are locked (`lock_balances`): every request of a
    /// key is decided under its organization's balance row, so a key
    /// another transaction is deciding (here or on another instance) is
    /// found stored once that transaction commits, and no key is held by
    /// a row of its own written twice. An organization with no balance row
    /// has nothing to lock; two transactions deciding one of its keys at
    /// once both refuse it, and the later one's `write_debits` fails on the
    /// key's uniqueness instead of answering twice.
    pub async fn stored_debit_answers(
        &mut self,
        keys: &[DebitKey<'_>],
    ) -> Result<HashMap<String, (String, String)>, StoreError> {
        const POSTGRES: &str = "SELECT r.org_id || ':' || r.idempotency_key, r.request_hash, \
             r.response FROM unnest($1::text[], $2::text[]) AS b(org_id, idempotency_key) \
             JOIN credit_debit_requests r \
             ON r.org_id = b.org_id AND r.idempotency_key = b.idempotency_key";
        // The keys as one JSON array of `[org, key]` pairs, as `ListQuery`
        // lists ids: one text whatever the batch's size, and each pair one
        // probe of the primary key (a row value `IN` a list would scan the
        // whole index).
        const SQLITE: &str = "SELECT r.org_id || ':' || r.idempotency_key, r.request_hash, \
             r.response FROM json_each($1) b \
             JOIN credit_debit_requests r ON r.org_id = json_extract(b.value, '$[0]') \
             AND r.idempotency_key = json_extract(b.value, '$[1]')";
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        self.count_statement();
        let stored: Vec<(String, String, String)> = match &mut self.conn {
            TxConn::Sqlite(conn) => {
                let pairs: Vec<[&str; 2]> = keys.iter().map(|k| [k.org_id, k.key]).collect();
                let pairs = serde_json::to_string(&pairs)
                    .map_err(|e| StoreError::Corrupt(format!("debit keys as JSON: {e}")))?;
                sqlx::query_as(SQLITE)
                    .bind(pairs)
                    .fetch_all(&mut **conn)
                    .await?
            }
            TxConn::Postgres(conn) => {
                let orgs: Vec<&str> = keys.iter().map(|k| k.org_id).collect();
                let names: Vec<&str> = keys.iter().map(|k| k.key).collect();
                sqlx::query_as(POSTGRES)
                    .bind(orgs)
                    .bind(names)
                    .fetch_all(&mut **conn)
                    .await?
            }
        };
        Ok(stored
            .into_iter()
            .map(|(key, hash, response)| (key, (hash, response)))
            .collect())
    }

    /// The balances of `orgs` that exist, held until the commit (on
    /// PostgreSQL; SQLite's writer holds the whole database), in one order,
    /// so two batches never wait for each other in a circle.
    pub async fn lock_balances(
        &mut self,
        orgs: &[&str],
    ) -> Result<HashMap<String, i64>, StoreError> {
        static SQL: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::locking(
                "SELECT org_id, balance FROM credit_balances WHERE org_id {in_ids} \
                 ORDER BY org_id",
            )
        });
        let found: Vec<(String, i64)> = self.fetch_listed(&SQL, orgs).await?;
        Ok(found.into_iter().collect())
    }

    /// Writes a batch's debits to the ledger, takes them from the balances,
    /// and keeps each request's answer under its key, in one round trip.
    /// Nothing is returned: on SQLite each returned row is a hand-off
    /// between threads.
    pub async fn write_debits(
        &mut self,
        debits: &[DebitRecord<'_>],
        answers: &[DebitAnswerRow<'_>],
    ) -> Result<(), StoreError> {
        static LEDGER: LazyLock<InsertRows> = LazyLock::new(|| {
            InsertRows::new(
                "credit_ledger",
                &[
                    "source_type",
                    "source_id",
                    "org_id",
                    "amount",
                    "created_at",
                    "reason",
                    "metadata",
                ],
                "",
            )
        });
        static BALANCES: LazyLock<InsertRows> = LazyLock::new(|| {
            InsertRows::new(
                "credit_balances",
                &["org_id", "balance", "updated_at"],
                "ON CONFLICT (org_id) DO UPDATE \
                 SET balance = credit_balances.balance + excluded.balance, \
                 updated_at = excluded.updated_at",
            )
        });
        static ANSWERS: LazyLock<InsertRows> =
            LazyLock::new(|| InsertRows::new("credit_debit_requests", &ANSWER_COLUMNS, ""));
        let mut inserts = Vec::with_capacity(3);
        if !debits.is_empty() {
            let ledger = vec![
                repeated("debit".to_owned(), debits.len()),
                Column::column(debits.iter().map(|d| &d.id)),
                Values::Text(debits.iter().map(|d| Some(d.org_id.to_owned())).collect()),
                Values::Int(debits.iter().map(|d| Some(-d.amount)).collect()),
                Column::column(debits.iter().map(|d| &d.created_at)),
                Values::Text(debits.iter().map(|d| Some(d.reason.to_owned())).collect()),
                Column::column(debits.iter().map(|d| &d.metadata)),
            ];
            inserts.push((&*LEDGER, ledger));
            // One row an organization: a statement may not write a row twice.
            let mut taken: BTreeMap<&str, i64> = BTreeMap::new();
            for debit in debits {
                *taken.entry(debit.org_id).or_default() -= debit.amount;
            }
            let balances = vec![
                Values::Text(taken.keys().map(|o| Some((*o).to_owned())).collect()),
                Values::Int(taken.values().map(|v| Some(*v)).collect()),
                repeated(unix_now(), taken.len()),
            ];
            inserts.push((&*BALANCES, balances));
            for org in taken.keys() {
                self.changed.org(org);
            }
        }
        // In one order: two transactions writing two keys of organizations
        // with no balance row never wait for each other in a circle.
        let mut rows: Vec<&DebitAnswerRow<'_>> = answers.iter().collect();
        rows.sort_unstable_by(|a, b| (a.key.org_id, a.key.key).cmp(&(b.key.org_id, b.key.key)));
        inserts.push((&*ANSWERS, answer_columns(&rows)));
        self.insert_all(inserts).await?;
        Ok(())
    }
}

const ANSWER_COLUMNS: [&str; 6] = [
    "org_id",
    "idempotency_key",
    "request_hash",
    "status",
    "response",
    "created_at",
];

/// The columns of `ANSWER_COLUMNS` for `rows`.
fn answer_columns(rows: &[&DebitAnswerRow<'_>]) -> Vec<Values> {
    vec![
        Values::Text(rows.iter().map(|r| Some(r.key.org_id.to_owned())).collect()),
        Values::Text(rows.iter().map(|r| Some(r.key.key.to_owned())).collect()),
        Values::Text(rows.iter().map(|r| Some(r.key.hash.to_owned())).collect()),
        Values::Int(rows.iter().map(|r| Some(i64::from(r.status))).collect()),
        Values::Text(rows.iter().map(|r| Some(r.response.clone())).collect()),
        repeated(unix_now(), rows.len()),
    ]
}
