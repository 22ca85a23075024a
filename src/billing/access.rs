//! What an organization may use right now, from its synced state: one pure
//! function with a table test.
//!
//! - `full`: an `active` or `trialing` subscription.
//! - `grace`: no such subscription, but one `past_due` for less than the
//!   grace period (`BILLING_GRACE_PERIOD`), counted from when it became past
//!   due; features stay on and the Plans tab warns.
//! - `none`: anything else (no subscription, `unpaid`, `canceled`,
//!   `incomplete`, `incomplete_expired`, `paused`, or past due beyond grace).
//!
//! Features (the customer's active entitlements) are granted only while
//! access is `full` or `grace`.

use std::time::Duration;

use serde::Serialize;

use crate::domain::{OrgId, unix_now};
use crate::store::{EntitlementFacts, Organization, Standing, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Full,
    Grace,
    None,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Grace => "grace",
            Self::None => "none",
        }
    }
}

/// An organization's access at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub level: Level,
    /// When grace ends (unix seconds), while in grace.
    pub grace_ends_at: Option<i64>,
    /// The features granted now: none unless access is full or grace.
    pub features: Vec<String>,
    pub synced_at: Option<i64>,
}

/// `org`'s access now: its customer and facts from memory when cached.
pub async fn of_organization(
    store: &Store,
    org: &OrgId,
    grace: Duration,
) -> Result<Option<Access>, StoreError> {
    let Some(org) = store.find_organization_cached(org).await? else {
        return Ok(None);
    };
    Ok(Some(of(store, &org, grace).await?))
}

/// The access of an organization already read: its facts from memory when cached.
pub async fn of(store: &Store, org: &Organization, grace: Duration) -> Result<Access, StoreError> {
    let customer = org.stripe_customer_id.as_ref().map(|c| c.as_str());
    let facts = store.entitlement_facts(org.id.as_str(), customer).await?;
    let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    Ok(access(&facts, unix_now(), grace_secs))
}

/// The access `facts` give at `now`, with a grace period of `grace_secs`.
pub fn access(facts: &EntitlementFacts, now: i64, grace_secs: i64) -> Access {
    let (level, grace_ends_at) = level(&facts.subscriptions, now, grace_secs);
    let features = match level {
        Level::Full | Level::Grace => facts.features.clone(),
        Level::None => Vec::new(),
    };
    Access {
        level,
        grace_ends_at,
        features,
        synced_at: facts.synced_at,
    }
}

fn level(subscriptions: &[Standing], now: i64, grace_secs: i64) -> (Level, Option<i64>) {
    if subscriptions
        .iter()
        .any(|s| matches!(s.status.as_str(), "active" | "trialing"))
    {
        return (Level::Full, None);
    }
    let grace_ends_at = subscriptions
        .iter()
        .filter(|s| s.status == "past_due")
        // Rows synced before the start was kept count from their period.
        .filter_map(|s| s.past_due_since.or(s.current_period_start))
        .map(|since| since.saturating_add(grace_secs))
        .max();
    match grace_ends_at {
        Some(ends) if now < ends => (Level::Grace, Some(ends)),
        _ => (Level::None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    fn standing(status: &str, past_due_since: Option<i64>) -> Standing {
        Standing {
            status: status.to_owned(),
            past_due_since,
            current_period_start: Some(NOW - 20 * DAY),
        }
    }

    fn facts(subscriptions: Vec<Standing>) -> EntitlementFacts {
        EntitlementFacts {
            subscriptions,
            features: vec!["api".into(), "sso".into()],
            synced_at: Some(NOW - 60),
        }
    }

    #[test]
    fn each_rule_of_access() {
        let grace = 7 * DAY;
        let cases: Vec<(&str, Vec<Standing>, Level, Option<i64>)> = vec![
            ("no subscription", vec![], Level::None, None),
            ("active", vec![standing("active", None)], Level::Full, None),
            (
                "trialing",
                vec![standing("trialing", None)],
                Level::Full,
                None,
            ),
            (
                "past due for a day",
                vec![standing("past_due", Some(NOW - DAY))],
                Level::Grace,
                Some(NOW + 6 * DAY),
            ),
            (
                "past due one second short of grace",
                vec![standing("past_due", Some(NOW - grace + 1))],
                Level::Grace,
                Some(NOW + 1),
            ),
            (
                "past due exactly as long as grace",
                vec![standing("past_due", Some(NOW - grace))],
                Level::None,
                None,
            ),
            (
                "past due beyond grace",
                vec![standing("past_due", Some(NOW - 8 * DAY))],
                Level::None,
                None,
            ),
            (
                "past due since unknown counts from its period",
                vec![standing("past_due", None)],
                Level::None,
                None,
            ),
            ("unpaid", vec![standing("unpaid", None)], Level::None, None),
            (
                "canceled",
                vec![standing("canceled", None)],
                Level::None,
                None,
            ),
            (
                "incomplete",
                vec![standing("incomplete", None)],
                Level::None,
                None,
            ),
            (
                "incomplete_expired",
                vec![standing("incomplete_expired", None)],
                Level::None,
                None,
            ),
            ("paused", vec![standing("paused", None)], Level::None, None),
            (
                "an active one beside a canceled one",
                vec![standing("canceled", None), standing("active", None)],
                Level::Full,
                None,
            ),
            (
                "the latest grace of several past due",
                vec![
                    standing("past_due", Some(NOW - 6 * DAY)),
                    standing("past_due", Some(NOW - 2 * DAY)),
                ],
                Level::Grace,
                Some(NOW + 5 * DAY),
            ),
        ];
        for (case, subscriptions, expected, ends) in cases {
            let answer = access(&facts(subscriptions), NOW, grace);
            assert_eq!(answer.level, expected, "{case}");
            assert_eq!(answer.grace_ends_at, ends, "{case}");
            let granted = !answer.features.is_empty();
            assert_eq!(granted, expected != Level::None, "{case}: features");
        }
    }
}
