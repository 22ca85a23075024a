//! Credits: spending them (`debits`: never below zero, once per
//! idempotency key, in batches), taking back what undone purchases granted
//! (`reversals`), writing off those that expired (`expiry`), and
//! operators' adjustments (here).

mod debits;
pub mod expiry;
mod reversals;

pub use debits::{Debit, DebitAnswer, DebitError, DebitLine, DebitRequest, DebitResult, Debits};
pub use reversals::{reversal_keys, settle_reversals};

use crate::domain::OrgId;
use crate::store::{Store, StoreError};

/// The largest debit or adjustment: far beyond any real one, far below
/// overflow.
pub const MAX_DEBIT: i64 = 1_000_000_000_000;
const MAX_REASON_CHARS: usize = 200;

/// An operator's adjustment: `amount` credits (either sign, not zero) for
/// `reason`, by `actor`; the balance after, or why it was refused.
pub async fn adjust(
    store: &Store,
    org: &OrgId,
    amount: i64,
    reason: &str,
    actor: &str,
) -> Result<Result<i64, String>, StoreError> {
    let reason = reason.trim();
    if amount == 0 || amount.abs() > MAX_DEBIT {
        return Ok(Err(format!(
            "The amount must be a whole number of credits, not zero, at most {MAX_DEBIT} either way."
        )));
    }
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Ok(Err(format!(
            "Give a reason of 1 to {MAX_REASON_CHARS} characters."
        )));
    }
    let mut tx = store.begin().await?;
    let Some(balance) = tx
        .adjust_credits(org.as_str(), amount, reason, actor)
        .await?
    else {
        let balance = tx.credit_balance(org.as_str()).await?;
        return Ok(Err(format!(
            "That would take the balance ({balance}) below zero."
        )));
    };
    tx.commit().await?;
    Ok(Ok(balance))
}
