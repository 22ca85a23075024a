//! Typed identifiers, parsed once at the edge so the rest of the code never
//! handles a raw string where an id is meant.

use std::fmt;

/// Why a string was not accepted as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} must look like `{prefix}…` (ASCII letters, digits and `_`, at most {max} characters), got {shown:?}"
)]
pub struct InvalidId {
    kind: &'static str,
    prefix: &'static str,
    max: usize,
    shown: String,
}

/// Stripe and Clerk ids are `prefix_` followed by base62 characters; we also
/// allow `_` so ids made up for development (`org_demo_team`) parse.
fn parse_prefixed(
    value: &str,
    kind: &'static str,
    prefix: &'static str,
    max: usize,
) -> Result<String, InvalidId> {
    let body = value.strip_prefix(prefix);
    let well_formed = value.len() <= max
        && body.is_some_and(|b| {
            !b.is_empty() && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        });
    if well_formed {
        Ok(value.to_owned())
    } else {
        // Never echo an unbounded attacker-controlled string into logs or errors.
        let shown: String = value.chars().take(40).collect();
        Err(InvalidId {
            kind,
            prefix,
            max,
            shown,
        })
    }
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                parse_prefixed(value, $kind, $prefix, 255).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A Clerk organization id (`org_…`), our primary key for a paying customer.
    OrgId,
    "an organization id",
    "org_"
);
prefixed_id!(
    /// A Stripe Checkout session id (`cs_…`), as a return link carries it.
    CheckoutSessionId,
    "a Checkout session id",
    "cs_"
);
prefixed_id!(
    /// A Stripe customer id (`cus_…`).
    StripeCustomerId,
    "a Stripe customer id",
    "cus_"
);

/// A Clerk user id (the token's `sub`). Clerk issues `user_…`, but the claim is
/// only required to be a non-empty string, so we check shape, not prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let ok = !value.is_empty()
            && value.len() <= 255
            && value
                .bytes()
                .all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\\');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidId {
                kind: "a user id",
                prefix: "",
                max: 255,
                shown: value.chars().take(40).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Now, in UTC unix microseconds: only to order what happens within a
/// second (the receipt of webhook batches), never as a time shown or compared.
pub fn unix_now_us() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

/// Current time as UTC unix seconds: the only time representation we store.
pub fn unix_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_secs()).unwrap_or(i64::MAX)
}

/// The calendar month (UTC) that holds `now`: its first second, and the
/// first second of the next.
pub fn calendar_month(now: i64) -> (i64, i64) {
    use time::{Date, OffsetDateTime};
    let today = OffsetDateTime::from_unix_timestamp(now)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date();
    let first = today.replace_day(1).unwrap_or(today);
    let next = first
        .checked_add(time::Duration::days(32))
        .and_then(|d| d.replace_day(1).ok())
        .unwrap_or(Date::MAX);
    let unix = |d: Date| d.midnight().assume_utc().unix_timestamp();
    (unix(first), unix(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_parse() {
        for ok in ["org_2abcDEF123", "org_demo", "org_demo_team"] {
            assert!(OrgId::parse(ok).is_ok(), "{ok}");
        }
        assert!(StripeCustomerId::parse("cus_QXg1o8vcGmoR32").is_ok());
        assert!(UserId::parse("user_2NNEqL2nrIRdJ194ndJqAHwEfxC").is_ok());
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let long = format!("org_{}", "a".repeat(300));
        for bad in [
            "",
            "org_",
            "org",
            "cus_123",
            "org_a b",
            "org_a;drop",
            "ORG_abc",
            long.as_str(),
        ] {
            assert!(OrgId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        for bad in ["", "cus_", "org_x", "cus_12-3"] {
            assert!(StripeCustomerId::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "a b", "x\"y", "\u{7f}"] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_never_echo_more_than_a_short_prefix() {
        let err = OrgId::parse(&"x".repeat(10_000)).unwrap_err();
        assert!(err.to_string().len() < 200);
    }

    #[test]
    fn a_calendar_month_runs_from_its_first_second_to_the_next_months() {
        // 2026-12-06 12:00 UTC.
        let (from, to) = calendar_month(1_796_558_400);
        assert_eq!((from, to), (1_796_083_200, 1_798_761_600));
        let (from, to) = calendar_month(1_798_761_600);
        assert_eq!(from, 1_798_761_600, "the first second of January");
        assert!(to > from);
    }
}
