//! View models of the operators' pages.

use askama::Template;

use super::format::{
    date, date_time, invoice_status, money, monthly_amount, subscription_status, whole,
};
use crate::billing::access::Access;
use crate::store::{
    AdminOrgRow, BillingState, Card, CreditEntry, FailedUsage, InvoiceView, OrgMember,
    SeatsOutOfStep, StoredEvent,
};

pub struct AdminOrgLine {
    pub id: String,
    pub name: String,
    /// Deleted in Clerk: its billing waits for an operator.
    pub deleted: bool,
    pub plan: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub renewal: String,
    pub seats: String,
    pub mrr: String,
    pub credits: String,
    pub last_event: String,
}

#[derive(Template)]
#[template(path = "admin_list.html")]
pub struct AdminListPage {
    /// On the first page without filters.
    pub overview: Option<super::overview::Overview>,
    pub rows: Vec<AdminOrgLine>,
    pub status: String,
    pub search: String,
    pub statuses: &'static [&'static str],
    pub page: i64,
    pub prev_link: Option<String>,
    pub next_link: Option<String>,
    /// Organizations whose members and paid seats differ (seats follow members).
    pub seats_out_of_step: Vec<SeatsOutOfStep>,
    pub csrf: String,
}

impl AdminOrgLine {
    pub fn new(row: &AdminOrgRow) -> Self {
        let (status_label, status_class) = row
            .status
            .as_deref()
            .map(subscription_status)
            .unwrap_or(("No plan", "muted"));
        let canceling = row.cancel_at_period_end.unwrap_or(false) || row.cancel_at.is_some();
        let renewal = match (canceling, row.cancel_at.or(row.current_period_end)) {
            (true, Some(t)) => format!("Cancels {}", date(t)),
            (false, Some(t)) => format!("Renews {}", date(t)),
            _ => "—".to_owned(),
        };
        let live = matches!(row.status.as_deref(), Some("active" | "past_due"));
        let mrr = match (live, row.unit_amount, &row.currency) {
            (true, Some(amount), Some(currency)) => money(
                monthly_amount(
                    amount,
                    row.quantity.unwrap_or(1),
                    row.recurring_interval.as_deref().unwrap_or("month"),
                    row.interval_count.unwrap_or(1),
                ),
                currency,
            ),
            _ => "—".to_owned(),
        };
        Self {
            id: row.id.clone(),
            name: row.name.clone().unwrap_or_else(|| row.id.clone()),
            deleted: row.deleted_at.is_some(),
            plan: row.product_name.clone().unwrap_or_else(|| "—".to_owned()),
            status_label,
            status_class,
            renewal,
            seats: row
                .quantity
                .map(|q| q.to_string())
                .unwrap_or_else(|| "—".to_owned()),
            mrr,
            credits: whole(row.credit_balance),
            last_event: row
                .last_event_at
                .map(date_time)
                .unwrap_or_else(|| "—".to_owned()),
        }
    }
}

pub struct EventLine {
    pub id: String,
    pub kind: String,
    pub created: String,
    pub received: String,
    pub attempts: i64,
    pub processed: bool,
    pub error: Option<String>,
}

impl EventLine {
    pub fn new(event: &StoredEvent) -> Self {
        Self {
            id: event.id.clone(),
            kind: event.kind.clone(),
            created: date_time(event.created),
            received: date_time(event.received_at),
            attempts: event.attempts,
            processed: event.processed_at.is_some(),
            error: event.last_error.clone(),
        }
    }
}

pub struct AdminSubscription {
    pub id: String,
    pub plan: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub price: String,
    pub quantity: String,
    pub period_end: String,
}

pub struct AdminInvoice {
    pub id: String,
    pub number: String,
    pub date: String,
    pub amount: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
}

pub struct AdminCard {
    pub id: String,
    pub label: String,
}

pub struct AdminLedgerLine {
    pub source: String,
    pub amount: String,
    pub date: String,
}

#[derive(Template)]
#[template(path = "admin_org.html")]
pub struct AdminOrgPage {
    pub id: String,
    pub name: String,
    /// When Clerk deleted the organization.
    pub deleted: Option<String>,
    /// Its members, as Clerk's webhooks told them.
    pub members: Vec<OrgMember>,
    pub customer: String,
    pub csrf: String,
    pub notice: Option<String>,
    pub credits: String,
    /// A purchase was taken back after its credits were spent: debits are
    /// refused until the balance is positive again.
    pub credits_owed: bool,
    /// `full`, `grace (until …)` or `none`.
    pub access: String,
    pub features: Vec<String>,
    pub subscriptions: Vec<AdminSubscription>,
    pub invoices: Vec<AdminInvoice>,
    pub cards: Vec<AdminCard>,
    pub ledger: Vec<AdminLedgerLine>,
    pub events: Vec<EventLine>,
    pub failed_usage: Vec<FailedUsageLine>,
}

