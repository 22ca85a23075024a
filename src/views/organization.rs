//! The organization page (General and Plans tabs).

use askama::Template;

use super::format::{self, date, interval, invoice_status, money, subscription_status};
use crate::store::{
    CatalogPrice, CreditEntry, InvoiceLine, Plans, ProductFeature, SubscriptionView,
};

/// A message shown above the plans (after a checkout, or when Stripe was slow).
pub struct Notice {
    pub kind: &'static str,
    pub text: String,
}

pub struct SubscriptionCard {
    pub id: String,
    pub plan: String,
    pub price: String,
    pub seats: Option<String>,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub detail: Option<String>,
    pub warning: Option<&'static str>,
    pub can_cancel: bool,
    pub can_change: bool,
    /// What the plan includes (its product's features).
    pub features: Vec<String>,
}

pub struct InvoiceRow {
    pub date: String,
    pub number: String,
    pub amount: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub hosted_url: Option<String>,
    pub pdf_url: Option<String>,
}

/// A line of the credits card: what moved the balance, and by how much.
pub struct CreditLine {
    pub date: String,
    pub what: String,
    pub amount: String,
}

pub struct PlanOffer {
    pub price_id: String,
    pub name: String,
    pub price: String,
    pub features: Vec<String>,
}

#[derive(Template)]
#[template(path = "organization.html")]
pub struct OrganizationPage {
    pub org_id: String,
    pub org_name: String,
    pub org_slug: String,
    pub role: String,
    pub can_manage: bool,
    pub csrf: String,
    pub portal_path: &'static str,
    pub has_customer: bool,
    pub notice: Option<Notice>,
    pub subscriptions: Vec<SubscriptionCard>,
    pub payment_method: Option<String>,
    pub credits: String,
    /// The ledger's newest entries.
    pub credit_lines: Vec<CreditLine>,
    /// The balance is at or below `CREDITS_LOW_BALANCE`.
    pub credits_low: bool,
    /// When the next credits expire, and how many: "70 credits expire on …".
    pub credits_expiring: Option<String>,
    pub usage: Vec<UsageLine>,
    pub usage_period_end: String,
    pub invoices: Vec<InvoiceRow>,
    pub synced: Option<String>,
    pub offers: Vec<PlanOffer>,
    /// No live subscription: the plans are offered.
    pub can_subscribe: bool,
    pub sells_credits: bool,
    /// While access is in its grace period: the date it ends.
    pub grace_ends: Option<String>,
}

/// What the organization page needs besides the billing state.
pub struct OrganizationContext {
    pub org_id: String,
    /// Clerk's name, when known.
    pub org_name: Option<String>,
    pub org_slug: Option<String>,
    pub role: Option<String>,
    pub can_manage: bool,
    pub csrf: String,
    pub has_customer: bool,
    /// The organization has no live subscription.
    pub can_subscribe: bool,
    pub notice: Option<Notice>,
    pub sells_credits: bool,
    /// Where "Manage billing" goes (the route table's portal path).
    pub portal_path: &'static str,
    /// While access is in its grace period: when it ends (unix seconds).
    pub grace_ends_at: Option<i64>,
    /// Members who take a seat, when seats follow members or are limited.
    pub seats_used: Option<i64>,
    /// The balance the credits card calls low (`CREDITS_LOW_BALANCE`).
    pub credits_low_balance: Option<i64>,
}

/// The offers on the Plans tab, and the features their products include.
#[derive(Default)]
pub struct Catalog<'a> {
    pub prices: &'a [CatalogPrice],
    pub features: &'a [ProductFeature],
}

/// A meter's usage this period: reported to Stripe, and waiting to be.
pub struct UsageLine {
    pub meter: String,
    pub sent: String,
    pub pending: String,
}

impl OrganizationPage {
    pub fn new(context: OrganizationContext, plans: &Plans, catalog: Catalog<'_>) -> Self {
        let Plans {
            billing,
            invoices,
            plan_features,
            credit_entries,
            expiring,
            usage,
        } = plans;
        let slug = context.org_slug.unwrap_or_default();
        Self {
            org_name: context.org_name.clone().unwrap_or_else(|| {
                if slug.is_empty() {
                    context.org_id.clone()
                } else {
                    slug.clone()
                }
            }),
            org_slug: if slug.is_empty() {
                "—".to_owned()
            } else {
                slug
            },
            org_id: context.org_id,
            role: context.role.unwrap_or_else(|| "member".to_owned()),
            can_manage: context.can_manage,
            csrf: context.csrf,
            portal_path: context.portal_path,
            has_customer: context.has_customer,
            notice: context.notice,
            subscriptions: billing
                .subscriptions
                .iter()
                .map(|s| {
                    let mut card = subscription_card(s, plan_features);
                    if let Some(used) = context.seats_used.filter(|_| is_live(&s.status)) {
                        let paid = s.quantity.unwrap_or(1);
                        card.seats = Some(format!("{used} of {paid} seats used"));
                    }
                    card
                })
                .collect(),
            payment_method: billing.payment_method.as_ref().map(|pm| {
                let brand = pm
                    .brand
                    .as_deref()
                    .map(title_case)
                    .unwrap_or_else(|| "Card".to_owned());
                let last4 = pm.last4.as_deref().unwrap_or_default();
                match (pm.exp_month, pm.exp_year) {
                    (Some(m), Some(y)) => format!("{brand} •••• {last4}, expires {m:02}/{y}"),
                    _ => format!("{brand} •••• {last4}"),
                }
            }),
            credits: format::whole(billing.credit_balance),
            credit_lines: credit_entries.iter().map(credit_line).collect(),
            credits_expiring: expiring.first().map(|lot| {
                format!(
                    "{} credits expire on {}.",
                    format::whole(lot.remaining),
                    date(lot.expires_at)
                )
            }),
            credits_low: context
                .credits_low_balance
                .is_some_and(|low| billing.credit_balance <= low),
            usage: usage
                .meters
                .iter()
                .map(|m| UsageLine {
                    meter: m.meter.clone(),
                    sent: format::whole(m.sent),
                    pending: format::whole(m.pending),
                })
                .collect(),
            usage_period_end: date(usage.ends),
            invoices: invoices.iter().map(invoice_row).collect(),
            synced: billing.synced_at.map(format::date_time),
            offers: catalog
                .prices
                .iter()
                .map(|p| plan_offer(p, catalog.features))
                .collect(),
            can_subscribe: context.can_subscribe,
            sells_credits: context.sells_credits,
            grace_ends: context.grace_ends_at.map(date),
        }
    }
}

