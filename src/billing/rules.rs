//! What an event (or a fetched object) does to our state: pure functions
//! from Stripe objects to versioned rows. No I/O here.

use crate::domain::OrgId;
use crate::store::{
    CreditGrant, CustomerRow, EntitlementsRow, FeatureRow, InvoiceRow, PaymentMethodRow, PriceRow,
    ProductRow, SubscriptionItemRow, SubscriptionRow, Version,
};
use crate::stripe::objects::{
    ActiveEntitlement, CardSource, CheckoutSession, EntitlementSummary, Event, Feature,
    FullCustomer, Invoice, PaymentMethod, Plan, Price, Product, Subscription,
};

/// Every event type the service acts on: what `webhooks setup` subscribes
/// the endpoint to, and the only types `plan` applies (others are recorded
/// and acknowledged). The README lists the same.
pub const HANDLED_EVENTS: &[&str] = &[
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
    Subscription(SubscriptionRow),
    Invoice(InvoiceRow),
    /// Credits a paid invoice grants, from its lines' prices.
    InvoiceCredits {
        invoice: String,
        customer: String,
        lines: Vec<CreditLine>,
    },
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
    T::deserialize(&event.data.object).map_err(|e| PlanError::Payload {
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
        source: "sync".to_owned(),
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

pub fn checkout_changes(session: &CheckoutSession) -> Result<Vec<Change>, PlanError> {
    let Some(org) = session.org_id() else {
        return Ok(Vec::new()); // not started by us
    };
    let org = OrgId::parse(org)
        .map_err(|e| PlanError::Invalid(format!("checkout {}: {e}", session.id)))?;
    let mut changes = Vec::new();
    if let Some(customer) = &session.customer {
        changes.push(Change::LinkCustomer {
            org: org.clone(),
            customer: customer.clone(),
        });
    }
    let paid = matches!(
        session.payment_status.as_str(),
        "paid" | "no_payment_required"
    );
    let purchased = session
        .credits()
        .filter(|c| *c > 0 && paid && session.mode == "payment");
    if let Some(credits) = purchased {
        changes.push(Change::GrantCredits(CreditGrant {
            source_type: "checkout_session",
            source_id: session.id.clone(),
            org_id: Some(org.to_string()),
            customer_id: session.customer.clone(),
            amount: credits,
        }));
    }
    Ok(changes)
}

pub fn customer_changes(customer: &FullCustomer, version: Version, deleted: bool) -> Vec<Change> {
    let deleted = deleted || customer.deleted;
    let mut changes = vec![Change::Customer(CustomerRow {
        id: customer.id.clone(),
        org_id: customer.org_id().map(str::to_owned),
        email: customer.email.clone(),
        name: customer.name.clone(),
        default_payment_method: customer.default_payment_method().map(str::to_owned),
        deleted,
        version,
    })];
    if deleted {
        changes.push(Change::UnlinkCustomer(customer.id.clone()));
    } else if let Some(org) = customer.org_id().and_then(|o| OrgId::parse(o).ok()) {
        changes.push(Change::LinkCustomer {
            org,
            customer: customer.id.clone(),
        });
    }
    changes
}

pub fn subscription_row(
    sub: &Subscription,
    version: Version,
) -> Result<SubscriptionRow, PlanError> {
    let customer = sub
        .customer
        .clone()
        .ok_or_else(|| PlanError::Invalid(format!("subscription {} has no customer", sub.id)))?;
    let fetched_items = sub.items();
    let plan_name = fetched_items
        .first()
        .and_then(|item| item.price())
        .and_then(|price| price.nickname);
    let items: Vec<SubscriptionItemRow> = fetched_items
        .iter()
        .map(|item| {
            let price = item.price();
            let price = price.as_ref();
            SubscriptionItemRow {
                id: item.id.clone(),
                price_id: price.map(|p| p.id.clone()),
                product_id: price.and_then(|p| p.product.clone()),
                quantity: item.quantity,
                currency: price.map(|p| p.currency.clone()),
                unit_amount: price.and_then(|p| p.unit_amount),
                interval: price.and_then(|p| p.recurring.as_ref().map(|r| r.interval.clone())),
                interval_count: price.and_then(|p| p.recurring.as_ref().map(|r| r.interval_count)),
                current_period_start: item.current_period_start,
                current_period_end: item.current_period_end,
            }
        })
        .collect();
    let primary = items.first().cloned();
    let (current_period_start, current_period_end) = sub.period();
    Ok(SubscriptionRow {
        id: sub.id.clone(),
        customer_id: customer,
        status: sub.status.clone(),
        price_id: primary.as_ref().and_then(|i| i.price_id.clone()),
        product_id: primary.as_ref().and_then(|i| i.product_id.clone()),
        quantity: primary.as_ref().and_then(|i| i.quantity),
        currency: sub
            .currency
            .clone()
            .or_else(|| primary.as_ref().and_then(|i| i.currency.clone())),
        unit_amount: primary.as_ref().and_then(|i| i.unit_amount),
        interval: primary.as_ref().and_then(|i| i.interval.clone()),
        interval_count: primary.as_ref().and_then(|i| i.interval_count),
        plan_name,
        current_period_start,
        current_period_end,
        cancel_at_period_end: sub.cancel_at_period_end,
        cancel_at: sub.cancel_at,
        canceled_at: sub.canceled_at,
        ended_at: sub.ended_at,
        trial_start: sub.trial_start,
        trial_end: sub.trial_end,
        default_payment_method: sub.default_payment_method.clone(),
        created: sub.created,
        past_due_since: (sub.status == "past_due").then_some(version.created),
        items,
        version,
    })
}

pub fn invoice_changes(
    invoice: &Invoice,
    version: Version,
    deleted: bool,
) -> Result<Vec<Change>, PlanError> {
    // Upcoming-invoice previews have no id and are not stored.
    let Some(id) = invoice.id.clone() else {
        return Ok(Vec::new());
    };
    let customer = invoice
        .customer
        .clone()
        .ok_or_else(|| PlanError::Invalid(format!("invoice {id} has no customer")))?;
    let mut changes = vec![Change::Invoice(InvoiceRow {
        id: id.clone(),
        customer_id: customer.clone(),
        subscription_id: invoice.subscription_id().map(str::to_owned),
        number: invoice.number.clone(),
        status: invoice.status().map(str::to_owned),
        currency: invoice.currency.clone(),
        amount_due: invoice.amount_due,
        amount_paid: invoice.amount_paid(),
        amount_remaining: invoice.amount_remaining(),
        total: invoice.total,
        hosted_invoice_url: invoice.hosted_invoice_url.clone(),
        invoice_pdf: invoice.invoice_pdf.clone(),
        period_start: invoice.period_start,
        period_end: invoice.period_end,
        created: invoice.created,
        deleted,
        version,
    })];
    if invoice.status() == Some("paid") {
        let lines: Vec<CreditLine> = invoice
            .lines
            .iter()
            .flat_map(|list| &list.data)
            .map(|line| CreditLine {
                price_id: line.price_id().map(str::to_owned),
                quantity: line.quantity.unwrap_or(1),
                credits_per_unit: line.credits_per_unit(),
            })
            .collect();
        if !lines.is_empty() {
            changes.push(Change::InvoiceCredits {
                invoice: id,
                customer,
                lines,
            });
        }
    }
    Ok(changes)
}

pub fn payment_method_row(method: &PaymentMethod, version: Version) -> PaymentMethodRow {
    let card = method.card.as_ref();
    PaymentMethodRow {
        id: method.id.clone(),
        customer_id: method.customer.clone(),
        kind: method.kind.clone(),
        brand: card.and_then(|c| c.brand.clone()),
        last4: card.and_then(|c| c.last4.clone()),
        exp_month: card.and_then(|c| c.exp_month),
        exp_year: card.and_then(|c| c.exp_year),
        version,
    }
}

/// The customer's active features: the lookup keys, sorted and once each.
pub fn entitlements_row(
    customer: &str,
    active: &[ActiveEntitlement],
    version: Version,
) -> EntitlementsRow {
    let mut keys: Vec<&str> = active.iter().map(|e| e.lookup_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    EntitlementsRow {
        id: customer.to_owned(),
        features: serde_json::to_string(&keys).unwrap_or_else(|_| "[]".to_owned()),
        version,
    }
}

pub fn feature_row(feature: &Feature, version: Version) -> FeatureRow {
    FeatureRow {
        id: feature.id.clone(),
        lookup_key: feature.lookup_key.clone(),
        name: feature.name.clone(),
        active: feature.active,
        version,
    }
}

pub fn product_row(product: &Product, version: Version, deleted: bool) -> ProductRow {
    ProductRow {
        id: product.id.clone(),
        name: product.name.clone(),
        description: product.description.clone(),
        active: product.active && !deleted,
        deleted: deleted || product.deleted,
        version,
    }
}

pub fn price_row(price: &Price, version: Version, deleted: bool) -> PriceRow {
    PriceRow {
        id: price.id.clone(),
        product_id: price.product.clone(),
        active: price.active && !deleted,
        currency: price.currency.clone(),
        unit_amount: price.unit_amount,
        kind: price.kind.clone(),
        interval: price.recurring.as_ref().map(|r| r.interval.clone()),
        interval_count: price.recurring.as_ref().map(|r| r.interval_count),
        nickname: price.nickname.clone(),
        lookup_key: price.lookup_key.clone(),
        credits: price.credits(),
        deleted: deleted || price.deleted,
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, object: serde_json::Value) -> Event {
        serde_json::from_value(serde_json::json!({
            "id": "evt_1", "type": kind, "created": 1, "data": {"object": object},
        }))
        .unwrap()
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
