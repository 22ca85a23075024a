//! Credits that expire: each grant made while `CREDITS_EXPIRE_AFTER` is set
//! is a lot. Whatever takes credits takes them from the lots that expire
//! soonest; what is left of a lot when it expires leaves the balance as an
//! `expiry` row of the ledger. The balance beyond the lots is credits that
//! never expire, spent last.
//!
//! Every change to a lot comes after its organization's balance row is
//! written or locked in the same transaction, so on PostgreSQL the balance
//! row guards its lots and two transactions never wait for each other in a
//! circle.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use super::sets::{Column, InsertRows, ListQuery};
use super::{Store, StoreError, Tx, with_pool, with_tx};

/// A lot: what a grant left, until when.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Deserialize)]
pub struct CreditLot {
    pub source_type: String,
    pub source_id: String,
    pub org_id: String,
    pub amount: i64,
    pub remaining: i64,
    pub granted_at: i64,
    pub expires_at: i64,
}

impl CreditLot {
    /// The ledger row that granted it: `<type>:<id>`, also the key of its
    /// `expiry` row.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.source_type, self.source_id)
    }

    fn expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }
}

/// A grant that becomes a lot: `(source_type, source_id, amount, granted_at)`.
pub(super) type LotGrant<'a> = (&'a str, &'a str, i64, i64);

/// Takes `amount` from the unexpired lots, `first` (a lot's reference)
/// before the others and then the soonest to expire; returns the indices of
/// the lots changed. Whatever the lots do not hold comes from the credits
/// that never expire, or takes the balance below zero.
pub fn take_from_lots(
    lots: &mut [CreditLot],
    amount: i64,
    now: i64,
    first: Option<&str>,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lots.len())
        .filter(|&i| !lots[i].expired(now) && lots[i].remaining > 0)
        .collect();
    order.sort_by_key(|&i| {
        let lot = &lots[i];
        let own = first.is_some_and(|r| r == lot.reference());
        (
            !own,
            lot.expires_at,
            lot.source_type.clone(),
            lot.source_id.clone(),
        )
    });
    let mut left = amount;
    let mut changed = Vec::new();
    for i in order {
        if left == 0 {
            break;
        }
        let taken = left.min(lots[i].remaining);
        lots[i].remaining -= taken;
        left -= taken;
        changed.push(i);
    }
    changed
}

/// Takes what each organization spent (`spent`) from its lots (`lots`, in
/// `open_lots`' order); the lots changed.
pub fn spend_by_org(
    lots: &mut [CreditLot],
    spent: &HashMap<&str, i64>,
    now: i64,
) -> Vec<CreditLot> {
    let mut changed = Vec::new();
    for org_lots in lots.chunk_by_mut(|a, b| a.org_id == b.org_id) {
        let Some(&amount) = spent.get(org_lots[0].org_id.as_str()) else {
            continue;
        };
        for i in take_from_lots(org_lots, amount, now, None) {
            changed.push(org_lots[i].clone());
        }
    }
    changed
}

/// What the expired lots hold, by organization.
pub fn expired_by_org(lots: &[CreditLot], now: i64) -> HashMap<&str, i64> {
    let mut expired: HashMap<&str, i64> = HashMap::new();
    for lot in lots.iter().filter(|l| l.expired(now)) {
        *expired.entry(&lot.org_id).or_default() += lot.remaining;
    }
    expired
}

/// What each grant to an organization leaves in its lot, given the balance
/// after them all: a grant first pays back a balance below zero.
pub(super) fn lot_remainders(amounts: &[i64], balance_after: i64) -> Vec<i64> {
    let mut balance = balance_after - amounts.iter().sum::<i64>();
    amounts
        .iter()
        .map(|&amount| {
            balance += amount;
            amount.min(balance.max(0))
        })
        .collect()
}

