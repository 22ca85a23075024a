//! Debits. One never takes a balance below zero; the same idempotency key
//! answers the same result once and for all (also while its first request
//! is in flight, also on another instance); debits that arrive together
//! are written in one transaction, as webhook events are: a commit costs a
//! disk flush, not a debit.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{MAX_DEBIT, MAX_REASON_CHARS};
use crate::billing::batches::Batches;
use crate::billing::writers::Writers;
use crate::domain::{OrgId, unix_now};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::store::{
    DebitAnswerRow, DebitKey, DebitRecord, Store, StoreError, Tx, expired_by_org,
    is_unique_violation, spend_by_org,
};

const MAX_KEY_CHARS: usize = 255;
const MAX_METADATA_BYTES: usize = 4096;
/// Debits written in one transaction at most.
const MAX_BATCH: usize = 256;
/// Debits waiting for the writer at most; callers wait for room.
const QUEUE: usize = 4096;

/// A debit request, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Debit {
    pub org: OrgId,
    pub key: String,
    pub amount: i64,
    pub reason: String,
    pub metadata: Map<String, Value>,
}

/// A debit request's body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DebitRequest {
    /// Credits to take, 1 to 10^12.
    amount: i64,
    /// Why, in 1 to 200 characters.
    reason: String,
    /// Anything of the caller's, kept with the debit (at most 4 KiB of JSON).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
}

impl Debit {
    /// The request of `org` under the `Idempotency-Key` `key`, from its JSON
    /// body; or why it is refused, as a sentence.
    pub fn parse(org: OrgId, key: Option<&str>, body: &[u8]) -> Result<Self, String> {
        let key = key.ok_or("The Idempotency-Key header is required.")?;
        if key.is_empty()
            || key.chars().count() > MAX_KEY_CHARS
            || !key.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(format!(
                "The Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters."
            ));
        }
        let body: DebitRequest =
            serde_json::from_slice(body).map_err(|e| format!("The body is not a debit: {e}."))?;
        if !(1..=MAX_DEBIT).contains(&body.amount) {
            return Err(format!("amount must be between 1 and {MAX_DEBIT}."));
        }
        let reason = body.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(format!(
                "reason must be 1 to {MAX_REASON_CHARS} characters."
            ));
        }
        let metadata = body.metadata.unwrap_or_default();
        if Value::Object(metadata.clone()).to_string().len() > MAX_METADATA_BYTES {
            return Err(format!(
                "metadata must be at most {MAX_METADATA_BYTES} bytes of JSON."
            ));
        }
        Ok(Self {
            org,
            key: key.to_owned(),
            amount: body.amount,
            reason: reason.to_owned(),
            metadata,
        })
    }

    /// What the key is bound to: the request's content, keys in order
    /// (`serde_json`'s maps are sorted), hashed.
    fn fingerprint(&self) -> String {
        let content = serde_json::json!({
            "amount": self.amount,
            "reason": self.reason,
            "metadata": self.metadata,
        });
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, content.to_string().as_bytes());
        hex::encode(digest)
    }
}

/// What a debit request was answered, kept under its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DebitResult {
    Debited {
        balance: i64,
        debit: DebitLine,
    },
    /// The balance did not cover the amount: nothing was taken.
    Insufficient {
        balance: i64,
        amount: i64,
    },
}

impl DebitResult {
    pub fn status(&self) -> u16 {
        match self {
            Self::Debited { .. } => 200,
            Self::Insufficient { .. } => 402,
        }
    }
}

/// A debit as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DebitLine {
    /// `debit:<id>` in the ledger's history.
    pub id: String,
    pub amount: i64,
    pub reason: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DebitAnswer {
    /// Decided now, or before under the same key.
    Result(DebitResult),
    /// The key was first sent with a different request.
    KeyReused,
}

#[derive(Debug, thiserror::Error)]
pub enum DebitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the debit writer has stopped")]
    Closed,
}

/// The debits' queue, and the task that writes them.
#[derive(Clone)]
pub struct Debits {
    queue: Batches<Debit, Result<DebitAnswer, DebitError>>,
}