/// A usage record Stripe refused, and why.
pub struct FailedUsageLine {
    pub identifier: String,
    pub meter: String,
    pub value: String,
    pub date: String,
    pub reason: String,
}

pub struct AdminOrgData {
    pub id: String,
    /// Clerk's name, else the slug.
    pub name: Option<String>,
    pub deleted_at: Option<i64>,
    pub members: Vec<OrgMember>,
    pub customer: Option<String>,
    pub billing: BillingState,
    pub invoices: Vec<InvoiceView>,
    pub cards: Vec<Card>,
    pub ledger: Vec<CreditEntry>,
    pub events: Vec<StoredEvent>,
    /// Usage Stripe refused for good.
    pub failed_usage: Vec<FailedUsage>,
    pub access: Access,
}

impl AdminOrgPage {
    pub fn new(data: AdminOrgData, csrf: String, notice: Option<String>) -> Self {
        Self {
            name: data.name.clone().unwrap_or_else(|| data.id.clone()),
            deleted: data.deleted_at.map(date),
            members: data.members.clone(),
            id: data.id,
            customer: data.customer.unwrap_or_else(|| "none".to_owned()),
            csrf,
            notice,
            credits: whole(data.billing.credit_balance),
            credits_owed: data.billing.credit_balance < 0,
            access: match data.access.grace_ends_at {
                Some(ends) => format!("grace (until {})", date(ends)),
                None => data.access.level.as_str().to_owned(),
            },
            features: data.access.features.clone(),
            subscriptions: data
                .billing
                .subscriptions
                .iter()
                .map(|s| {
                    let (status_label, status_class) = subscription_status(&s.status);
                    AdminSubscription {
                        id: s.id.clone(),
                        plan: s.product_name.clone().unwrap_or_else(|| "—".to_owned()),
                        status_label,
                        status_class,
                        price: match (s.unit_amount, &s.currency) {
                            (Some(a), Some(c)) => money(a, c),
                            _ => "—".to_owned(),
                        },
                        quantity: s
                            .quantity
                            .map(|q| q.to_string())
                            .unwrap_or_else(|| "—".to_owned()),
                        period_end: s
                            .current_period_end
                            .map(date)
                            .unwrap_or_else(|| "—".to_owned()),
                    }
                })
                .collect(),
            invoices: data
                .invoices
                .iter()
                .map(|i| {
                    let (status_label, status_class) = invoice_status(i.status.as_deref());
                    AdminInvoice {
                        id: i.id.clone(),
                        number: i.number.clone().unwrap_or_else(|| "Draft".to_owned()),
                        date: date(i.created),
                        amount: money(i.total, &i.currency),
                        status_label,
                        status_class,
                    }
                })
                .collect(),
            cards: data
                .cards
                .iter()
                .map(|c| AdminCard {
                    id: c.id.clone(),
                    label: format!(
                        "{} •••• {} {:02}/{}",
                        c.brand.clone().unwrap_or_default(),
                        c.last4.clone().unwrap_or_default(),
                        c.exp_month.unwrap_or(0),
                        c.exp_year.unwrap_or(0)
                    ),
                })
                .collect(),
            ledger: data
                .ledger
                .iter()
                .map(|l| AdminLedgerLine {
                    source: ledger_source(l),
                    amount: whole(l.amount),
                    date: date_time(l.created_at),
                })
                .collect(),
            events: data.events.iter().map(EventLine::new).collect(),
            failed_usage: data
                .failed_usage
                .iter()
                .map(|u| FailedUsageLine {
                    identifier: u.identifier.clone(),
                    meter: u.meter.clone(),
                    value: whole(u.value),
                    date: date_time(u.occurred_at),
                    reason: u.last_error.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// What caused a ledger entry, for an operator: the kind, its id, and the
/// reason and who gave it, when there are.
fn ledger_source(entry: &CreditEntry) -> String {
    let mut source = format!("{} {}", entry.kind, entry.source_id);
    if let Some(reason) = &entry.reason {
        source.push_str(&format!(" · {reason}"));
    }
    if let Some(actor) = &entry.actor {
        source.push_str(&format!(" · by {actor}"));
    }
    source
}
