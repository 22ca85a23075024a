//! Everything the Plans tab shows of one organization, read in one statement
//! that answers one row of JSON: the subscriptions, the card, the credit
//! balance, the newest invoices, the subscribed products' features, the
//! credits ledger's newest entries, the lots that expire, and this period's
//! usage per meter. One round trip instead of one per part: on SQLite each
//! statement and each row is a hand-off to a connection's thread, and those
//! hand-offs, not the reads, were what a page cost.
//!
//! The text is written once; `{object}`, `{list}`…`{end_list}`, `{embed}`
//! and `{as_text}` stand for each backend's JSON functions (SQLite drops a JSON
//! value's type when it leaves a subquery, so `json(…)` gives it back).

use std::sync::LazyLock;

use serde::{Deserialize, Deserializer};

use super::credits::AVAILABLE_BALANCE;
use super::{
    BillingState, Card, CreditEntry, CreditLot, InvoiceLine, MeterUsage, Plans, ProductFeature,
    Store, StoreError, SubscriptionView, with_pool,
};
use crate::domain::calendar_month;

/// How many of the newest lines a document holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lines {
    pub invoices: i64,
    pub credit_entries: i64,
}

impl Lines {
    pub const NONE: Self = Self {
        invoices: 0,
        credit_entries: 0,
    };
}

/// The usage of the billing period that holds the time of the read: the
/// live subscription's current period, else the calendar month (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PeriodUsage {
    pub starts: i64,
    pub ends: i64,
    /// Per meter, by name.
    #[serde(default)]
    pub meters: Vec<MeterUsage>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Document {
    #[serde(default)]
    subscriptions: Vec<SubscriptionView>,
    payment_method: Option<Card>,
    credit_balance: i64,
    synced_at: Option<i64>,
    #[serde(deserialize_with = "flag")]
    portal_visited: bool,
    #[serde(default)]
    invoices: Vec<InvoiceLine>,
    #[serde(default)]
    plan_features: Vec<ProductFeature>,
    #[serde(default)]
    credit_entries: Vec<CreditEntry>,
    #[serde(default)]
    expiring: Vec<CreditLot>,
    usage: PeriodUsage,
}

impl Document {
    /// The lists in the orders the page shows them. The statement leaves
    /// them unordered: on PostgreSQL 15 an aggregate's own `ORDER BY` sorts
    /// again what its subquery already chose, with a sort set up for every
    /// list at every read.
    pub fn into_plans(mut self) -> Plans {
        self.invoices
            .sort_unstable_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        self.plan_features.sort_unstable_by(|a, b| {
            (&a.product_id, &a.name, &a.lookup_key).cmp(&(&b.product_id, &b.name, &b.lookup_key))
        });
        self.credit_entries.sort_unstable_by(|a, b| {
            (b.created_at, &b.kind, &b.source_id).cmp(&(a.created_at, &a.kind, &a.source_id))
        });
        self.expiring.sort_unstable_by(|a, b| {
            (a.expires_at, &a.source_type, &a.source_id).cmp(&(
                b.expires_at,
                &b.source_type,
                &b.source_id,
            ))
        });
        self.usage
            .meters
            .sort_unstable_by(|a, b| a.meter.cmp(&b.meter));
        Plans {
            billing: BillingState {
                subscriptions: self.subscriptions,
                payment_method: self.payment_method,
                credit_balance: self.credit_balance,
                synced_at: self.synced_at,
                portal_visited: self.portal_visited,
            },
            invoices: self.invoices,
            plan_features: self.plan_features,
            credit_entries: self.credit_entries,
            expiring: self.expiring,
            usage: self.usage,
        }
    }
}

/// A boolean as either backend writes it into JSON: `true` on PostgreSQL,
/// `1` on SQLite, which has no booleans.
pub(super) fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flag::deserialize(deserializer)? {
        Flag::Bool(b) => b,
        Flag::Int(n) => n != 0,
    })
}

