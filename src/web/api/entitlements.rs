//! What an organization may use: `GET /api/v1/operations/payment/entitlements`
//! for the signed-in user's organization, and
//! `GET /api/v1/internal/organizations/{org_id}/entitlements` for the
//! product's other services. Both answer from memory (see
//! `Store::entitlement_facts`) with the access rules of `billing::access`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::billing::access::{self, Access, Level};
use crate::domain::OrgId;
use crate::state::AppState;
use crate::web::errors::{ApiError, no_store};
use crate::web::guards::{Member, ServiceCaller};

#[derive(Serialize)]
struct EntitlementsBody<'a> {
    organization: &'a str,
    access: Level,
    grace_ends_at: Option<i64>,
    features: &'a [String],
    synced_at: Option<i64>,
}

pub async fn of_member(
    member: Member,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &member.org.id).await
}

pub async fn of_organization(
    _: ServiceCaller,
    org: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = OrgId::parse(&org).map_err(|e| ApiError::Validation(format!("{e}.")))?;
    answer(&state, &org).await
}

async fn answer(state: &AppState, org: &OrgId) -> Result<HttpResponse, ApiError> {
    let Access {
        level,
        grace_ends_at,
        features,
        synced_at,
    } = access::of_organization(&state.store, org, state.access.grace_period)
        .await
        .map_err(ApiError::internal)?;
    Ok(no_store(StatusCode::OK).json(EntitlementsBody {
        organization: org.as_str(),
        access: level,
        grace_ends_at,
        features: &features,
        synced_at,
    }))
}
