//! Entitlements: features, the features a product includes, and a
//! customer's active entitlement summary.

use serde::Deserialize;

use super::{List, expandable_id, yes};

/// `entitlements.active_entitlement_summary`: a customer's active features.
#[derive(Debug, Clone, Deserialize)]
pub struct EntitlementSummary {
    pub customer: String,
    pub entitlements: List<ActiveEntitlement>,
}

/// `entitlements.active_entitlement`.
#[derive(Debug, Clone, Deserialize)]
pub struct ActiveEntitlement {
    pub id: String,
    #[serde(default, deserialize_with = "expandable_id")]
    pub feature: Option<String>,
    pub lookup_key: String,
}

/// `entitlements.feature`.
#[derive(Debug, Clone, Deserialize)]
pub struct Feature {
    pub id: String,
    pub lookup_key: String,
    pub name: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

/// `product_feature`: a feature a product includes.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductFeature {
    pub id: String,
    pub entitlement_feature: Feature,
}
