//! What undoes a payment: a charge refunded, a dispute lost, a credit note.

use serde::Deserialize;

use super::{expandable_id, lenient};

#[derive(Debug, Clone, Deserialize)]
pub struct Charge {
    pub id: String,
    pub amount: i64,
    #[serde(default)]
    pub amount_refunded: i64,
    #[serde(default, deserialize_with = "expandable_id")]
    pub payment_intent: Option<String>,
    /// Before `2025-03-31.basil`, the invoice the charge paid.
    #[serde(default, deserialize_with = "expandable_id")]
    pub invoice: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub status: String,
    #[serde(default, deserialize_with = "expandable_id")]
    pub payment_intent: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreditNote {
    pub id: String,
    #[serde(default, deserialize_with = "expandable_id")]
    pub invoice: Option<String>,
    /// What the note credits, tax included.
    #[serde(default, deserialize_with = "lenient")]
    pub total: Option<i64>,
}
