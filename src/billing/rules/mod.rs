//! What an event (or a fetched object) does to our state: pure functions
//! from Stripe objects to versioned rows. No I/O here.

use crate::domain::OrgId;
use crate::store::{
    CreditGrant, CustomerRow, EntitlementsRow, FETCHED, FeatureRow, InvoiceRow, PaymentMethodRow,
    PriceRow, ProductRow, Reversal, SubscriptionRow, Version,
};
use crate::stripe::objects::{
    CardSource, EntitlementSummary, Event, Feature, FullCustomer, Invoice, PaymentMethod, Plan,
    Price, Product, Subscription,
};

mod from_stripe;

pub use from_stripe::{
    charge_reversal, checkout_changes, credit_note_reversal, customer_changes, dispute_reversal,
    entitlements_row, feature_row, invoice_changes, payment_method_row, price_row, product_row,
    subscription_row,
};

/// Every event type the service acts on: what `webhooks setup` subscribes
/// the endpoint to, and the only types `plan` applies (others are recorded
/// and acknowledged). docs/api.md lists the same.
pub const HANDLED_EVENTS: &[&str] = &[
    "charge.dispute.closed",
    "charge.refunded",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.source.created",
    "customer.source.updated",
    "customer.source.deleted",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
    "customer.subscription.trial_will_end",
    "credit_note.created",
    "entitlements.active_entitlement_summary.updated",
    "entitlements.feature.created",
    "entitlements.feature.updated",
    "invoice.created",
    "invoice.deleted",
    "invoice.finalization_failed",
    "invoice.finalized",
    "invoice.marked_uncollectible",
    "invoice.overdue",
    "invoice.paid",
    "invoice.payment_action_required",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
    "invoice.sent",
    "invoice.updated",
    "invoice.voided",
    "payment_method.attached",
    "payment_method.automatically_updated",
    "payment_method.detached",
    "payment_method.updated",
    "plan.created",
    "plan.deleted",
    "plan.updated",
    "price.created",
    "price.deleted",
    "price.updated",
    "product.created",
    "product.deleted",
    "product.updated",
];