fn is_live(status: &str) -> bool {
    matches!(status, "active" | "trialing")
}

fn credit_line(entry: &CreditEntry) -> CreditLine {
    let what = match entry.kind.as_str() {
        "checkout_session" | "invoice" => "Purchase".to_owned(),
        "adjustment" => entry
            .reason
            .as_deref()
            .map_or_else(|| "Adjustment".to_owned(), |r| format!("Adjustment: {r}")),
        "clawback" => "Purchase taken back".to_owned(),
        "expiry" => "Expired".to_owned(),
        _ => entry.reason.clone().unwrap_or_else(|| "Used".to_owned()),
    };
    let sign = if entry.amount > 0 { "+" } else { "" };
    CreditLine {
        date: date(entry.created_at),
        what,
        amount: format!("{sign}{}", format::whole(entry.amount)),
    }
}

/// The names of the features `product` includes.
fn features_of(product: Option<&str>, features: &[ProductFeature]) -> Vec<String> {
    features
        .iter()
        .filter(|f| Some(f.product_id.as_str()) == product)
        .map(|f| f.name.clone().unwrap_or_else(|| f.lookup_key.clone()))
        .collect()
}

fn subscription_card(s: &SubscriptionView, features: &[ProductFeature]) -> SubscriptionCard {
    let (status_label, status_class) = subscription_status(&s.status);
    let price = match (s.unit_amount, &s.currency) {
        (Some(amount), Some(currency)) => {
            let every = interval(
                s.recurring_interval.as_deref().unwrap_or("month"),
                s.interval_count.unwrap_or(1),
            );
            format!("{} / {every}", money(amount, currency))
        }
        _ => "Custom pricing".to_owned(),
    };
    let live = matches!(s.status.as_str(), "active" | "trialing" | "past_due");
    SubscriptionCard {
        id: s.id.clone(),
        plan: s
            .product_name
            .clone()
            .unwrap_or_else(|| "Subscription".to_owned()),
        price,
        seats: s.quantity.filter(|q| *q > 1).map(|q| format!("{q} seats")),
        status_label,
        status_class,
        detail: subscription_detail(s),
        warning: match s.status.as_str() {
            "past_due" => {
                Some("Your last payment failed. Update your payment method to keep your plan.")
            }
            "unpaid" => {
                Some("Payments have failed and the plan is suspended. Update your payment method.")
            }
            "incomplete" => Some("The first payment has not gone through yet."),
            _ => None,
        },
        can_cancel: live && !s.cancel_at_period_end,
        can_change: live,
        features: features_of(s.product_id.as_deref(), features),
    }
}

fn subscription_detail(s: &SubscriptionView) -> Option<String> {
    match s.status.as_str() {
        "canceled" => s.canceled_at.map(|t| format!("Canceled on {}", date(t))),
        "trialing" => s.trial_end.map(|t| format!("Trial ends on {}", date(t))),
        "paused" => Some("Paused: no invoices until it resumes".to_owned()),
        _ if s.cancel_at_period_end || s.cancel_at.is_some() => s
            .cancel_at
            .or(s.current_period_end)
            .map(|t| format!("Cancels on {}", date(t))),
        _ => s
            .current_period_end
            .map(|t| format!("Renews on {}", date(t))),
    }
}

fn invoice_row(i: &InvoiceLine) -> InvoiceRow {
    let (status_label, status_class) = invoice_status(i.status.as_deref());
    InvoiceRow {
        date: date(i.created),
        number: i.number.clone().unwrap_or_else(|| "Draft".to_owned()),
        amount: money(i.total, &i.currency),
        status_label,
        status_class,
        hosted_url: i.hosted_invoice_url.clone(),
        pdf_url: i.invoice_pdf.clone(),
    }
}

fn plan_offer(p: &CatalogPrice, features: &[ProductFeature]) -> PlanOffer {
    let every = interval(
        p.recurring_interval.as_deref().unwrap_or("month"),
        p.interval_count.unwrap_or(1),
    );
    PlanOffer {
        price_id: p.id.clone(),
        name: p.product_name.clone().unwrap_or_else(|| p.id.clone()),
        price: p
            .unit_amount
            .map(|a| format!("{} / {every}", money(a, &p.currency)))
            .unwrap_or_else(|| "Custom pricing".to_owned()),
        features: features_of(p.product_id.as_deref(), features),
    }
}

fn title_case(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
