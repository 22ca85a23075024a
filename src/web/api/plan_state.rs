//! `GET /api/v1/operations/payment/subscription`: the organization's synced
//! plan state, as JSON.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::state::AppState;
use crate::store::{Card, SubscriptionView};
use crate::web::errors::{ApiError, ErrorBody, no_store};
use crate::web::guards::Member;

#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanStateBody<'a> {
    organization: OrganizationBody<'a>,
    customer: Option<&'a str>,
    subscriptions: Vec<SubscriptionBody>,
    payment_method: Option<CardBody>,
    credits: CreditsBody,
    synced_at: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OrganizationBody<'a> {
    id: &'a str,
    slug: Option<&'a str>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SubscriptionBody {
    id: String,
    status: String,
    price: PriceBody,
    product: ProductBody,
    quantity: Option<i64>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
    cancel_at_period_end: bool,
    cancel_at: Option<i64>,
    canceled_at: Option<i64>,
    trial_end: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PriceBody {
    id: Option<String>,
    unit_amount: Option<i64>,
    currency: Option<String>,
    interval: Option<String>,
    interval_count: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProductBody {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CardBody {
    brand: Option<String>,
    last4: Option<String>,
    exp_month: Option<i64>,
    exp_year: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreditsBody {
    balance: i64,
}

impl From<SubscriptionView> for SubscriptionBody {
    fn from(s: SubscriptionView) -> Self {
        Self {
            id: s.id,
            status: s.status,
            price: PriceBody {
                id: s.price_id,
                unit_amount: s.unit_amount,
                currency: s.currency,
                interval: s.recurring_interval,
                interval_count: s.interval_count,
            },
            product: ProductBody {
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

impl From<Card> for CardBody {
    fn from(card: Card) -> Self {
        Self {
            brand: card.brand,
            last4: card.last4,
            exp_month: card.exp_month,
            exp_year: card.exp_year,
        }
    }
}

/// The organization's synced plan state.
#[utoipa::path(
    get,
    path = "/api/v1/operations/payment/subscription",
    tag = "billing",
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    responses(
        (status = 200, description = "The plan state", body = PlanStateBody),
        (status = 400, description = "`VALIDATION_ERROR`: no active organization", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn subscription(
    member: Member,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = member.organization(&state.store).await?;
    let customer = org.stripe_customer_id.as_ref().map(|c| c.as_str());
    let billing = state
        .store
        .billing_state(org.id.as_str(), customer)
        .await
        .map_err(ApiError::internal)?;
    Ok(no_store(StatusCode::OK).json(PlanStateBody {
        organization: OrganizationBody {
            id: org.id.as_str(),
            slug: org.slug.as_deref(),
        },
        customer,
        subscriptions: billing.subscriptions.into_iter().map(Into::into).collect(),
        payment_method: billing.payment_method.map(Into::into),
        credits: CreditsBody {
            balance: billing.credit_balance,
        },
        synced_at: billing.synced_at,
    }))
}