/// One write an event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Customer(CustomerRow),
    /// The customer's active features, replaced whole.
    Entitlements(EntitlementsRow),
    Feature(FeatureRow),
    /// A deleted customer can no longer open the portal.
    UnlinkCustomer(String),
    /// First link wins: never moves a customer between organizations.
    LinkCustomer {
        org: OrgId,
        customer: String,
    },
    /// A completed checkout that names an organization only by the
    /// `client_reference_id` anyone may choose: links only if this service
    /// created the session for that organization, else is flagged.
    UnverifiedCheckout {
        session: String,
        org: OrgId,
        customer: Option<String>,
    },
    Subscription(SubscriptionRow),
    Invoice(InvoiceRow),
    /// Credits a paid invoice grants, from its lines' prices.
    InvoiceCredits {
        invoice: String,
        customer: String,
        /// The payment that paid it (API versions before basil say).
        payment_intent: Option<String>,
        lines: Vec<CreditLine>,
    },
    /// A purchase undone, in part or whole: its credits are taken back.
    Reversal(Reversal),
    PaymentMethod(PaymentMethodRow),
    Product(ProductRow),
    Price(PriceRow),
    GrantCredits(CreditGrant),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreditLine {
    pub price_id: Option<String>,
    pub quantity: i64,
    /// Known when the payload embeds the price (API versions before basil).
    pub credits_per_unit: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{kind} payload is not a valid {object}: {reason}")]
    Payload {
        kind: String,
        object: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Change {
    /// The Stripe customer the change is about, if it names one.
    pub fn customer(&self) -> Option<&str> {
        match self {
            Change::Customer(row) => Some(&row.id),
            Change::Entitlements(row) => Some(&row.id),
            Change::UnlinkCustomer(customer)
            | Change::LinkCustomer { customer, .. }
            | Change::InvoiceCredits { customer, .. } => Some(customer),
            Change::Subscription(row) => Some(&row.customer_id),
            Change::Invoice(row) => Some(&row.customer_id),
            Change::PaymentMethod(row) => row.customer_id.as_deref(),
            Change::UnverifiedCheckout { customer, .. } => customer.as_deref(),
            Change::GrantCredits(grant) => grant.customer_id.as_deref(),
            Change::Feature(_) | Change::Product(_) | Change::Price(_) | Change::Reversal(_) => {
                None
            }
        }
    }
}

/// The changes `event` asks for when its mode is the key's (`live`): an
/// event of the other mode asks for none, so it is recorded and
/// acknowledged, never applied.
pub fn plan_for_key(event: &Event, live: bool) -> Result<Vec<Change>, PlanError> {
    if event.livemode != live {
        log::warn!(
            "event {} ({}) is a {} event but the key is a {} key: recorded, not applied",
            event.id,
            event.kind,
            mode(event.livemode),
            mode(live)
        );
        return Ok(Vec::new());
    }
    plan(event)
}

fn reversal(undone: Option<Reversal>) -> Vec<Change> {
    undone.map(Change::Reversal).into_iter().collect()
}

fn mode(live: bool) -> &'static str {
    if live { "live-mode" } else { "test-mode" }
}

/// The changes `event` asks for; types not in `HANDLED_EVENTS` ask for none.
pub fn plan(event: &Event) -> Result<Vec<Change>, PlanError> {
    let kind = event.kind.as_str();
    if !HANDLED_EVENTS.contains(&kind) {
        return Ok(Vec::new());
    }
    let (family, action) = kind.rsplit_once('.').unwrap_or((kind, ""));
    let removed = matches!(action, "deleted");
    match family {
        "checkout.session" => checkout_changes(&parse(event, "checkout session")?),
        "charge" => Ok(reversal(charge_reversal(&parse(event, "charge")?))),
        "charge.dispute" => Ok(reversal(dispute_reversal(&parse(event, "dispute")?))),
        "credit_note" => Ok(reversal(credit_note_reversal(&parse(
            event,
            "credit note",
        )?))),
        "customer" => {
            let customer: FullCustomer = parse(event, "customer")?;
            Ok(customer_changes(
                &customer,
                event_version(event, 0),
                removed,
            ))
        }
        "customer.source" => card_source_changes(event, removed),
        "entitlements.active_entitlement_summary" => {
            let summary: EntitlementSummary = parse(event, "active entitlement summary")?;
            Ok(vec![Change::Entitlements(entitlements_row(
                &summary.customer,
                &summary.entitlements.data,
                event_version(event, 0),
            ))])
        }
        "entitlements.feature" => {
            let feature: Feature = parse(event, "feature")?;
            Ok(vec![Change::Feature(feature_row(
                &feature,
                event_version(event, 0),
            ))])
        }
        "customer.subscription" => {
            let subscription: Subscription = parse(event, "subscription")?;
            let version = event_version(event, subscription_status_rank(&subscription.status));
            Ok(vec![Change::Subscription(subscription_row(
                &subscription,
                version,
            )?)])
        }
        "invoice" => {
            let invoice: Invoice = parse(event, "invoice")?;
            let rank = invoice_status_rank(invoice.status());
            invoice_changes(&invoice, event_version(event, rank), removed)
        }
        "payment_method" => {
            let method: PaymentMethod = parse(event, "payment method")?;
            Ok(vec![Change::PaymentMethod(payment_method_row(
                &method,
                event_version(event, 0),
            ))])
        }
        "product" => {
            let product: Product = parse(event, "product")?;
            Ok(vec![Change::Product(product_row(
                &product,
                event_version(event, 0),
                removed,
            ))])
        }
        "price" => {
            let price: Price = parse(event, "price")?;
            Ok(vec![Change::Price(price_row(
                &price,
                event_version(event, 0),
                removed,
            ))])
        }
        // A plan is the price of the same id.
        "plan" => {
            let plan: Plan = parse(event, "plan")?;
            Ok(vec![Change::Price(price_row(
                &plan.as_price(),
                event_version(event, 0),
                removed,
            ))])
        }
        _ => Ok(Vec::new()),
    }
}

/// A card saved as a source is a payment method to us; other source kinds
/// (bank accounts, sources of other types) are not shown.
fn card_source_changes(event: &Event, removed: bool) -> Result<Vec<Change>, PlanError> {
    let source: CardSource = parse(event, "customer source")?;
    if source.object != "card" {
        return Ok(Vec::new());
    }
    let mut row = payment_method_row(&source.as_payment_method(), event_version(event, 0));
    if removed {
        row.customer_id = None;
    }
    Ok(vec![Change::PaymentMethod(row)])
}

fn parse<T: serde::de::DeserializeOwned>(
    event: &Event,
    object: &'static str,
) -> Result<T, PlanError> {
    serde_json::from_str(event.data.object.get()).map_err(|e| PlanError::Payload {
        kind: event.kind.clone(),
        object,
        reason: e.to_string(),
    })
}

/// Same-second ties: `created` < any update < `deleted`/`detached`, after
/// the object's own state rank (multiplied so state dominates).
fn event_version(event: &Event, state_rank: i64) -> Version {
    let kind = event.kind.as_str();
    let kind_rank = if kind.ends_with(".created") {
        0
    } else if kind.ends_with(".deleted") || kind.ends_with(".detached") {
        2
    } else {
        1
    };
    Version {
        created: event.created,
        rank: state_rank * 10 + kind_rank,
        source: event.id.clone(),
    }
}

/// The version of an object fetched from Stripe at `fetched_at`: newer than
/// every event created before the fetch.
pub fn fetched_version(fetched_at: i64, state_rank: i64) -> Version {
    Version {
        created: fetched_at,
        rank: state_rank * 10 + 1,
        source: FETCHED.to_owned(),
    }
}

/// Later lifecycle states outrank earlier ones; terminal states rank highest
/// so a same-second update cannot resurrect a canceled subscription.
pub fn subscription_status_rank(status: &str) -> i64 {
    match status {
        "incomplete" => 0,
        "trialing" => 1,
        "active" => 2,
        "past_due" => 3,
        "unpaid" => 4,
        "paused" => 5,
        "incomplete_expired" => 6,
        "canceled" => 7,
        _ => 0,
    }
}

pub fn invoice_status_rank(status: Option<&str>) -> i64 {
    match status {
        Some("open") => 1,
        Some("uncollectible") => 2,
        Some("paid") => 3,
        Some("void") => 4,
        _ => 0, // draft
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, object: serde_json::Value) -> Event {
        let event = serde_json::json!({
            "id": "evt_1", "type": kind, "created": 1, "data": {"object": object},
        });
        serde_json::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn every_handled_type_is_read_and_no_other() {
        for kind in HANDLED_EVENTS {
            // An empty object is not a valid one of any kind: the type was read.
            let planned = plan(&event(kind, serde_json::json!({})));
            assert!(planned.is_err(), "{kind} is listed but not planned");
        }
        for kind in [
            "invoice.upcoming",
            "customer.discount.created",
            "charge.succeeded",
        ] {
            assert!(
                plan(&event(kind, serde_json::json!({})))
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[test]
    fn the_handled_list_has_no_repeats() {
        let mut kinds = HANDLED_EVENTS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), HANDLED_EVENTS.len());
    }
}
