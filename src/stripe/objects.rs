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
}

fn yes() -> bool {
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
            }),
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

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
    price: Option<Price>,
    /// Before `2020-08-27`: the item's plan, and no price.
    plan: Option<Plan>,
    pub quantity: Option<i64>,
    /// Since `2025-03-31.basil` periods live on items.
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
}

impl SubscriptionItem {
    /// The item's price, or its plan read as a price.
    pub fn price(&self) -> Option<Price> {
        self.price
            .clone()
            .or_else(|| self.plan.as_ref().map(Plan::as_price))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    #[serde(deserialize_with = "expandable_id")]
    pub customer: Option<String>,
    pub status: String,
    pub created: i64,
    pub currency: Option<String>,
    #[serde(default = "no_items")]
    items: List<SubscriptionItem>,
    /// Single-plan subscriptions of old API versions carry their plan and
    /// quantity at the top level too (and, before items existed, only there).
    plan: Option<Plan>,
    quantity: Option<i64>,
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

fn no_items() -> List<SubscriptionItem> {
    List {
        data: Vec::new(),
        has_more: false,
    }
}

impl Subscription {
    /// The subscription's items; a legacy subscription with only a top-level
    /// plan reads as one item of that plan.
    pub fn items(&self) -> Vec<SubscriptionItem> {
        if !self.items.data.is_empty() {
            return self.items.data.clone();
        }
        self.plan
            .iter()
            .map(|plan| SubscriptionItem {
                id: format!("{}:{}", self.id, plan.id),
                price: None,
                plan: Some(plan.clone()),
                quantity: self.quantity,
                current_period_start: None,
                current_period_end: None,
            })
            .collect()
    }

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
    /// Before `2020-08-27`: the line's plan.
    pub plan: Option<Plan>,
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
        self.price
            .as_ref()
            .map(|p| p.id.as_str())
            .or_else(|| self.plan.as_ref().map(|p| p.id.as_str()))
            .or_else(|| {
                self.pricing
                    .as_ref()?
                    .price_details
                    .as_ref()?
                    .price
                    .as_deref()
            })
    }

    /// Credits one unit grants, when the payload embeds the price or plan.
    pub fn credits_per_unit(&self) -> Option<i64> {
        match (&self.price, &self.plan) {
            (Some(price), _) => price.credits(),
            (None, Some(plan)) => plan.as_price().credits(),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    /// Absent only on upcoming-invoice previews, which we never store.
    pub id: Option<String>,
    #[serde(deserialize_with = "expandable_id")]
    pub customer: Option<String>,
    status: Option<String>,
    pub number: Option<String>,
    pub currency: String,
    #[serde(default)]
    pub amount_due: i64,
    /// Both arrived in `2018-02-28`; read through `amount_paid()` and
    /// `amount_remaining()`.
    amount_paid: Option<i64>,
    amount_remaining: Option<i64>,
    #[serde(default)]
    pub total: i64,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    /// Named `date` before `2019-03-14`.
    #[serde(alias = "date")]
    pub created: i64,
    #[serde(default, deserialize_with = "expandable_id")]
    subscription: Option<String>,
    parent: Option<InvoiceParent>,
    pub lines: Option<List<InvoiceLine>>,
    /// Before `2018-11-08` an invoice had no `status`, only these.
    paid: Option<bool>,
    forgiven: Option<bool>,
    closed: Option<bool>,
}

impl Invoice {
    /// What was paid; for invoices of API versions without the field, all of
    /// `amount_due` once paid.
    pub fn amount_paid(&self) -> i64 {
        self.amount_paid.unwrap_or(match self.status() {
            Some("paid") => self.amount_due,
            _ => 0,
        })
    }

    /// What is still owed; for invoices of API versions without the field,
    /// nothing once paid or written off, else `amount_due`.
    pub fn amount_remaining(&self) -> i64 {
        self.amount_remaining.unwrap_or(match self.status() {
            Some("paid" | "uncollectible" | "void") => 0,
            _ => self.amount_due,
        })
    }

    /// `status`, or for invoices of API versions without one, the status its
    /// `paid`, `forgiven` and `closed` flags amount to.
    pub fn status(&self) -> Option<&str> {
        if let Some(status) = self.status.as_deref() {
            return Some(status);
        }
        match (self.paid, self.forgiven, self.closed) {
            (Some(true), _, _) => Some("paid"),
            (_, Some(true), _) | (_, _, Some(true)) => Some("uncollectible"),
            (Some(false), _, _) => Some("open"),
            _ => None,
        }
    }

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

/// A card saved as a customer source (`card_…`), as accounts that predate
/// payment methods still have; `customer.source.*` events carry it.
#[derive(Debug, Clone, Deserialize)]
pub struct CardSource {
    pub id: String,
    pub object: String,
    #[serde(default, deserialize_with = "expandable_id")]
    pub customer: Option<String>,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

impl CardSource {
    /// The source as the payment method it works as.
    pub fn as_payment_method(&self) -> PaymentMethod {
        PaymentMethod {
            id: self.id.clone(),
            kind: "card".to_owned(),
            customer: self.customer.clone(),
            card: Some(Card {
                brand: self.brand.as_deref().map(str::to_ascii_lowercase),
                last4: self.last4.clone(),
                exp_month: self.exp_month,
                exp_year: self.exp_year,
            }),
        }
    }
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
    /// Accounts that still charge cards saved as sources.
    #[serde(default, deserialize_with = "expandable_id")]
    pub default_source: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: HashMap<String, String>,
}

impl FullCustomer {
    /// The invoice default payment method, else the default source.
    pub fn default_payment_method(&self) -> Option<&str> {
        self.invoice_settings
            .as_ref()
            .and_then(|s| s.default_payment_method.as_deref())
            .or(self.default_source.as_deref())
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
