//! Events built from Stripe's own example objects (tests/fixtures/stripe_objects.json).

use std::sync::LazyLock;

use serde_json::{Value, json};

static OBJECTS: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../fixtures/stripe_objects.json")).unwrap()
});

pub fn object(name: &str) -> Value {
    OBJECTS["resources"][name].clone()
}

/// An event envelope, as Stripe delivers it.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id, "object": "event", "api_version": "2025-09-30.clover", "created": created,
        "type": kind, "data": {"object": object, "previous_attributes": {}},
        "livemode": false, "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
    })
}

/// A subscription in the current (basil and later) shape: periods on items.
pub fn subscription(id: &str, customer: &str, status: &str) -> Value {
    let mut sub = object("subscription");
    sub["id"] = id.into();
    sub["customer"] = customer.into();
    sub["status"] = status.into();
    sub["created"] = 1_700_000_000.into();
    sub["cancel_at"] = Value::Null;
    sub["canceled_at"] = Value::Null;
    sub["ended_at"] = Value::Null;
    sub["trial_end"] = Value::Null;
    sub["cancel_at_period_end"] = false.into();
    let item = &mut sub["items"]["data"][0];
    item["id"] = format!("si_{id}").into();
    item["subscription"] = id.into();
    item["price"]["id"] = "price_pro_monthly".into();
    item["price"]["product"] = "prod_pro".into();
    item["price"]["unit_amount"] = 4900.into();
    item["quantity"] = 3.into();
    item["current_period_start"] = 1_700_000_000.into();
    item["current_period_end"] = 1_702_592_000.into();
    sub
}

/// The same subscription as API versions before basil render it:
/// periods on the subscription, none on items.
pub fn legacy_subscription(id: &str, customer: &str, status: &str) -> Value {
    let mut sub = subscription(id, customer, status);
    let item = sub["items"]["data"][0].as_object_mut().unwrap();
    item.remove("current_period_start");
    item.remove("current_period_end");
    sub["current_period_start"] = 1_700_000_000.into();
    sub["current_period_end"] = 1_702_592_000.into();
    sub
}

pub fn invoice(id: &str, customer: &str, subscription: &str, status: &str, created: i64) -> Value {
    let mut inv = object("invoice");
    inv["id"] = id.into();
    inv["customer"] = customer.into();
    inv["status"] = status.into();
    inv["created"] = created.into();
    inv["number"] = format!("LB-{}", &id[3..]).into();
    inv["hosted_invoice_url"] = format!("https://invoice.stripe.com/i/{id}").into();
    inv["invoice_pdf"] = format!("https://pay.stripe.com/invoice/{id}/pdf").into();
    inv["amount_paid"] = if status == "paid" { 4900 } else { 0 }.into();
    inv["total"] = 4900.into();
    inv["amount_due"] = 4900.into();
    inv["subscription"] = Value::Null;
    inv["parent"] = json!({"type": "subscription_details", "quote_details": null,
        "subscription_details": {"metadata": {}, "subscription": subscription}});
    inv
}

pub fn payment_method(id: &str, customer: Option<&str>, last4: &str) -> Value {
    let mut pm = object("payment_method");
    pm["id"] = id.into();
    pm["customer"] = customer.map(Value::from).unwrap_or(Value::Null);
    pm["card"]["last4"] = last4.into();
    pm["card"]["brand"] = "visa".into();
    pm
}

pub fn customer(id: &str, org: Option<&str>, default_pm: Option<&str>) -> Value {
    let mut cus = object("customer");
    cus["id"] = id.into();
    cus["metadata"] = match org {
        Some(org) => json!({"org_id": org}),
        None => json!({}),
    };
    cus["invoice_settings"]["default_payment_method"] =
        default_pm.map(Value::from).unwrap_or(Value::Null);
    cus
}

pub fn checkout(
    id: &str,
    org: &str,
    customer: &str,
    mode: &str,
    payment_status: &str,
    credits: Option<i64>,
) -> Value {
    let mut session = object("checkout.session");
    session["id"] = id.into();
    session["client_reference_id"] = org.into();
    session["customer"] = customer.into();
    session["mode"] = mode.into();
    session["status"] = "complete".into();
    session["payment_status"] = payment_status.into();
    session["metadata"] = match credits {
        Some(c) => json!({"org_id": org, "credits": c.to_string()}),
        None => json!({"org_id": org}),
    };
    session
}

pub fn product(id: &str, name: &str) -> Value {
    let mut p = object("product");
    p["id"] = id.into();
    p["name"] = name.into();
    p
}