impl Debits {
    /// Starts the writer among `writers`; it ends when the last
    /// `Debits` is dropped.
    pub fn start(writers: &Writers) -> Self {
        let store = writers.store().clone();
        let queue = Batches::start(
            writers,
            "debits",
            MAX_BATCH,
            QUEUE,
            move |debits: Vec<Debit>| {
                let store = store.clone();
                async move { write_batch(&store, &debits).await }
            },
        );
        Self { queue }
    }

    /// Debits waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue.queued()
    }

    /// Decides `debit` and answers once it is committed.
    pub async fn submit(&self, debit: Debit) -> Result<DebitAnswer, DebitError> {
        self.queue
            .submit(debit)
            .await
            .map_err(|_| DebitError::Closed)?
    }
}

/// A batch in one transaction; if it fails, each debit in one of its own,
/// so a failure refuses only the debit it belongs to.
async fn write_batch(store: &Store, debits: &[Debit]) -> Vec<Result<DebitAnswer, DebitError>> {
    let all: Vec<&Debit> = debits.iter().collect();
    let failed = match in_one_transaction(store, &all).await {
        Ok(answers) => return answers.into_iter().map(Ok).collect(),
        Err(err) => err,
    };
    if debits.len() > 1 {
        log::warn!(
            "a batch of {} debit(s) failed ({failed}); redoing them one by one",
            debits.len()
        );
    } else if !is_key_race(&failed) {
        return vec![Err(DebitError::from(failed))];
    }
    let mut answers = Vec::with_capacity(debits.len());
    for debit in &all {
        answers.push(alone(store, debit).await.map_err(DebitError::from));
    }
    answers
}

/// One debit in a transaction of its own, tried again once if its key
/// raced (`is_key_race`): by then the key is stored, and answers as it did.
async fn alone(store: &Store, debit: &Debit) -> Result<DebitAnswer, StoreError> {
    let answer = match in_one_transaction(store, &[debit]).await {
        Err(err) if is_key_race(&err) => in_one_transaction(store, &[debit]).await,
        answered => answered,
    };
    answer.map(|mut a| a.remove(0))
}

/// Another transaction stored the key while this one decided it: possible
/// only for an organization with no balance row, which has nothing to
/// decide its keys under (`Tx::stored_debit_answers`).
fn is_key_race(err: &StoreError) -> bool {
    matches!(err, StoreError::Database(db) if is_unique_violation(db))
}

async fn in_one_transaction(
    store: &Store,
    debits: &[&Debit],
) -> Result<Vec<DebitAnswer>, StoreError> {
    let mut tx = store.begin().await?;
    let answers = decide_batch(&mut tx, debits).await?;
    tx.commit().await?;
    Ok(answers)
}

/// What each request of a batch gets, in the batch's order.
enum Decision {
    /// Decided, now or before under the key: `Debited` or `Insufficient`.
    Decided(DebitResult),
    KeyReused,
    /// The same key as an earlier request of the batch.
    SameAs(usize),
}