/// `$1` the organization, `$2` now, `$3` its Stripe customer (or NULL), `$4`
/// and `$5` how many invoices and ledger entries, `$6` and `$7` the calendar
/// month holding now. The customer's subscriptions, customer row and cards
/// are each read once (`subs`, `customer`, `cards`) and used by every part
/// that needs them: on PostgreSQL each scan in a statement costs its own
/// start-up at every run, whatever it finds.
const TEMPLATE: &str = "WITH subs AS ( \
   SELECT id, status, price_id, product_id, plan_name, quantity, currency, unit_amount, \
     recurring_interval, interval_count, current_period_start, current_period_end, \
     cancel_at_period_end, cancel_at, canceled_at, trial_end, default_payment_method, \
     created, updated_at \
   FROM subscriptions WHERE customer_id = $3), \
 customer AS (SELECT default_payment_method, updated_at FROM customers WHERE id = $3), \
 cards AS (SELECT id, brand, last4, exp_month, exp_year, event_created, updated_at \
   FROM payment_methods WHERE customer_id = $3), \
 period AS ( \
   SELECT COALESCE(s.current_period_start, $6) AS starts, COALESCE(s.current_period_end, $7) AS ends \
   FROM (SELECT 1 AS one) AS base LEFT JOIN ( \
     SELECT current_period_start, current_period_end FROM subs \
     WHERE current_period_start <= $2 AND current_period_end > $2 \
     ORDER BY created DESC, id DESC LIMIT 1) AS s ON TRUE) \
 SELECT ({object}( \
 'subscriptions', {embed}((SELECT {list}{object}( \
     'id', s.id, 'status', s.status, 'price_id', s.price_id, 'product_id', s.product_id, \
     'product_name', COALESCE(p.name, s.plan_name), 'quantity', s.quantity, \
     'currency', s.currency, 'unit_amount', s.unit_amount, \
     'recurring_interval', s.recurring_interval, 'interval_count', s.interval_count, \
     'current_period_start', s.current_period_start, 'current_period_end', s.current_period_end, \
     'cancel_at_period_end', s.cancel_at_period_end, 'cancel_at', s.cancel_at, \
     'canceled_at', s.canceled_at, 'trial_end', s.trial_end, \
     'default_payment_method', s.default_payment_method) \
     ORDER BY s.created DESC, s.id DESC{end_list} \
   FROM subs s LEFT JOIN products p ON p.id = s.product_id)), \
 'payment_method', {embed}((SELECT {object}('id', id, 'brand', brand, 'last4', last4, \
     'exp_month', exp_month, 'exp_year', exp_year) \
   FROM cards ORDER BY CASE WHEN id = COALESCE( \
     (SELECT default_payment_method FROM customer), \
     (SELECT default_payment_method FROM subs WHERE default_payment_method IS NOT NULL \
      ORDER BY created DESC, id DESC LIMIT 1)) \
   THEN 0 ELSE 1 END, event_created DESC, id DESC LIMIT 1)), \
 'credit_balance', ({balance}), \
 'synced_at', (SELECT MAX(t) FROM ( \
     SELECT MAX(updated_at) AS t FROM subs \
     UNION ALL SELECT MAX(updated_at) FROM invoices WHERE customer_id = $3 \
     UNION ALL SELECT MAX(updated_at) FROM cards \
     UNION ALL SELECT updated_at FROM customer) AS synced), \
 'portal_visited', EXISTS (SELECT 1 FROM portal_visits v JOIN organizations o ON o.id = v.org_id \
     WHERE v.org_id = $1 AND v.visited_at >= COALESCE(o.refreshed_at, 0)), \
 'invoices', {embed}((SELECT {list}{object}('id', i.id, 'number', i.number, 'status', i.status, \
     'currency', i.currency, 'total', i.total, 'hosted_invoice_url', i.hosted_invoice_url, \
     'invoice_pdf', i.invoice_pdf, 'created', i.created){end_list} \
   FROM (SELECT number, status, currency, total, hosted_invoice_url, invoice_pdf, created, id \
     FROM invoices WHERE customer_id = $3 AND deleted = FALSE \
     ORDER BY created DESC, id DESC LIMIT CAST($4 AS BIGINT)) AS i)), \
 'plan_features', {embed}((SELECT {list}{object}('product_id', f.product_id, \
     'lookup_key', f.lookup_key, 'name', f.name){end_list} \
   FROM (SELECT DISTINCT pf.product_id, f.lookup_key, f.name FROM product_features pf \
     JOIN features f ON f.id = pf.feature_id \
     WHERE f.active = TRUE AND pf.product_id IN (SELECT product_id FROM subs)) AS f)), \
 'credit_entries', {embed}((SELECT {list}{object}('kind', e.source_type, \
     'source_id', e.source_id, 'amount', e.amount, 'reason', e.reason, 'metadata', e.metadata, \
     'actor', e.actor, 'created_at', e.created_at){end_list} \
   FROM (SELECT * FROM credit_ledger WHERE org_id = $1 \
     ORDER BY created_at DESC, source_type DESC, source_id DESC LIMIT CAST($5 AS BIGINT)) AS e)), \
 'expiring', {embed}((SELECT {list}{object}('source_type', source_type, \
     'source_id', source_id, 'org_id', org_id, 'amount', amount, 'remaining', remaining, \
     'granted_at', granted_at, 'expires_at', expires_at){end_list} \
   FROM credit_lots WHERE org_id = $1 AND remaining > 0 AND expires_at > $2)), \
 'usage', {embed}((SELECT {object}('starts', period.starts, 'ends', period.ends, \
   'meters', {embed}((SELECT {list}{object}('meter', m.meter, 'sent', m.sent, \
       'pending', m.pending, 'failed', m.failed){end_list} \
     FROM (SELECT meter, \
       CAST(SUM(CASE WHEN status = 'sent' THEN value ELSE 0 END) AS BIGINT) AS sent, \
       CAST(SUM(CASE WHEN status = 'pending' THEN value ELSE 0 END) AS BIGINT) AS pending, \
       CAST(SUM(CASE WHEN status = 'failed' THEN value ELSE 0 END) AS BIGINT) AS failed \
       FROM usage_records u JOIN period ON u.occurred_at >= period.starts \
       AND u.occurred_at < period.ends WHERE u.org_id = $1 \
       GROUP BY meter) AS m))) FROM period)) \
 )){as_text}";

