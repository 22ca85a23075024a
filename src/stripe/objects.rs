//! The Stripe objects we sync, as they appear in API responses and event
//! payloads. Events are rendered at the endpoint's API version, so every
//! type accepts both the shapes before and after `2025-03-31.basil`: billing
//! periods on the subscription or on its items, and an invoice's
//! subscription at `subscription` or `parent.subscription_details.subscription`.
//! Unknown fields are ignored; fields we need but Stripe may omit are optional.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

/// An expandable field: Stripe sends either the id or the whole object.
fn expandable_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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

/// Stripe sends `metadata: null` on some objects; treat it as empty.
fn metadata<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<String, String>, D::Error> {
    Ok(Option::<HashMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Recurring {
    pub interval: String,
    #[serde(default = "one")]
    pub interval_count: i64,
}

fn one() -> i64 {
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

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
    pub price: Option<Price>,
    pub quantity: Option<i64>,
    /// Since `2025-03-31.basil` periods live on items.
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    #[serde(deserialize_with = "expandable_id")]
    pub customer: Option<String>,
    pub status: String,
    pub created: i64,
    pub currency: Option<String>,
    pub items: List<SubscriptionItem>,
    /// Before `2025-03-31.basil` periods live on the subscription.
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    #[serde(default, deserialize_with = "expandable_id")]
    pub default_payment_method: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: HashMap<String, String>,
}

impl Subscription {
    /// The item that defines the plan (the first; we sell one price per subscription).
    pub fn primary_item(&self) -> Option<&SubscriptionItem> {
        self.items.data.first()
    }

    pub fn period(&self) -> (Option<i64>, Option<i64>) {
        let item = self.primary_item();
        (
            self.current_period_start
                .or_else(|| item.and_then(|i| i.current_period_start)),
            self.current_period_end
                .or_else(|| item.and_then(|i| i.current_period_end)),
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceParent {
    pub subscription_details: Option<SubscriptionDetails>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionDetails {
    #[serde(default, deserialize_with = "expandable_id")]
    pub subscription: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceLine {
    pub id: Option<String>,
    pub quantity: Option<i64>,
    /// Before basil: the line's price object.
    pub price: Option<Price>,
    /// Since basil: `pricing.price_details.price` (an id).
    pub pricing: Option<LinePricing>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LinePricing {
    pub price_details: Option<PriceDetails>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PriceDetails {
    #[serde(default, deserialize_with = "expandable_id")]
    pub price: Option<String>,
}

impl InvoiceLine {
    pub fn price_id(&self) -> Option<&str> {
        self.price.as_ref().map(|p| p.id.as_str()).or_else(|| {
            self.pricing
                .as_ref()?
                .price_details
                .as_ref()?
                .price
                .as_deref()
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    /// Absent only on upcoming-invoice previews, which we never store.
    pub id: Option<String>,
    #[serde(deserialize_with = "expandable_id")]
    pub customer: Option<String>,
    pub status: Option<String>,
    pub number: Option<String>,
    pub currency: String,
    #[serde(default)]
    pub amount_due: i64,
    #[serde(default)]
    pub amount_paid: i64,
    #[serde(default)]
    pub amount_remaining: i64,
    #[serde(default)]
    pub total: i64,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub created: i64,
    #[serde(default, deserialize_with = "expandable_id")]
    subscription: Option<String>,
    parent: Option<InvoiceParent>,
    pub lines: Option<List<InvoiceLine>>,
}

impl Invoice {
    pub fn subscription_id(&self) -> Option<&str> {
        self.parent
            .as_ref()
            .and_then(|p| p.subscription_details.as_ref()?.subscription.as_deref())
            .or(self.subscription.as_deref())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Card {
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentMethod {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "expandable_id")]
    pub customer: Option<String>,
    pub card: Option<Card>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceSettings {
    #[serde(default, deserialize_with = "expandable_id")]
    pub default_payment_method: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FullCustomer {
    pub id: String,
    #[serde(default)]
    pub deleted: bool,
    pub email: Option<String>,
    pub name: Option<String>,
    pub invoice_settings: Option<InvoiceSettings>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: HashMap<String, String>,
}

impl FullCustomer {
    pub fn default_payment_method(&self) -> Option<&str> {
        self.invoice_settings
            .as_ref()?
            .default_payment_method
            .as_deref()
    }

    pub fn org_id(&self) -> Option<&str> {
        self.metadata.get("org_id").map(String::as_str)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub mode: String,
    pub status: Option<String>,
    pub payment_status: String,
    pub client_reference_id: Option<String>,
    #[serde(default, deserialize_with = "expandable_id")]
    pub customer: Option<String>,
    #[serde(default, deserialize_with = "expandable_id")]
    pub subscription: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: HashMap<String, String>,
}

impl CheckoutSession {
    /// The organization the session was started for: `client_reference_id`,
    /// falling back to `metadata.org_id`.
    pub fn org_id(&self) -> Option<&str> {
        self.client_reference_id
            .as_deref()
            .or_else(|| self.metadata.get("org_id").map(String::as_str))
    }

    /// Credits bought in a `mode=payment` session (`metadata.credits`).
    pub fn credits(&self) -> Option<i64> {
        self.metadata.get("credits")?.trim().parse().ok()
    }
}

/// The event envelope. `data.object` stays raw JSON until the event's type
/// tells us what it is.
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
    pub object: serde_json::Value,
}
