//! The Plans reads' statement texts, written once for both backends:
//! `{object}`, `{list}`…`{end_list}`, `{embed}` and `{as_text}` stand for
//! each backend's JSON functions (SQLite drops a JSON value's type when it
//! leaves a subquery, so `json(…)` gives it back), and `:name` for each
//! parameter, numbered in the order a statement binds them.

use std::sync::LazyLock;

use crate::store::Store;
use crate::store::credits::AVAILABLE_BALANCE;

/// The customer's subscriptions, customer row and cards, each read once
/// (`subs`, `customer`, `cards`) and used by every part that needs them: on
/// PostgreSQL each scan in a statement costs its own start-up at every run,
/// whatever it finds.
const CUSTOMER_ROWS: &str = "subs AS ( \
   SELECT id, status, price_id, product_id, plan_name, quantity, currency, unit_amount, \
     recurring_interval, interval_count, current_period_start, current_period_end, \
     cancel_at_period_end, cancel_at, canceled_at, trial_end, default_payment_method, \
     created, updated_at \
   FROM subscriptions WHERE customer_id = :customer), \
 customer AS (SELECT default_payment_method, updated_at FROM customers WHERE id = :customer), \
 cards AS (SELECT id, brand, last4, exp_month, exp_year, event_created, updated_at \
   FROM payment_methods WHERE customer_id = :customer)";

/// The billing period holding now: the live subscription's, else the
/// calendar month.
const PERIOD: &str = "period AS ( \
   SELECT COALESCE(s.current_period_start, :month_starts) AS starts, \
     COALESCE(s.current_period_end, :month_ends) AS ends \
   FROM (SELECT 1 AS one) AS base LEFT JOIN ( \
     SELECT current_period_start, current_period_end FROM subscriptions \
     WHERE customer_id = :customer AND current_period_start <= :now AND current_period_end > :now \
     ORDER BY created DESC, id DESC LIMIT 1) AS s ON TRUE)";

/// What only Stripe's deliveries change, from `CUSTOMER_ROWS`: the part kept
/// per customer in `synced_plans`.
const SYNCED_PARTS: &str = "{object}( \
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
 'synced_at', (SELECT MAX(t) FROM ( \
     SELECT MAX(updated_at) AS t FROM subs \
     UNION ALL SELECT MAX(updated_at) FROM invoices WHERE customer_id = :customer \
     UNION ALL SELECT MAX(updated_at) FROM cards \
     UNION ALL SELECT updated_at FROM customer) AS synced), \
 'invoices', {embed}((SELECT {list}{object}('id', i.id, 'number', i.number, 'status', i.status, \
     'currency', i.currency, 'total', i.total, 'hosted_invoice_url', i.hosted_invoice_url, \
     'invoice_pdf', i.invoice_pdf, 'created', i.created){end_list} \
   FROM (SELECT number, status, currency, total, hosted_invoice_url, invoice_pdf, created, id \
     FROM invoices WHERE customer_id = :customer AND deleted = FALSE \
     ORDER BY created DESC, id DESC LIMIT CAST(:invoices AS BIGINT)) AS i)), \
 'plan_features', {embed}((SELECT {list}{object}('product_id', f.product_id, \
     'lookup_key', f.lookup_key, 'name', f.name){end_list} \
   FROM (SELECT DISTINCT pf.product_id, f.lookup_key, f.name FROM product_features pf \
     JOIN features f ON f.id = pf.feature_id \
     WHERE f.active = TRUE AND pf.product_id IN (SELECT product_id FROM subs)) AS f)) \
 ){as_text}";

/// What the organization's own rows hold, from `PERIOD`: changed by debits,
/// grants and usage, so never kept.
const OWN_PARTS: &str = "{object}( \
 'credit_balance', ({balance}), \
 'portal_visited', EXISTS (SELECT 1 FROM portal_visits v JOIN organizations o ON o.id = v.org_id \
     WHERE v.org_id = :org AND v.visited_at >= COALESCE(o.refreshed_at, 0)), \
 'credit_entries', {embed}((SELECT {list}{object}('kind', e.source_type, \
     'source_id', e.source_id, 'amount', e.amount, 'reason', e.reason, 'metadata', e.metadata, \
     'actor', e.actor, 'created_at', e.created_at){end_list} \
   FROM (SELECT * FROM credit_ledger WHERE org_id = :org \
     ORDER BY created_at DESC, source_type DESC, source_id DESC \
     LIMIT CAST(:entries AS BIGINT)) AS e)), \
 'expiring', {embed}((SELECT {list}{object}('source_type', source_type, \
     'source_id', source_id, 'org_id', org_id, 'amount', amount, 'remaining', remaining, \
     'granted_at', granted_at, 'expires_at', expires_at){end_list} \
   FROM credit_lots WHERE org_id = :org AND remaining > 0 AND expires_at > :now)), \
 'usage', {embed}((SELECT {object}('starts', period.starts, 'ends', period.ends, \
   'meters', {embed}((SELECT {list}{object}('meter', m.meter, 'sent', m.sent, \
       'pending', m.pending, 'failed', m.failed){end_list} \
     FROM (SELECT meter, \
       CAST(SUM(CASE WHEN status = 'sent' THEN value ELSE 0 END) AS BIGINT) AS sent, \
       CAST(SUM(CASE WHEN status = 'pending' THEN value ELSE 0 END) AS BIGINT) AS pending, \
       CAST(SUM(CASE WHEN status = 'failed' THEN value ELSE 0 END) AS BIGINT) AS failed \
       FROM usage_records u JOIN period ON u.occurred_at >= period.starts \
       AND u.occurred_at < period.ends WHERE u.org_id = :org \
       GROUP BY meter) AS m))) FROM period)) \
 ){as_text}";

