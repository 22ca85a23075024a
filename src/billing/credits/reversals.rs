//! Purchases undone: a reversal takes back its share of what its purchase
//! granted, once, when both are known.

use crate::store::{CreditGrant, Reversal, StoreError, Tx};

/// The payments and invoices whose reversals may now be settled: those of
/// the batch's grants and of its reversals.
pub fn reversal_keys(grants: &[CreditGrant], reversals: &[Reversal]) -> (Vec<String>, Vec<String>) {
    let mut payments: Vec<String> = grants
        .iter()
        .filter_map(|g| g.payment_intent.clone())
        .chain(reversals.iter().filter_map(|r| r.payment_intent.clone()))
        .collect();
    let mut invoices: Vec<String> = grants
        .iter()
        .filter(|g| g.source_type == "invoice")
        .map(|g| g.source_id.clone())
        .chain(reversals.iter().filter_map(|r| r.invoice.clone()))
        .collect();
    for keys in [&mut payments, &mut invoices] {
        keys.sort_unstable();
        keys.dedup();
    }
    (payments, invoices)
}

/// Takes back what the reversals of these payments and invoices undo of
/// the purchases they paid for, where both are known; a reversal whose
/// purchase has not arrived yet waits for it. Each takes its share once,
/// and never more than the purchase granted in all. Returns the
/// clawbacks made.
pub async fn settle_reversals(
    tx: &mut Tx,
    payments: &[String],
    invoices: &[String],
) -> Result<u64, StoreError> {
    if payments.is_empty() && invoices.is_empty() {
        return Ok(0);
    }
    let payments: Vec<&str> = payments.iter().map(String::as_str).collect();
    let invoices: Vec<&str> = invoices.iter().map(String::as_str).collect();
    let mut made = 0;
    for reversal in tx.reversals_of(&payments, &invoices).await? {
        let paid = tx
            .grant_paid_by(
                reversal.payment_intent.as_deref(),
                reversal.invoice.as_deref(),
            )
            .await?;
        let Some(grant) = paid else { continue };
        let whole = match (reversal.whole, reversal.invoice.as_deref()) {
            (0, Some(invoice)) => match tx.invoice_total(invoice).await? {
                Some(total) => total,
                None => continue,
            },
            (whole, _) => whole,
        };
        let (prefix, source_id) = match reversal.kind.as_str() {
            "refund" => (
                format!("refund:{}:", reversal.id),
                format!("refund:{}:{}", reversal.id, reversal.part),
            ),
            kind => {
                let id = format!("{kind}:{}", reversal.id);
                (id.clone(), id)
            }
        };
        let (clawed, clawed_here) = tx.clawed_from(&grant, &prefix).await?;
        let target = share(grant.amount, reversal.part, whole);
        let due = clawback_due(grant.amount, clawed, target, clawed_here);
        if due > 0 {
            let reason = format!("{} {}", reversal.kind.replace('_', " "), reversal.id);
            if tx.record_clawback(&grant, &source_id, due, &reason).await? {
                made += 1;
            }
        }
    }
    Ok(made)
}

/// `part` of `whole` of `granted`, rounded down; all of it when `whole`
/// is not positive or `part` covers it.
fn share(granted: i64, part: i64, whole: i64) -> i64 {
    if whole <= 0 || part >= whole {
        return granted;
    }
    let share = i128::from(granted) * i128::from(part.max(0)) / i128::from(whole);
    i64::try_from(share).unwrap_or(granted)
}

/// What a reversal still takes: its `target` less what it took before,
/// never more than the purchase has left, never negative (a reversal seen
/// late with less undone gives nothing back).
fn clawback_due(granted: i64, clawed: i64, target: i64, clawed_here: i64) -> i64 {
    (target - clawed_here).min(granted - clawed).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reversal_takes_its_share_once_and_never_more_than_was_granted() {
        assert_eq!(share(1000, 500, 2000), 250);
        assert_eq!(share(1000, 2000, 2000), 1000);
        assert_eq!(share(1000, 1, 0), 1000, "a lost dispute takes it all");
        assert_eq!(share(1, 1, 3), 0, "rounded down");
        // A refund of 30 %, then of 60 % in all: 300, then 300 more.
        assert_eq!(clawback_due(1000, 0, 300, 0), 300);
        assert_eq!(clawback_due(1000, 300, 600, 300), 300);
        // The 30 % event arriving last takes nothing back, gives nothing.
        assert_eq!(clawback_due(1000, 600, 300, 600), 0);
        // A dispute after a half refund takes the other half only.
        assert_eq!(clawback_due(1000, 500, 1000, 0), 500);
    }
}