/// Answers a batch: again as before under a key that answered, or now,
/// in order of arrival, each debit taken only if its balance covers it.
async fn decide_batch(tx: &mut Tx, debits: &[&Debit]) -> Result<Vec<DebitAnswer>, StoreError> {
    let hashes: Vec<String> = debits.iter().map(|d| d.fingerprint()).collect();
    let keys: Vec<DebitKey<'_>> = debits
        .iter()
        .zip(&hashes)
        .map(|(d, hash)| DebitKey {
            org_id: d.org.as_str(),
            key: &d.key,
            hash,
        })
        .collect();
    let mut first_of: HashMap<String, usize> = HashMap::new();
    let mut decisions: Vec<Option<Decision>> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| match first_of.entry(key.joined()) {
            Entry::Occupied(first) => Some(Decision::SameAs(*first.get())),
            Entry::Vacant(slot) => {
                slot.insert(i);
                None
            }
        })
        .collect();
    let firsts: Vec<DebitKey<'_>> = first_of.values().map(|i| keys[*i].clone()).collect();
    let mut orgs: Vec<&str> = firsts.iter().map(|k| k.org_id).collect();
    orgs.sort_unstable();
    orgs.dedup();
    // The balances first: a key is decided under its organization's.
    let mut balances = tx.lock_balances(&orgs).await?;
    let stored = tx.stored_debit_answers(&firsts).await?;
    for &i in first_of.values() {
        if let Some((hash, response)) = stored.get(&keys[i].joined()) {
            decisions[i] = Some(answered_before(&keys[i], hash, response)?);
        }
    }
    let now = unix_now();
    // Expired credits are not the balance's, written off yet or not.
    let mut lots = tx.open_lots(&orgs).await?;
    for (org, expired) in expired_by_org(&lots, now) {
        *balances.entry(org.to_owned()).or_default() -= expired;
    }
    let mut records = Vec::new();
    let mut answers = Vec::new();
    for (i, debit) in debits.iter().enumerate() {
        if decisions[i].is_some() {
            continue;
        }
        let balance = balances.entry(keys[i].org_id.to_owned()).or_default();
        let result = if *balance >= debit.amount {
            *balance -= debit.amount;
            let record = record_of(debit, now);
            let result = debited(debit, &record, *balance);
            records.push(record);
            result
        } else {
            DebitResult::Insufficient {
                balance: *balance,
                amount: debit.amount,
            }
        };
        let response = serde_json::to_string(&result)
            .map_err(|e| StoreError::Corrupt(format!("debit answer: {e}")))?;
        answers.push(DebitAnswerRow {
            key: keys[i].clone(),
            status: result.status(),
            response,
        });
        decisions[i] = Some(Decision::Decided(result));
    }
    tx.write_debits(&records, &answers).await?;
    let mut spent: HashMap<&str, i64> = HashMap::new();
    for record in &records {
        *spent.entry(record.org_id).or_default() += record.amount;
    }
    let spent_lots = spend_by_org(&mut lots, &spent, now);
    if !spent_lots.is_empty() {
        tx.save_lots(&spent_lots.iter().collect::<Vec<_>>()).await?;
    }
    let decisions: Vec<Decision> = decisions.into_iter().flatten().collect();
    Ok((0..decisions.len())
        .map(|i| answer_of(&decisions, &hashes, i))
        .collect())
}

/// What a key stored before answered, for a request of `key`'s hash.
fn answered_before(key: &DebitKey<'_>, hash: &str, response: &str) -> Result<Decision, StoreError> {
    if hash != key.hash {
        return Ok(Decision::KeyReused);
    }
    serde_json::from_str(response)
        .map(Decision::Decided)
        .map_err(|e| StoreError::Corrupt(format!("debit answer under a key: {e}")))
}

/// The answer of request `i`; a repeat of a key in the batch gets its
/// first request's answer if it is the same request.
fn answer_of(decisions: &[Decision], hashes: &[String], i: usize) -> DebitAnswer {
    match &decisions[i] {
        Decision::Decided(result) => DebitAnswer::Result(result.clone()),
        Decision::KeyReused => DebitAnswer::KeyReused,
        Decision::SameAs(first) if hashes[*first] == hashes[i] => {
            answer_of(decisions, hashes, *first)
        }
        Decision::SameAs(_) => DebitAnswer::KeyReused,
    }
}

fn record_of<'a>(debit: &'a Debit, now: i64) -> DebitRecord<'a> {
    DebitRecord {
        org_id: debit.org.as_str(),
        id: uuid::Uuid::now_v7().simple().to_string(),
        amount: debit.amount,
        reason: &debit.reason,
        metadata: Value::Object(debit.metadata.clone()).to_string(),
        created_at: now,
    }
}

fn debited(debit: &Debit, record: &DebitRecord<'_>, balance: i64) -> DebitResult {
    DebitResult::Debited {
        balance,
        debit: DebitLine {
            id: format!("debit:{}", record.id),
            amount: debit.amount,
            reason: debit.reason.clone(),
            metadata: Value::Object(debit.metadata.clone()),
            created_at: record.created_at,
        },
    }
}

#[cfg(test)]
#[path = "debits_tests.rs"]
mod tests;
