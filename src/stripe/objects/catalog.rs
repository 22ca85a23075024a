//! The catalog: prices, plans (the prices of older API versions) and products.

use std::collections::HashMap;

use serde::Deserialize;

use super::{expandable_id, metadata};

#[derive(Debug, Clone, Deserialize)]
pub struct Recurring {
    pub interval: String,
    #[serde(default = "one")]
    pub interval_count: i64,
    /// `licensed` (a quantity, the default) or `metered`.
    #[serde(default)]
    pub usage_type: Option<String>,
}

pub(super) fn one() -> i64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub id: String,
    #[serde(default, deserialize_with = "expandable_id")]
    pub product: Option<String>,
    #[serde(default)]
    pub active: bool,
    pub currency: String,
    pub unit_amount: Option<i64>,
    pub nickname: Option<String>,
    pub lookup_key: Option<String>,
    pub recurring: Option<Recurring>,
    /// `per_unit` (the default) or `tiered`.
    #[serde(default)]
    pub billing_scheme: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: HashMap<String, String>,
    #[serde(default)]
    pub deleted: bool,
}

impl Price {
    /// Credits a purchase of one unit grants (`metadata.credits`), if any.
    pub fn credits(&self) -> Option<i64> {
        self.metadata.get("credits")?.trim().parse().ok()
    }
}

/// A plan: the price object of API versions before prices, still sent by
/// older endpoints and still usable wherever a price id is.
#[derive(Debug, Clone, Deserialize)]
pub struct Plan {
    pub id: String,
    /// Absent before `2018-02-05`, when plans had a `name` of their own.
    #[serde(default, deserialize_with = "expandable_id")]
    pub product: Option<String>,
    /// Absent before `2018-02-05`; such plans were all active.
    #[serde(default = "yes")]
    pub active: bool,
    pub currency: String,
    pub amount: Option<i64>,
    pub interval: String,
    #[serde(default = "one")]
    pub interval_count: i64,
    pub nickname: Option<String>,
    /// Before `2018-02-05`: the plan's display name.
    pub name: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: HashMap<String, String>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub usage_type: Option<String>,
    #[serde(default)]
    pub billing_scheme: Option<String>,
}

pub(super) fn yes() -> bool {
    true
}

impl Plan {
    /// The plan as the price it is: recurring, with the plan's name as its
    /// nickname when it has no nickname.
    pub fn as_price(&self) -> Price {
        Price {
            id: self.id.clone(),
            product: self.product.clone(),
            active: self.active,
            currency: self.currency.clone(),
            unit_amount: self.amount,
            nickname: self.nickname.clone().or_else(|| self.name.clone()),
            lookup_key: None,
            recurring: Some(Recurring {
                interval: self.interval.clone(),
                interval_count: self.interval_count,
                usage_type: self.usage_type.clone(),
            }),
            billing_scheme: self.billing_scheme.clone(),
            kind: Some("recurring".to_owned()),
            metadata: self.metadata.clone(),
            deleted: self.deleted,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub deleted: bool,
}
