//! Usage for Stripe's meters: `POST /api/v1/internal/organizations/{org_id}/usage`
//! for the product's other services, and `GET /api/v1/operations/payment/usage`
//! (this period's usage per meter) for the organization's members.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::body::read_body;
use super::known_organization;
use crate::billing::usage::{Usage, UsageRequest};
use crate::domain::unix_now;
use crate::state::AppState;
use crate::store::{MeterUsage, Recorded};
use crate::web::errors::{ApiError, ErrorBody, no_store};
use crate::web::guards::{Member, ServiceCaller};

const MAX_BODY_BYTES: usize = 4 * 1024;

/// A usage record, stored to be sent to Stripe.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AcceptedBody<'a> {
    identifier: &'a str,
    meter: &'a str,
    value: i64,
    /// When it happened, as stored (a duplicate answers the first report's).
    timestamp: i64,
    /// `pending` (stored now) or `duplicate` (its identifier was stored before).
    status: &'a str,
}

/// This period's usage per meter.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageBody {
    period_start: i64,
    period_end: i64,
    meters: Vec<MeterBody>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MeterBody {
    meter: String,
    /// Reported to Stripe.
    sent: i64,
    /// Stored, waiting to be sent.
    pending: i64,
    /// Refused by Stripe (an operator sees why).
    failed: i64,
}

impl From<MeterUsage> for MeterBody {
    fn from(m: MeterUsage) -> Self {
        Self {
            meter: m.meter,
            sent: m.sent,
            pending: m.pending,
            failed: m.failed,
        }
    }
}

/// Reports usage of a meter; `202` once it is stored.
#[utoipa::path(
    post,
    path = "/api/v1/internal/organizations/{org_id}/usage",
    tag = "usage",
    params(("org_id" = String, Path, description = "A Clerk organization id, `org_…`")),
    request_body(content = UsageRequest, content_type = "application/json"),
    security(("service_token" = [])),
    responses(
        (status = 202, description = "Stored, to be sent to Stripe (or stored before under its identifier)", body = AcceptedBody),
        (status = 400, description = "`VALIDATION_ERROR`: an unknown meter, a bad value or timestamp", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`: no valid service token", body = ErrorBody),
        (status = 404, description = "`NOT_FOUND`: no organization of this id with a Stripe customer, or no service token is configured", body = ErrorBody),
        (status = 409, description = "`CONFLICT`: the identifier was first used for other usage", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn report(
    _: ServiceCaller,
    org: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = known_organization(&state, &org).await?;
    let customer = org.stripe_customer_id.ok_or_else(|| {
        ApiError::NotFound(format!("Organization {} has no Stripe customer.", org.id))
    })?;
    let body = read_body(body, state.body_timeout, MAX_BODY_BYTES).await?;
    let usage = Usage::parse(&body, &state.meters, unix_now()).map_err(ApiError::Validation)?;
    let recorded = state
        .usage
        .record(org.id.as_str(), customer.as_str(), &usage)
        .await
        .map_err(|err| ApiError::internal(anyhow::anyhow!("usage not stored: {err}")))?;
    let (status, occurred_at) = match recorded {
        Recorded::New => ("pending", usage.occurred_at),
        Recorded::Duplicate { occurred_at } => ("duplicate", occurred_at),
        Recorded::Conflict => {
            return Err(ApiError::Conflict(
                "This identifier was first used for other usage.".to_owned(),
            ));
        }
    };
    Ok(no_store(StatusCode::ACCEPTED).json(AcceptedBody {
        identifier: &usage.identifier,
        meter: &usage.meter,
        value: usage.value,
        timestamp: occurred_at,
        status,
    }))
}

/// The signed-in user's organization's usage this period, per meter.
#[utoipa::path(
    get,
    path = "/api/v1/operations/payment/usage",
    tag = "usage",
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    responses(
        (status = 200, description = "Usage in the current billing period (else the calendar month)", body = UsageBody),
        (status = 400, description = "`VALIDATION_ERROR`: no organization", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn this_period(
    member: Member,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = member.organization(&state.store).await?;
    let customer = org.stripe_customer_id.as_ref().map(|c| c.as_str());
    let usage = state
        .store
        .usage_this_period(org.id.as_str(), customer)
        .await
        .map_err(ApiError::internal)?;
    Ok(no_store(StatusCode::OK).json(UsageBody {
        period_start: usage.starts,
        period_end: usage.ends,
        meters: usage.meters.into_iter().map(Into::into).collect(),
    }))
}