/// The parameters of the reads, in the order they are bound.
const READ_PARAMETERS: [&str; 7] = [
    ":org",
    ":now",
    ":customer",
    ":entries",
    ":month_starts",
    ":month_ends",
    ":invoices",
];

/// Everything, read from the rows: `own` and `synced`.
const READ_ALL: &str = "WITH {customer_rows}, {period} SELECT {own} AS own, {synced} AS synced";

/// The organization's own parts and its customer's kept document (NULL
/// while it is to build: then `READ_ALL` reads it from the rows).
const READ_KEPT: &str = "WITH {period} SELECT {own} AS own, \
 (SELECT document FROM synced_plans WHERE customer_id = :customer) AS synced";

/// A customer's synced parts to keep, with the version they were read at.
const BUILD: &str = "WITH {customer_rows} \
 SELECT p.version, {synced} AS document FROM synced_plans p WHERE p.customer_id = :customer";

/// The statement texts of one backend.
pub(super) struct Texts {
    pub read_all: String,
    pub read_kept: String,
    pub build: String,
}

struct Backends {
    sqlite: Texts,
    postgres: Texts,
}

static TEXTS: LazyLock<Backends> = LazyLock::new(|| Backends {
    sqlite: Texts::of(&[
        ("{as_text}", ""),
        ("{object}", "json_object"),
        ("{list}", "json_group_array("),
        ("{end_list}", ")"),
        ("{embed}", "json"),
    ]),
    postgres: Texts::of(&[
        ("{as_text}", "::text"),
        ("{object}", "json_build_object"),
        ("{list}", "COALESCE(json_agg("),
        ("{end_list}", "), '[]'::json)"),
        ("{embed}", ""),
    ]),
});

impl Texts {
    /// Each statement with the backend's JSON functions (`dialect`) and its
    /// named parameters numbered in the order they are bound.
    fn of(dialect: &[(&str, &str)]) -> Self {
        let statement = |template: &str, parameters: &[&str]| {
            let mut text = template
                .replace("{customer_rows}", CUSTOMER_ROWS)
                .replace("{period}", PERIOD)
                .replace("{own}", OWN_PARTS)
                .replace("{synced}", SYNCED_PARTS)
                .replace("{balance}", &numbered_balance());
            for (token, function) in dialect {
                text = text.replace(token, function);
            }
            for (n, name) in parameters.iter().enumerate() {
                text = text.replace(name, &format!("${}", n + 1));
            }
            text
        };
        Self {
            read_all: statement(READ_ALL, &READ_PARAMETERS),
            read_kept: statement(READ_KEPT, &READ_PARAMETERS[..6]),
            build: statement(BUILD, &[":customer", ":invoices"]),
        }
    }
}

/// The available balance, its `$1` and `$2` named as the reads bind them.
fn numbered_balance() -> String {
    AVAILABLE_BALANCE
        .replace("$1", ":org")
        .replace("$2", ":now")
}

pub(super) fn texts(store: &Store) -> &'static Texts {
    if store.is_sqlite() {
        &TEXTS.sqlite
    } else {
        &TEXTS.postgres
    }
}

#[cfg(test)]
mod tests {
    use super::{READ_PARAMETERS, TEXTS};

    #[test]
    fn every_placeholder_is_replaced_and_every_parameter_numbered() {
        for texts in [&TEXTS.sqlite, &TEXTS.postgres] {
            for (text, parameters) in [
                (&texts.read_all, 7),
                (&texts.read_kept, 6),
                (&texts.build, 2),
            ] {
                assert!(!text.contains('{'), "a placeholder is left in {text}");
                for name in READ_PARAMETERS {
                    assert!(!text.contains(name), "{name} is left in {text}");
                }
                assert!(text.contains(&format!("${parameters}")));
                assert!(!text.contains(&format!("${}", parameters + 1)));
            }
        }
    }
}
