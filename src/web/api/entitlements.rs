//! What an organization may use: `GET /api/v1/operations/payment/entitlements`
//! for the signed-in user's organization, and
//! `GET /api/v1/internal/organizations/{org_id}/entitlements` for the
//! product's other services. Both answer from memory (see
//! `Store::entitlement_facts`) with the access rules of `billing::access`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::billing::access::{self, Access, Level};
use crate::billing::seats;
use crate::domain::OrgId;
use crate::state::AppState;
use crate::web::errors::{ApiError, ErrorBody, no_store};
use crate::web::guards::{Member, ServiceCaller};

/// What an organization may use now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EntitlementsBody<'a> {
    organization: &'a str,
    access: Level,
    grace_ends_at: Option<i64>,
    features: &'a [String],
    synced_at: Option<i64>,
    /// With `BILLING_SEAT_LIMIT=plan`: members who take a seat, and the
    /// seats the live subscription pays for (0 without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<SeatsBody>,
}

/// Seats used and paid, so the product can refuse invitations beyond.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SeatsBody {
    used: i64,
    paid: i64,
}

/// The signed-in user's organization's access and features.
#[utoipa::path(
    get,
    path = "/api/v1/operations/payment/entitlements",
    tag = "entitlements",
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    responses(
        (status = 200, description = "Access and features", body = EntitlementsBody),
        (status = 400, description = "`VALIDATION_ERROR`: no active organization", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn of_member(
    member: Member,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = state
        .store
        .ensure_organization_cached(&member.org.id, member.org.slug.as_deref())
        .await
        .map_err(ApiError::internal)?;
    let access = access::of(&state.store, &org, state.access.grace_period)
        .await
        .map_err(ApiError::internal)?;
    let seats = seats_of(&state, &org.id).await?;
    Ok(answer(&org.id, access, seats))
}

/// Any organization's access and features, for the product's other services.
#[utoipa::path(
    get,
    path = "/api/v1/internal/organizations/{org_id}/entitlements",
    tag = "entitlements",
    params(("org_id" = String, Path, description = "A Clerk organization id, `org_…`")),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "Access and features", body = EntitlementsBody),
        (status = 400, description = "`VALIDATION_ERROR`: not an organization id", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`: no valid service token", body = ErrorBody),
        (status = 404, description = "`NOT_FOUND`: no organization of this id has been seen (no member opened billing, no customer is linked), or no service token is configured", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn of_organization(
    _: ServiceCaller,
    org: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = OrgId::parse(&org).map_err(|e| ApiError::Validation(format!("{e}.")))?;
    // A read never writes: an id never seen is not made an organization.
    let access = access::of_organization(&state.store, &org, state.access.grace_period)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("No organization {org} is known.")))?;
    let seats = seats_of(&state, &org).await?;
    Ok(answer(&org, access, seats))
}

/// Seats used and paid, when `BILLING_SEAT_LIMIT=plan`.
async fn seats_of(state: &AppState, org: &OrgId) -> Result<Option<SeatsBody>, ApiError> {
    if !state.seats.report_limit {
        return Ok(None);
    }
    let (members, paying) = tokio::try_join!(
        state.store.members_of(org.as_str()),
        state.store.seat_subscription(org.as_str()),
    )
    .map_err(ApiError::internal)?;
    Ok(Some(SeatsBody {
        used: seats::members_taking_seats(&members, &state.seats),
        paid: paying.map_or(0, |s| s.quantity.unwrap_or(1)),
    }))
}

fn answer(org: &OrgId, access: Access, seats: Option<SeatsBody>) -> HttpResponse {
    let Access {
        level,
        grace_ends_at,
        features,
        synced_at,
    } = access;
    no_store(StatusCode::OK).json(EntitlementsBody {
        organization: org.as_str(),
        access: level,
        grace_ends_at,
        features: &features,
        synced_at,
        seats,
    })
}
