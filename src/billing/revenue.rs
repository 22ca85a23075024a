//! Monthly recurring revenue, from synced subscriptions: pure functions.
//!
//! A subscription's monthly amount is its price × quantity normalised to a
//! month: yearly ÷ 12, weekly × 52 ÷ 12, daily × 365 ÷ 12, each divided by
//! its `interval_count`. `active` and `past_due` count (a past-due
//! subscription is still owed until it becomes `unpaid` or `canceled`);
//! `trialing` is reported apart. Discounts and taxes are not applied. Money
//! stays in minor units of its own currency and is never summed across
//! currencies.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::{Lifetime, RecurringGroup, Snapshot};

/// Statuses of subscriptions that paid while they lived.
const PAID_WHILE_ALIVE: [&str; 4] = ["active", "past_due", "trialing", "canceled"];

/// What MRR is computed from: one subscription's price and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurring<'a> {
    pub status: &'a str,
    pub currency: &'a str,
    pub unit_amount: i64,
    pub quantity: i64,
    pub interval: &'a str,
    pub interval_count: i64,
}

/// Per currency (lowercase): MRR and the MRR of subscriptions in trial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mrr {
    pub by_currency: BTreeMap<String, CurrencyMrr>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CurrencyMrr {
    /// `active` and `past_due`, in minor units a month.
    pub mrr: i64,
    /// `trialing`, in minor units a month.
    pub in_trial: i64,
}

/// The monthly amount of `amount` billed every `count` `interval`s, in
/// minor units, rounded to the nearest unit (halves away from zero).
pub fn monthly(amount: i64, interval: &str, count: i64) -> i64 {
    let count = i128::from(count.max(1));
    let (numerator, denominator): (i128, i128) = match interval {
        "day" => (365, 12),
        "week" => (52, 12),
        "year" => (1, 12),
        _ => (1, 1), // month
    };
    let scaled = i128::from(amount) * numerator;
    let divisor = denominator * count;
    let rounded = (scaled + divisor / 2 * scaled.signum()) / divisor;
    i64::try_from(rounded).unwrap_or(if rounded > 0 { i64::MAX } else { i64::MIN })
}

/// MRR per currency of `subscriptions`.
pub fn mrr<'a>(subscriptions: impl IntoIterator<Item = Recurring<'a>>) -> Mrr {
    let mut result = Mrr::default();
    for sub in subscriptions {
        let counted = matches!(sub.status, "active" | "past_due");
        let in_trial = sub.status == "trialing";
        if !counted && !in_trial {
            continue;
        }
        let amount = monthly(
            sub.unit_amount.saturating_mul(sub.quantity.max(0)),
            sub.interval,
            sub.interval_count,
        );
        let line = result
            .by_currency
            .entry(sub.currency.to_ascii_lowercase())
            .or_default();
        if counted {
            line.mrr = line.mrr.saturating_add(amount);
        } else {
            line.in_trial = line.in_trial.saturating_add(amount);
        }
    }
    result
}

/// MRR per currency of subscriptions grouped by status, currency and price
/// shape: each group's total is normalised once.
pub fn mrr_of_groups(groups: &[RecurringGroup]) -> Mrr {
    mrr(groups.iter().map(|g| Recurring {
        status: &g.status,
        currency: &g.currency,
        unit_amount: g.amount,
        quantity: 1,
        interval: &g.recurring_interval,
        interval_count: g.interval_count,
    }))
}

/// Today's snapshot rows, one per currency.
pub fn snapshot_of(day: i64, groups: &[RecurringGroup]) -> Vec<Snapshot> {
    let counted: BTreeMap<String, i64> = groups
        .iter()
        .filter(|g| matches!(g.status.as_str(), "active" | "past_due"))
        .fold(BTreeMap::new(), |mut counts, g| {
            *counts.entry(g.currency.clone()).or_default() += g.subscriptions;
            counts
        });
    mrr_of_groups(groups)
        .by_currency
        .into_iter()
        .map(|(currency, line)| Snapshot {
            day,
            subscriptions: counted.get(&currency).copied().unwrap_or(0),
            currency,
            mrr: line.mrr,
            in_trial: line.in_trial,
            estimate: false,
        })
        .collect()
}

