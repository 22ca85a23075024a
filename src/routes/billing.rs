//! The organization's synced plan state and invoices, as JSON.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};

use crate::auth::Identity;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::{InvoiceView, Organization, PaymentMethodView, SubscriptionView};

#[derive(Serialize)]
struct PlanState<'a> {
    organization: OrgJson<'a>,
    customer: Option<&'a str>,
    subscriptions: Vec<SubscriptionJson>,
    payment_method: Option<PaymentMethodJson>,
    credits: Credits,
    synced_at: Option<i64>,
}

#[derive(Serialize)]
struct OrgJson<'a> {
    id: &'a str,
    slug: Option<&'a str>,
}

#[derive(Serialize)]
struct SubscriptionJson {
    id: String,
    status: String,
    price: PriceJson,
    product: ProductJson,
    quantity: Option<i64>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
    cancel_at_period_end: bool,
    cancel_at: Option<i64>,
    canceled_at: Option<i64>,
    trial_end: Option<i64>,
}

#[derive(Serialize)]
struct PriceJson {
    id: Option<String>,
    unit_amount: Option<i64>,
    currency: Option<String>,
    interval: Option<String>,
    interval_count: Option<i64>,
}

#[derive(Serialize)]
struct ProductJson {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Serialize)]
struct PaymentMethodJson {
    brand: Option<String>,
    last4: Option<String>,
    exp_month: Option<i64>,
    exp_year: Option<i64>,
}

#[derive(Serialize)]
struct Credits {
    balance: i64,
}

impl From<SubscriptionView> for SubscriptionJson {
    fn from(s: SubscriptionView) -> Self {
        Self {
            id: s.id,
            status: s.status,
            price: PriceJson {
                id: s.price_id,
                unit_amount: s.unit_amount,
                currency: s.currency,
                interval: s.recurring_interval,
                interval_count: s.interval_count,
            },
            product: ProductJson {
                id: s.product_id,
                name: s.product_name,
            },
            quantity: s.quantity,
            current_period_start: s.current_period_start,
            current_period_end: s.current_period_end,
            cancel_at_period_end: s.cancel_at_period_end,
            cancel_at: s.cancel_at,
            canceled_at: s.canceled_at,
            trial_end: s.trial_end,
        }
    }
}

impl From<PaymentMethodView> for PaymentMethodJson {
    fn from(p: PaymentMethodView) -> Self {
        Self {
            brand: p.brand,
            last4: p.last4,
            exp_month: p.exp_month,
            exp_year: p.exp_year,
        }
    }
}

async fn signed_in_org(identity: &Identity, state: &AppState) -> Result<Organization, ApiError> {
    let membership = identity.require_org()?;
    state
        .store
        .ensure_organization(&membership.id, membership.slug.as_deref())
        .await
        .map_err(ApiError::internal)
}

#[get("/subscription")]
pub async fn subscription(
    identity: Identity,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = signed_in_org(&identity, &state).await?;
    let customer = org.stripe_customer_id.as_ref().map(|c| c.as_str());
    let billing = state
        .store
        .billing_state(org.id.as_str(), customer)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(PlanState {
            organization: OrgJson {
                id: org.id.as_str(),
                slug: org.slug.as_deref(),
            },
            customer,
            subscriptions: billing.subscriptions.into_iter().map(Into::into).collect(),
            payment_method: billing.payment_method.map(Into::into),
            credits: Credits {
                balance: billing.credit_balance,
            },
            synced_at: billing.synced_at,
        }))
}

#[derive(Deserialize)]
pub struct InvoiceQuery {
    limit: Option<i64>,
    starting_after: Option<String>,
}

#[derive(Serialize)]
struct InvoicePage {
    data: Vec<InvoiceJson>,
    has_more: bool,
}

#[derive(Serialize)]
struct InvoiceJson {
    id: String,
    number: Option<String>,
    status: Option<String>,
    currency: String,
    amount_due: i64,
    amount_paid: i64,
    total: i64,
    hosted_invoice_url: Option<String>,
    invoice_pdf: Option<String>,
    subscription: Option<String>,
    period_start: Option<i64>,
    period_end: Option<i64>,
    created: i64,
}

impl From<InvoiceView> for InvoiceJson {
    fn from(i: InvoiceView) -> Self {
        Self {
            id: i.id,
            number: i.number,
            status: i.status,
            currency: i.currency,
            amount_due: i.amount_due,
            amount_paid: i.amount_paid,
            total: i.total,
            hosted_invoice_url: i.hosted_invoice_url,
            invoice_pdf: i.invoice_pdf,
            subscription: i.subscription_id,
            period_start: i.period_start,
            period_end: i.period_end,
            created: i.created,
        }
    }
}

/// Newest first; `starting_after=<invoice id>` continues after that invoice.
#[get("/invoices")]
pub async fn invoices(
    identity: Identity,
    query: web::Query<InvoiceQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::Validation(
            "limit must be between 1 and 100.".to_owned(),
        ));
    }
    let org = signed_in_org(&identity, &state).await?;
    let Some(customer) = org.stripe_customer_id else {
        return Ok(HttpResponse::Ok().json(InvoicePage {
            data: Vec::new(),
            has_more: false,
        }));
    };
    // One extra row tells whether another page exists.
    let mut rows = state
        .store
        .invoices_page(
            customer.as_str(),
            query.starting_after.as_deref(),
            limit + 1,
        )
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::Validation("starting_after is not one of your invoices.".to_owned())
        })?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(InvoicePage {
            data: rows.into_iter().map(Into::into).collect(),
            has_more,
        }))
}
