//! Seats that follow members: `BILLING_SEATS`, `BILLING_SEAT_*`.

use std::time::Duration;

use super::{ConfigError, Env};

/// How a per-seat subscription's quantity follows the organization's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSettings {
    /// `BILLING_SEATS=members`: the quantity is the number of members.
    pub follow_members: bool,
    /// The per-seat prices (`BILLING_SEAT_PRICE_IDS`); empty: the one
    /// licensed, per-unit item of the subscription.
    pub price_ids: Vec<String>,
    /// Only members of these roles count (`BILLING_SEAT_ROLES`); empty: all.
    pub roles: Vec<String>,
    /// Stripe's `proration_behavior` for the update (`BILLING_SEAT_PRORATION`).
    pub proration: String,
    /// `BILLING_SEAT_LIMIT=plan`: entitlements answer `seats: {used, paid}`.
    pub report_limit: bool,
    /// How long a burst of membership changes gathers before one update.
    pub debounce: Duration,
}

impl SeatSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let follow_members = match env.get("BILLING_SEATS").map(str::trim) {
            None | Some("" | "off") => false,
            Some("members") => true,
            Some(other) => {
                return Err(ConfigError::new(
                    "BILLING_SEATS",
                    format!("must be `members` or `off`, got {other:?}"),
                ));
            }
        };
        let proration = env
            .get("BILLING_SEAT_PRORATION")
            .unwrap_or("create_prorations")
            .trim()
            .to_owned();
        if !["create_prorations", "none", "always_invoice"].contains(&proration.as_str()) {
            return Err(ConfigError::new(
                "BILLING_SEAT_PRORATION",
                "must be create_prorations, none or always_invoice",
            ));
        }
        let report_limit = match env.get("BILLING_SEAT_LIMIT").map(str::trim) {
            None | Some("" | "off") => false,
            Some("plan") => true,
            Some(other) => {
                return Err(ConfigError::new(
                    "BILLING_SEAT_LIMIT",
                    format!("must be `plan` or `off`, got {other:?}"),
                ));
            }
        };
        let price_ids = env.list("BILLING_SEAT_PRICE_IDS");
        if price_ids.iter().any(|p| !p.starts_with("price_")) {
            return Err(ConfigError::new(
                "BILLING_SEAT_PRICE_IDS",
                "must be a comma list of price_… ids",
            ));
        }
        Ok(Self {
            follow_members,
            price_ids,
            roles: env.list("BILLING_SEAT_ROLES"),
            proration,
            report_limit,
            debounce: env.duration_or("BILLING_SEAT_DEBOUNCE", Duration::from_secs(10))?,
        })
    }

    /// Members who count as seats among `roles` of members.
    pub fn counts(&self, role: &str) -> bool {
        self.roles.is_empty() || self.roles.iter().any(|r| r == role)
    }
}
