//! Subscriptions and invoices, in every shape since 2017.

use std::collections::HashMap;

use serde::Deserialize;

use super::{List, Plan, Price};
use super::{expandable_id, lenient, metadata};

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
    #[serde(default, deserialize_with = "lenient")]
    pub cancel_at: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub canceled_at: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub ended_at: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub trial_start: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
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

    /// Credits one unit grants (0 for a price without `metadata.credits`),
    /// when the payload embeds the price or plan; `None` when it only names it.
    pub fn credits_per_unit(&self) -> Option<i64> {
        match (&self.price, &self.plan) {
            (Some(price), _) => Some(price.credits().unwrap_or(0)),
            (None, Some(plan)) => Some(plan.as_price().credits().unwrap_or(0)),
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
    #[serde(default, deserialize_with = "lenient")]
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
    #[serde(default, deserialize_with = "lenient")]
    pub hosted_invoice_url: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub invoice_pdf: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub period_start: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub period_end: Option<i64>,
    /// Named `date` before `2019-03-14`; read through `created()`, so a
    /// payload carrying both names reads (the newer wins).
    #[serde(default, deserialize_with = "lenient")]
    created: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    date: Option<i64>,
    #[serde(default, deserialize_with = "expandable_id")]
    subscription: Option<String>,
    /// Before `2025-03-31.basil`, the payment that paid the invoice.
    #[serde(default, deserialize_with = "expandable_id")]
    pub payment_intent: Option<String>,
    parent: Option<InvoiceParent>,
    pub lines: Option<List<InvoiceLine>>,
    /// When it is due: set for invoices sent to be paid by hand.
    #[serde(default, deserialize_with = "lenient")]
    pub due_date: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub status_transitions: Option<StatusTransitions>,
    /// Before `2018-11-08` an invoice had no `status`, only these.
    paid: Option<bool>,
    forgiven: Option<bool>,
    closed: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatusTransitions {
    pub finalized_at: Option<i64>,
}

impl Invoice {
    /// When this invoice, unpaid, began to be owed: its due date, else when
    /// it was finalized (and first charged), else its creation.
    pub fn owed_since(&self) -> i64 {
        self.due_date
            .or_else(|| self.status_transitions.as_ref()?.finalized_at)
            .or(self.created())
            .unwrap_or_default()
    }

    /// When it was created, by either name.
    pub fn created(&self) -> Option<i64> {
        self.created.or(self.date)
    }

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
