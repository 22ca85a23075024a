//! The rows of Stripe state we keep, each declared once: its fields and the
//! columns they fill. The declaration gives the row its upsert (with the
//! version guard), its fingerprint and its `SELECT` of the stored fingerprint,
//! so a column is named in exactly one place.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::Version;
use super::row::{BOOKKEEPING, SyncedRow, UpsertRow, synced_table};
use super::upsert::{Update, upsert_sql};
use crate::domain::unix_now;
use crate::store::sets::{Column, InsertRows, ListQuery, OwnedRows, Values, repeated};

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    pub id: String,
    pub org_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionItemRow {
    pub id: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    /// The price's nickname (or a pre-2018 plan's name): shown when the
    /// product's name is not known.
    pub plan_name: Option<String>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub default_payment_method: Option<String>,
    pub created: i64,
    /// When it became `past_due`: an event's time, or the oldest unpaid
    /// invoice a fetch found (never the fetch's time); the stored row keeps
    /// the earliest while it stays so.
    pub past_due_since: Option<i64>,
    pub items: Vec<SubscriptionItemRow>,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceRow {
    pub id: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub number: Option<String>,
    pub status: Option<String>,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub total: i64,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub created: i64,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentMethodRow {
    pub id: String,
    pub customer_id: Option<String>,
    pub kind: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProductRow {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub active: bool,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceRow {
    pub id: String,
    pub product_id: Option<String>,
    pub active: bool,
    pub currency: String,
    pub unit_amount: Option<i64>,
    pub kind: Option<String>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    pub nickname: Option<String>,
    pub lookup_key: Option<String>,
    pub credits: Option<i64>,
    pub deleted: bool,
    pub version: Version,
}

/// A customer's active features (Stripe's active entitlement summary),
/// replaced whole by each newer summary.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitlementsRow {
    /// The customer.
    pub id: String,
    /// Lookup keys, sorted, as a JSON array.
    pub features: String,
    pub version: Version,
}

/// An entitlement feature (`entitlements.feature`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    pub id: String,
    pub lookup_key: String,
    pub name: Option<String>,
    pub active: bool,
    pub version: Version,
}

synced_table! {
    CustomerRow => "customers" {
        "org_id": org_id,
        "email": email,
        "name": name,
        "default_payment_method": default_payment_method,
        "deleted": deleted,
    }
    // An event without the metadata must not unlink what checkout linked.
    updates: [Update::KeepWhenNull("org_id")]
}

synced_table! {
    SubscriptionRow => "subscriptions" {
        "customer_id": customer_id,
        "status": status,
        "price_id": price_id,
        "product_id": product_id,
        "quantity": quantity,
        "currency": currency,
        "unit_amount": unit_amount,
        "recurring_interval": interval,
        "interval_count": interval_count,
        "plan_name": plan_name,
        "current_period_start": current_period_start,
        "current_period_end": current_period_end,
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": cancel_at,
        "canceled_at": canceled_at,
        "ended_at": ended_at,
        "trial_start": trial_start,
        "trial_end": trial_end,
        "default_payment_method": default_payment_method,
        "created": created,
        "past_due_since": past_due_since,
    }
    // Past due since the earliest start known while it stays so: an event's
    // time, or the oldest unpaid invoice a fetch found.
    updates: [Update::With(
        "past_due_since",
        "CASE WHEN excluded.status <> 'past_due' THEN NULL \
         WHEN subscriptions.status = 'past_due' AND subscriptions.past_due_since IS NOT NULL \
         AND (excluded.past_due_since IS NULL \
           OR subscriptions.past_due_since < excluded.past_due_since) \
         THEN subscriptions.past_due_since ELSE excluded.past_due_since END",
    )]
    derived: [past_due_since]
}

synced_table! {
    InvoiceRow => "invoices" {
        "customer_id": customer_id,
        "subscription_id": subscription_id,
        "number": number,
        "status": status,
        "currency": currency,
        "amount_due": amount_due,
        "amount_paid": amount_paid,
        "amount_remaining": amount_remaining,
        "total": total,
        "hosted_invoice_url": hosted_invoice_url,
        "invoice_pdf": invoice_pdf,
        "period_start": period_start,
        "period_end": period_end,
        "created": created,
        "deleted": deleted,
    }
}

synced_table! {
    PaymentMethodRow => "payment_methods" {
        "customer_id": customer_id,
        "type": kind,
        "brand": brand,
        "last4": last4,
        "exp_month": exp_month,
        "exp_year": exp_year,
    }
}

synced_table! {
    ProductRow => "products" {
        "name": name,
        "description": description,
        "active": active,
        "deleted": deleted,
    }
}

synced_table! {
    PriceRow => "prices" {
        "product_id": product_id,
        "active": active,
        "currency": currency,
        "unit_amount": unit_amount,
        "type": kind,
        "recurring_interval": interval,
        "interval_count": interval_count,
        "nickname": nickname,
        "lookup_key": lookup_key,
        "credits": credits,
        "deleted": deleted,
    }
}

synced_table! {
    EntitlementsRow => "customer_entitlements" {
        "features": features,
    }
}

synced_table! {
    FeatureRow => "features" {
        "lookup_key": lookup_key,
        "name": name,
        "active": active,
    }
}

impl SubscriptionItemRow {
    /// Items are part of their subscription's snapshot, not versioned alone:
    /// replaced with it (see `OwnedRows`).
    pub(super) fn owned_by_subscriptions() -> &'static OwnedRows {
        static ITEMS: LazyLock<OwnedRows> = LazyLock::new(|| {
            let columns = [
                "id",
                "subscription_id",
                "price_id",
                "product_id",
                "quantity",
                "currency",
                "unit_amount",
                "recurring_interval",
                "interval_count",
                "current_period_start",
                "current_period_end",
            ];
            OwnedRows::new(
                upsert_sql("subscription_items", &columns, &[], false),
                "subscription_id",
            )
        });
        &ITEMS
    }

    /// The items of `subscriptions`, as the columns of `owned_by_subscriptions`;
    /// an item id given twice (one statement writes a row once) keeps its
    /// last subscription.
    pub(super) fn columns_of(subscriptions: &[SubscriptionRow]) -> Vec<Values> {
        let items: BTreeMap<&str, (&str, &Self)> = subscriptions
            .iter()
            .flat_map(|s| s.items.iter().map(move |item| (s.id.as_str(), item)))
            .map(|(subscription, item)| (item.id.as_str(), (subscription, item)))
            .collect();
        let items: Vec<(&str, &Self)> = items.into_values().collect();
        let subscriptions: Vec<String> = items.iter().map(|(s, _)| (*s).to_owned()).collect();
        vec![
            Column::column(items.iter().map(|(_, i)| &i.id)),
            Column::column(subscriptions.iter()),
            Column::column(items.iter().map(|(_, i)| &i.price_id)),
            Column::column(items.iter().map(|(_, i)| &i.product_id)),
            Column::column(items.iter().map(|(_, i)| &i.quantity)),
            Column::column(items.iter().map(|(_, i)| &i.currency)),
            Column::column(items.iter().map(|(_, i)| &i.unit_amount)),
            Column::column(items.iter().map(|(_, i)| &i.interval)),
            Column::column(items.iter().map(|(_, i)| &i.interval_count)),
            Column::column(items.iter().map(|(_, i)| &i.current_period_start)),
            Column::column(items.iter().map(|(_, i)| &i.current_period_end)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_the_version() {
        let mut row = ProductRow {
            id: "prod_1".into(),
            name: Some("Pro".into()),
            description: None,
            active: true,
            deleted: false,
            version: Version::default(),
        };
        let before = row.content_hash();
        row.version.created = 42;
        assert_eq!(row.content_hash(), before);
        row.name = Some("Team".into());
        assert_ne!(row.content_hash(), before);
    }
}
