//! Customers, their payment methods and card sources, and checkout sessions.

use std::collections::HashMap;

use serde::Deserialize;

use super::{expandable_id, metadata};

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
    /// The payment of a `payment`-mode session: what a refund names.
    #[serde(default, deserialize_with = "expandable_id")]
    pub payment_intent: Option<String>,
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: HashMap<String, String>,
}

impl CheckoutSession {
    /// The organization a secret key started the session for
    /// (`metadata.org_id`, which no visitor can set).
    pub fn trusted_org(&self) -> Option<&str> {
        self.metadata.get("org_id").map(String::as_str)
    }

    /// The organization the session names (`client_reference_id`): a
    /// Payment Link or Pricing Table lets whoever opens it choose this.
    pub fn named_org(&self) -> Option<&str> {
        self.client_reference_id.as_deref()
    }

    /// Credits bought in a `mode=payment` session (`metadata.credits`).
    pub fn credits(&self) -> Option<i64> {
        self.metadata.get("credits")?.trim().parse().ok()
    }
}