static SAVE_LOTS: LazyLock<InsertRows> = LazyLock::new(|| {
    InsertRows::new(
        "credit_lots",
        &[
            "source_type",
            "source_id",
            "org_id",
            "amount",
            "remaining",
            "granted_at",
            "expires_at",
        ],
        "ON CONFLICT (source_type, source_id) DO UPDATE SET remaining = excluded.remaining",
    )
});

impl Tx {
    /// The lots of `orgs` that hold anything, expired or not, in the order
    /// they are spent in.
    pub async fn open_lots(&mut self, orgs: &[&str]) -> Result<Vec<CreditLot>, StoreError> {
        static SQL: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new(
                "SELECT source_type, source_id, org_id, amount, remaining, granted_at, expires_at \
                 FROM credit_lots WHERE remaining > 0 AND org_id {in_ids} \
                 ORDER BY org_id, expires_at, source_type, source_id",
            )
        });
        if orgs.is_empty() {
            return Ok(Vec::new());
        }
        self.fetch_listed(&SQL, orgs).await
    }

    /// Writes the lots' `remaining` (and creates those that are new).
    pub async fn save_lots(&mut self, lots: &[&CreditLot]) -> Result<(), StoreError> {
        let columns = vec![
            Column::column(lots.iter().map(|l| &l.source_type)),
            Column::column(lots.iter().map(|l| &l.source_id)),
            Column::column(lots.iter().map(|l| &l.org_id)),
            Column::column(lots.iter().map(|l| &l.amount)),
            Column::column(lots.iter().map(|l| &l.remaining)),
            Column::column(lots.iter().map(|l| &l.granted_at)),
            Column::column(lots.iter().map(|l| &l.expires_at)),
        ];
        self.insert_rows(&SAVE_LOTS, columns).await?;
        Ok(())
    }

    /// Makes lots of grants just added to `org`'s balance, now `balance`,
    /// when credits expire; in the order they were granted.
    pub(super) async fn add_lots(
        &mut self,
        org: &str,
        grants: &[LotGrant<'_>],
        balance: i64,
    ) -> Result<(), StoreError> {
        let Some(lifetime) = self.credit_lifetime else {
            return Ok(());
        };
        let amounts: Vec<i64> = grants.iter().map(|g| g.2).collect();
        let lots: Vec<CreditLot> = grants
            .iter()
            .zip(lot_remainders(&amounts, balance))
            .map(
                |(&(source_type, source_id, amount, granted_at), remaining)| CreditLot {
                    source_type: source_type.to_owned(),
                    source_id: source_id.to_owned(),
                    org_id: org.to_owned(),
                    amount,
                    remaining,
                    granted_at,
                    expires_at: granted_at.saturating_add(lifetime),
                },
            )
            .collect();
        self.save_lots(&lots.iter().collect::<Vec<_>>()).await
    }

    /// Takes `amount` from `org`'s lots (see `take_from_lots`), after its
    /// balance was written in this transaction.
    pub(super) async fn take_from_lots(
        &mut self,
        org: &str,
        amount: i64,
        now: i64,
        first: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut lots = self.open_lots(&[org]).await?;
        let changed = take_from_lots(&mut lots, amount, now, first);
        if changed.is_empty() {
            return Ok(());
        }
        let changed: Vec<&CreditLot> = changed.iter().map(|&i| &lots[i]).collect();
        self.save_lots(&changed).await
    }

    /// Writes off up to `limit` lots expired at `now`: each one's `expiry`
    /// row, once, and its remaining out of the balance. How many.
    pub async fn expire_lots(&mut self, now: i64, limit: i64) -> Result<u64, StoreError> {
        let orgs: Vec<String> = with_tx!(self, |conn| {
            sqlx::query_scalar(
                "SELECT DISTINCT org_id FROM (SELECT org_id FROM credit_lots \
                 WHERE remaining > 0 AND expires_at <= $1 ORDER BY expires_at LIMIT CAST($2 AS BIGINT)) AS due",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(conn)
            .await?
        });
        if orgs.is_empty() {
            return Ok(0);
        }
        let orgs: Vec<&str> = orgs.iter().map(String::as_str).collect();
        // Locked first, then read again: a debit may have spent them since.
        self.lock_balances(&orgs).await?;
        let mut due: Vec<CreditLot> = self.open_lots(&orgs).await?;
        due.retain(|l| l.expired(now));
        let mut written_off: BTreeMap<&str, i64> = BTreeMap::new();
        for lot in &due {
            self.insert_entry(
                "expiry",
                &lot.reference(),
                &lot.org_id,
                -lot.remaining,
                now,
                (Some("expired"), None, None),
            )
            .await?;
            *written_off.entry(&lot.org_id).or_default() += lot.remaining;
        }
        for (org, amount) in &written_off {
            self.add_to_balance(org, -amount, now).await?;
        }
        let spent: Vec<CreditLot> = due
            .iter()
            .map(|l| CreditLot {
                remaining: 0,
                ..l.clone()
            })
            .collect();
        self.save_lots(&spent.iter().collect::<Vec<_>>()).await?;
        Ok(spent.len() as u64)
    }
}

impl Store {
    /// The unexpired lots of `org`, soonest to expire first.
    pub async fn credit_lots(&self, org: &str, now: i64) -> Result<Vec<CreditLot>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT source_type, source_id, org_id, amount, remaining, granted_at, expires_at \
                 FROM credit_lots WHERE org_id = $1 AND remaining > 0 AND expires_at > $2 \
                 ORDER BY expires_at, source_type, source_id",
            )
            .bind(org)
            .bind(now)
            .fetch_all(pool)
            .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(id: &str, remaining: i64, expires_at: i64) -> CreditLot {
        CreditLot {
            source_type: "invoice".to_owned(),
            source_id: id.to_owned(),
            org_id: "org_1".to_owned(),
            amount: remaining,
            remaining,
            granted_at: 0,
            expires_at,
        }
    }

    #[test]
    fn credits_are_taken_from_the_lot_that_expires_soonest() {
        let mut lots = vec![
            lot("late", 50, 300),
            lot("soon", 30, 200),
            lot("gone", 40, 100),
        ];
        let changed = take_from_lots(&mut lots, 45, 150, None);
        assert_eq!(changed, vec![1, 0]);
        assert_eq!(
            lots.iter().map(|l| l.remaining).collect::<Vec<_>>(),
            vec![35, 0, 40]
        );
        assert_eq!(expired_by_org(&lots, 150).get("org_1"), Some(&40));
    }

    #[test]
    fn each_organization_spends_from_its_own_lots() {
        let mut lots = vec![lot("a", 10, 200), lot("b", 30, 300)];
        lots[1].org_id = "org_2".to_owned();
        let spent = HashMap::from([("org_2", 5)]);
        let changed = spend_by_org(&mut lots, &spent, 0);
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].source_id.as_str(), changed[0].remaining),
            ("b", 25)
        );
        assert_eq!(lots[0].remaining, 10);
    }

    #[test]
    fn a_clawback_takes_from_its_own_lot_first_and_beyond_the_lots_from_nothing() {
        let mut lots = vec![lot("a", 10, 200), lot("b", 30, 300)];
        take_from_lots(&mut lots, 100, 0, Some("invoice:b"));
        assert_eq!(lots[1].remaining, 0);
        assert_eq!(lots[0].remaining, 0);
    }

    #[test]
    fn a_grant_pays_back_a_balance_below_zero_before_its_lot_holds_anything() {
        // Balance -50, then grants of 30 and 100: 80 after.
        assert_eq!(lot_remainders(&[30, 100], 80), vec![0, 80]);
        // Balance 20, then a grant of 100: the lot holds all of it.
        assert_eq!(lot_remainders(&[100], 120), vec![100]);
        assert_eq!(lot_remainders(&[10], -5), vec![0]);
    }
}
