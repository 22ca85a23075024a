//! From Stripe objects to the rows we keep: pure functions, each taking the
//! version the write carries.

use super::{Change, CreditLine, PlanError};
use crate::domain::OrgId;
use crate::store::{
    CreditGrant, CustomerRow, EntitlementsRow, FeatureRow, InvoiceRow, PaymentMethodRow, PriceRow,
    ProductRow, Reversal, SubscriptionItemRow, SubscriptionRow, Version,
};
use crate::stripe::objects::{
    ActiveEntitlement, Charge, CheckoutSession, CreditNote, Dispute, Feature, FullCustomer,
    Invoice, PaymentMethod, Price, Product, Subscription,
};

/// A checkout links its customer to, and grants credits to, the organization
/// a secret key named (`metadata.org_id`). One named only by
/// `client_reference_id`, or by both differently, is left to be verified.
pub fn checkout_changes(session: &CheckoutSession) -> Result<Vec<Change>, PlanError> {
    let parse = |org: &str| {
        OrgId::parse(org).map_err(|e| PlanError::Invalid(format!("checkout {}: {e}", session.id)))
    };
    let org = match (session.trusted_org(), session.named_org()) {
        (Some(trusted), None) => parse(trusted)?,
        (Some(trusted), Some(named)) if named == trusted => parse(trusted)?,
        (_, Some(named)) => {
            return Ok(vec![Change::UnverifiedCheckout {
                session: session.id.clone(),
                org: parse(named)?,
                customer: session.customer.clone(),
            }]);
        }
        (None, None) => return Ok(Vec::new()), // not started for an organization
    };
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
            payment_intent: session.payment_intent.clone(),
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
        // An event says it was past due by then; a fetch says only that it
        // is now (`reconcile` reads the start from its invoices).
        past_due_since: (sub.status == "past_due" && !version.is_fetched())
            .then_some(version.created),
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
        created: invoice
            .created()
            .ok_or_else(|| PlanError::Invalid(format!("invoice {id} has no created")))?,
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
                payment_intent: invoice.payment_intent.clone(),
                lines,
            });
        }
    }
    Ok(changes)
}

/// A charge refunded (so far `amount_refunded` of it), a dispute lost, or
/// a credit note: what it undoes of the purchase it paid for, if any.
pub fn charge_reversal(charge: &Charge) -> Option<Reversal> {
    (charge.amount_refunded > 0).then(|| Reversal {
        id: charge.id.clone(),
        kind: "refund".to_owned(),
        payment_intent: charge.payment_intent.clone(),
        invoice: charge.invoice.clone(),
        part: charge.amount_refunded,
        whole: charge.amount,
    })
}

/// A dispute undoes its whole payment, once it is lost.
pub fn dispute_reversal(dispute: &Dispute) -> Option<Reversal> {
    (dispute.status == "lost").then(|| Reversal {
        id: dispute.id.clone(),
        kind: "dispute_lost".to_owned(),
        payment_intent: dispute.payment_intent.clone(),
        invoice: None,
        part: 1,
        whole: 1,
    })
}

/// A credit note undoes its total of its invoice's.
pub fn credit_note_reversal(note: &CreditNote) -> Option<Reversal> {
    Some(Reversal {
        id: note.id.clone(),
        kind: "credit_note".to_owned(),
        payment_intent: None,
        invoice: Some(note.invoice.clone()?),
        part: note.total.filter(|t| *t > 0)?,
        whole: 0,
    })
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
