//! Usage Stripe can bill: the product's services report usage of a meter,
//! it is stored at once (an outbox), and a worker sends it to Stripe's meter
//! events API in order of arrival, under an identifier Stripe deduplicates,
//! never faster than `STRIPE_METER_EVENTS_PER_SECOND`, retrying what may
//! succeed later and keeping what Stripe refuses for good for an operator.

mod intake;
mod outbox;

pub use intake::UsageIntake;
pub use outbox::{Drained, drain_due, limiter, run};

use serde::Deserialize;

/// Stripe accepts events of the past 35 days, and up to 5 minutes ahead.
const OLDEST_SECS: i64 = 35 * 24 * 3600;
const AHEAD_SECS: i64 = 5 * 60;
const MAX_VALUE: i64 = 1_000_000_000_000;
const MAX_IDENTIFIER_CHARS: usize = 100;

/// A usage report's body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRequest {
    /// The meter's event name (one of `STRIPE_METERS`).
    meter: String,
    /// How much, a whole number from 1 to 10^12.
    value: i64,
    /// Unique per usage: a repeat is recorded once. Generated when absent.
    identifier: Option<String>,
    /// When it happened (unix seconds); now when absent.
    timestamp: Option<i64>,
}

/// A usage report, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub meter: String,
    pub value: i64,
    pub identifier: String,
    pub occurred_at: i64,
    /// Whether the caller stated `occurred_at`; otherwise it is when the
    /// report arrived, which differs between a report and its retry.
    pub time_stated: bool,
}

impl Usage {
    /// The report in `body`, checked against the configured `meters` at
    /// `now`; or why it is refused, as a sentence.
    pub fn parse(body: &[u8], meters: &[String], now: i64) -> Result<Self, String> {
        let body: UsageRequest = serde_json::from_slice(body)
            .map_err(|e| format!("The body is not a usage record: {e}."))?;
        if !meters.contains(&body.meter) {
            return Err(format!(
                "There is no meter {:?} (configured: {}).",
                body.meter,
                if meters.is_empty() {
                    "none".to_owned()
                } else {
                    meters.join(", ")
                }
            ));
        }
        if !(1..=MAX_VALUE).contains(&body.value) {
            return Err(format!("value must be between 1 and {MAX_VALUE}."));
        }
        let occurred_at = body.timestamp.unwrap_or(now);
        if occurred_at < now - OLDEST_SECS || occurred_at > now + AHEAD_SECS {
            return Err(
                "timestamp must be within the past 35 days and at most 5 minutes ahead.".to_owned(),
            );
        }
        let identifier = match body.identifier {
            Some(id) if id.is_empty() || id.chars().count() > MAX_IDENTIFIER_CHARS => {
                return Err(format!(
                    "identifier must be 1 to {MAX_IDENTIFIER_CHARS} characters."
                ));
            }
            Some(id) => id,
            None => format!("lb_{}", uuid::Uuid::now_v7().simple()),
        };
        Ok(Self {
            meter: body.meter,
            value: body.value,
            identifier,
            occurred_at,
            time_stated: body.timestamp.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_a_configured_meter_a_positive_value_and_a_recent_time() {
        let meters = vec!["api_calls".to_owned()];
        let now = 1_800_000_000;
        let parse = |body: &str| Usage::parse(body.as_bytes(), &meters, now);
        let ok = parse(r#"{"meter": "api_calls", "value": 3}"#).unwrap();
        assert_eq!((ok.occurred_at, ok.time_stated), (now, false));
        assert!(ok.identifier.starts_with("lb_"));
        let given = parse(
            r#"{"meter": "api_calls", "value": 3, "identifier": "u1", "timestamp": 1799999000}"#,
        )
        .unwrap();
        assert_eq!(
            (
                given.identifier.as_str(),
                given.occurred_at,
                given.time_stated
            ),
            ("u1", 1_799_999_000, true)
        );
        for bad in [
            r#"{"meter": "tokens", "value": 3}"#,
            r#"{"meter": "api_calls", "value": 0}"#,
            r#"{"meter": "api_calls", "value": -1}"#,
            r#"{"meter": "api_calls", "value": 3, "timestamp": 1796000000}"#,
            r#"{"meter": "api_calls", "value": 3, "timestamp": 1800000400}"#,
            r#"{"meter": "api_calls", "value": 3, "identifier": ""}"#,
            r#"{"meter": "api_calls", "value": 3, "extra": true}"#,
            r#"[]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
