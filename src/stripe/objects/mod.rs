//! The Stripe objects we sync, as they appear in API responses and event
//! payloads. Events are rendered at the endpoint's (or account's) API
//! version, and the Events API returns each event at the version it was
//! created with, so every type accepts every shape since `2017-08-15`:
//!
//! - plans before prices (before `2020-08-27`): a subscription item (or a
//!   legacy subscription itself) carries a `plan` and no `price`; a plan is
//!   read as the price of the same id, as Stripe itself allows;
//! - plans with a `name` and no product (before `2018-02-05`);
//! - invoices with `date` instead of `created` (before `2019-03-14`) and
//!   `paid`/`forgiven`/`closed` instead of `status` (before `2018-11-08`);
//! - cards as customer sources (`card_…`) beside payment methods, and a
//!   customer's `default_source` beside `invoice_settings.default_payment_method`;
//! - billing periods on the subscription or on its items, and an invoice's
//!   subscription at `subscription` or `parent.subscription_details.subscription`
//!   (`2025-03-31.basil`).
//!
//! Unknown fields are ignored (clover's `billing_mode`, dahlia's additions);
//! fields we need but Stripe may omit are optional.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

/// An expandable field: Stripe sends either the id or the whole object.
pub(super) fn expandable_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Expandable {
        Id(String),
        Object { id: String },
    }
    Ok(Option::<Expandable>::deserialize(d)?.map(|e| match e {
        Expandable::Id(id) | Expandable::Object { id } => id,
    }))
}

/// Stripe sends `metadata: null` on some objects; treat it as empty. A
/// value that is not text (a hand-made payload's number) is left out.
pub(super) fn metadata<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<HashMap<String, String>, D::Error> {
    let Some(map) = Option::<HashMap<String, serde_json::Value>>::deserialize(d)? else {
        return Ok(HashMap::new());
    };
    Ok(map
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::String(text) => Some((key, text)),
            _ => None,
        })
        .collect())
}

/// A field we can do without: a value of another shape than we know reads
/// as absent instead of making the whole object unreadable.
pub(super) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

mod billing;
mod catalog;
mod customers;
mod entitlements;
mod payments;

pub use billing::{
    Invoice, InvoiceLine, InvoiceParent, LinePricing, PriceDetails, Subscription,
    SubscriptionDetails, SubscriptionItem,
};
use catalog::yes;
pub use catalog::{Plan, Price, Product, Recurring};
pub use customers::{
    Card, CardSource, CheckoutSession, FullCustomer, InvoiceSettings, PaymentMethod,
};
pub use entitlements::{ActiveEntitlement, EntitlementSummary, Feature, ProductFeature};
pub use payments::{Charge, CreditNote, Dispute};

/// The event envelope. `data.object` stays raw JSON text until the event's
/// type tells us what it is, and is then parsed once, straight into that
/// type (no tree of values built and dropped for each delivery).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub api_version: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: Box<serde_json::value::RawValue>,
}
