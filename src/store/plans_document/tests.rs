//! The Plans document's lists come out in the orders the page shows.

use super::{Document, Lines};

fn invoice(id: &str, created: i64) -> serde_json::Value {
    serde_json::json!({"id": id, "number": null, "status": "paid", "currency": "usd",
        "total": 100, "hosted_invoice_url": null, "invoice_pdf": null, "created": created})
}

fn entry(kind: &str, id: &str, created_at: i64) -> serde_json::Value {
    serde_json::json!({"kind": kind, "source_id": id, "amount": 1, "reason": null,
        "metadata": null, "actor": null, "created_at": created_at})
}

fn lot(id: &str, expires_at: i64) -> serde_json::Value {
    serde_json::json!({"source_type": "invoice", "source_id": id, "org_id": "org_a",
        "amount": 5, "remaining": 5, "granted_at": 1, "expires_at": expires_at})
}

fn feature(product: &str, key: &str, name: Option<&str>) -> serde_json::Value {
    serde_json::json!({"product_id": product, "lookup_key": key, "name": name})
}

fn meter(name: &str) -> serde_json::Value {
    serde_json::json!({"meter": name, "sent": 1, "pending": 0, "failed": 0})
}

#[test]
fn every_list_comes_out_in_the_order_the_page_shows() {
    let synced = serde_json::json!({
        "payment_method": null, "synced_at": null,
        "invoices": [invoice("in_a", 1), invoice("in_b", 3), invoice("in_c", 2),
            invoice("in_d", 3)],
        "plan_features": [feature("prod_b", "a", None), feature("prod_a", "z", Some("Z")),
            feature("prod_a", "y", Some("A")), feature("prod_a", "x", None)],
    });
    let own = serde_json::json!({
        "credit_balance": 0, "portal_visited": 0,
        "credit_entries": [entry("debit", "d_1", 5), entry("invoice", "in_1", 7),
            entry("debit", "d_2", 7), entry("adjustment", "adj_1", 7)],
        "expiring": [lot("in_2", 20), lot("in_1", 10), lot("in_0", 20)],
        "usage": {"starts": 0, "ends": 1, "meters": [meter("tokens"), meter("api_calls")]},
    });
    let lines = Lines {
        invoices: 10,
        credit_entries: 5,
    };
    let document = Document::parse("org_a", &own.to_string(), &synced.to_string(), lines).unwrap();

    let plans = document.into_plans();
    let ids = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
    let invoices: Vec<String> = plans.invoices.iter().map(|i| i.id.clone()).collect();
    assert_eq!(invoices, ids(vec!["in_d", "in_b", "in_c", "in_a"]));
    let features: Vec<String> = plans
        .plan_features
        .iter()
        .map(|f| format!("{}/{}", f.product_id, f.lookup_key))
        .collect();
    assert_eq!(
        features,
        ids(vec!["prod_a/x", "prod_a/y", "prod_a/z", "prod_b/a"])
    );
    let entries: Vec<String> = plans
        .credit_entries
        .iter()
        .map(|e| e.source_id.clone())
        .collect();
    assert_eq!(entries, ids(vec!["in_1", "d_2", "adj_1", "d_1"]));
    let lots: Vec<String> = plans.expiring.iter().map(|l| l.source_id.clone()).collect();
    assert_eq!(lots, ids(vec!["in_1", "in_0", "in_2"]));
    let meters: Vec<String> = plans.usage.meters.iter().map(|m| m.meter.clone()).collect();
    assert_eq!(meters, ids(vec!["api_calls", "tokens"]));
}

#[test]
fn a_kept_document_shows_only_the_newest_invoices_asked_for() {
    let synced = serde_json::json!({
        "invoices": [invoice("in_a", 1), invoice("in_b", 3), invoice("in_c", 2)],
    });
    let own = serde_json::json!({
        "credit_balance": 0, "portal_visited": false,
        "usage": {"starts": 0, "ends": 1},
    });
    let lines = Lines {
        invoices: 2,
        credit_entries: 0,
    };
    let plans = Document::parse("org_a", &own.to_string(), &synced.to_string(), lines)
        .unwrap()
        .into_plans();
    let invoices: Vec<&str> = plans.invoices.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(invoices, ["in_b", "in_c"]);
    assert!(plans.billing.subscriptions.is_empty() && plans.billing.payment_method.is_none());
}