/// Estimated snapshots on each of `days` from the lifetimes of subscription
/// items: an item counts from its subscription's `created` until it ended,
/// as paying unless it was still in its trial. Only subscriptions that paid
/// while they lived count (see `Store::lifetimes`); past states are not
/// synced, so one that was past due on the day counts as paying: an estimate.
pub fn estimate(days: &[i64], lifetimes: &[Lifetime]) -> Vec<Snapshot> {
    let mut snapshots = Vec::new();
    for &day in days {
        let alive = lifetimes.iter().filter(|l| {
            PAID_WHILE_ALIVE.contains(&l.status.as_str())
                && l.created <= day
                && l.ended.is_none_or(|ended| ended > day)
        });
        let mut by_currency: BTreeMap<&str, (CurrencyMrr, BTreeSet<&str>)> = BTreeMap::new();
        for life in alive {
            let amount = monthly(life.amount, &life.recurring_interval, life.interval_count);
            let entry = by_currency.entry(&life.currency).or_default();
            if life.trial_end.is_some_and(|end| end > day) {
                entry.0.in_trial = entry.0.in_trial.saturating_add(amount);
            } else {
                entry.0.mrr = entry.0.mrr.saturating_add(amount);
                entry.1.insert(&life.subscription);
            }
        }
        snapshots.extend(
            by_currency
                .into_iter()
                .map(|(currency, (line, count))| Snapshot {
                    day,
                    currency: currency.to_owned(),
                    mrr: line.mrr,
                    in_trial: line.in_trial,
                    subscriptions: count.len() as i64,
                    estimate: true,
                }),
        );
    }
    snapshots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub<'a>(
        status: &'a str,
        currency: &'a str,
        amount: i64,
        qty: i64,
        interval: &'a str,
        count: i64,
    ) -> Recurring<'a> {
        Recurring {
            status,
            currency,
            unit_amount: amount,
            quantity: qty,
            interval,
            interval_count: count,
        }
    }

    #[test]
    fn each_interval_normalises_to_a_month() {
        let cases = [
            (4900, "month", 1, 4900),
            (4900, "month", 3, 1633),
            (120_000, "year", 1, 10_000),
            (120_000, "year", 2, 5000),
            (1000, "week", 1, 4333),
            (1000, "week", 2, 2167),
            (100, "day", 1, 3042),
            (500, "jpy-less", 1, 500),
        ];
        for (amount, interval, count, expected) in cases {
            assert_eq!(
                monthly(amount, interval, count),
                expected,
                "{amount} per {count} {interval}"
            );
        }
    }

    #[test]
    fn mrr_counts_active_and_past_due_per_currency_and_trials_apart() {
        let subscriptions = [
            sub("active", "usd", 4900, 3, "month", 1),
            sub("past_due", "usd", 120_000, 1, "year", 1),
            sub("trialing", "usd", 4900, 1, "month", 1),
            sub("unpaid", "usd", 4900, 1, "month", 1),
            sub("canceled", "usd", 4900, 1, "month", 1),
            sub("active", "EUR", 9900, 1, "month", 1),
            sub("active", "jpy", 5000, 2, "month", 1),
        ];
        let mrr = mrr(subscriptions);
        assert_eq!(
            mrr.by_currency["usd"],
            CurrencyMrr {
                mrr: 14_700 + 10_000,
                in_trial: 4900
            }
        );
        assert_eq!(mrr.by_currency["eur"].mrr, 9900);
        assert_eq!(mrr.by_currency["jpy"].mrr, 10_000);
        assert_eq!(mrr.by_currency.len(), 3, "never summed across currencies");
    }

    fn life(created: i64, ended: Option<i64>, trial_end: Option<i64>) -> Lifetime {
        Lifetime {
            subscription: format!("sub_{created}_{ended:?}"),
            status: "active".into(),
            currency: "usd".into(),
            recurring_interval: "month".into(),
            interval_count: 1,
            amount: 1000,
            created,
            ended,
            trial_end,
        }
    }

    #[test]
    fn the_backfill_counts_what_was_alive_on_each_day() {
        let lifetimes = [
            life(100, None, None),
            life(100, Some(250), None),
            life(200, None, Some(350)),
        ];
        let days = [150, 300, 400];
        let estimated = estimate(&days, &lifetimes);
        let at = |day| estimated.iter().find(|s| s.day == day).unwrap();
        assert_eq!((at(150).mrr, at(150).in_trial), (2000, 0));
        assert_eq!((at(300).mrr, at(300).in_trial), (1000, 1000));
        assert_eq!((at(400).mrr, at(400).subscriptions), (2000, 2));
        assert!(estimated.iter().all(|s| s.estimate));
    }

    #[test]
    fn the_backfill_counts_every_item_once_and_only_what_paid() {
        let mut second_item = life(100, None, None);
        second_item.subscription = "sub_100_None".into();
        second_item.amount = 500;
        let mut never_paid = life(100, None, None);
        never_paid.subscription = "sub_x".into();
        never_paid.status = "incomplete_expired".into();
        let mut unpaid = never_paid.clone();
        unpaid.subscription = "sub_y".into();
        unpaid.status = "unpaid".into();
        let lifetimes = [life(100, None, None), second_item, never_paid, unpaid];
        let estimated = estimate(&[150], &lifetimes);
        assert_eq!((estimated[0].mrr, estimated[0].subscriptions), (1500, 1));
    }
}