struct Texts {
    sqlite: String,
    postgres: String,
}

static TEXTS: LazyLock<Texts> = LazyLock::new(|| {
    let with_balance = TEMPLATE.replace("{balance}", AVAILABLE_BALANCE);
    Texts {
        sqlite: with_balance
            .replace("{as_text}", "")
            .replace("{object}", "json_object")
            .replace("{list}", "json_group_array(")
            .replace("{end_list}", ")")
            .replace("{embed}", "json"),
        postgres: with_balance
            .replace("{as_text}", "::text")
            .replace("{object}", "json_build_object")
            .replace("{list}", "COALESCE(json_agg(")
            .replace("{end_list}", "), '[]'::json)")
            .replace("{embed}", ""),
    }
});

impl Store {
    /// The Plans tab's whole read of `org_id` (whose Stripe customer is
    /// `customer`) at `now`, in one statement.
    pub(super) async fn plans_document(
        &self,
        org_id: &str,
        customer: Option<&str>,
        lines: Lines,
        now: i64,
    ) -> Result<Document, StoreError> {
        let (month_starts, month_ends) = calendar_month(now);
        let text: String = with_pool!(self, |pool| {
            sqlx::query_scalar(if self.is_sqlite() {
                TEXTS.sqlite.as_str()
            } else {
                TEXTS.postgres.as_str()
            })
            .bind(org_id)
            .bind(now)
            .bind(customer)
            .bind(lines.invoices)
            .bind(lines.credit_entries)
            .bind(month_starts)
            .bind(month_ends)
            .fetch_one(pool)
            .await?
        });
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("the Plans read of {org_id}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::Document;

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
        let document: Document = serde_json::from_value(serde_json::json!({
            "payment_method": null, "credit_balance": 0, "synced_at": null,
            "portal_visited": 0,
            "invoices": [invoice("in_a", 1), invoice("in_b", 3), invoice("in_c", 2),
                invoice("in_d", 3)],
            "plan_features": [feature("prod_b", "a", None), feature("prod_a", "z", Some("Z")),
                feature("prod_a", "y", Some("A")), feature("prod_a", "x", None)],
            "credit_entries": [entry("debit", "d_1", 5), entry("invoice", "in_1", 7),
                entry("debit", "d_2", 7), entry("adjustment", "adj_1", 7)],
            "expiring": [lot("in_2", 20), lot("in_1", 10), lot("in_0", 20)],
            "usage": {"starts": 0, "ends": 1, "meters": [meter("tokens"), meter("api_calls")]},
        }))
        .unwrap();

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
}
