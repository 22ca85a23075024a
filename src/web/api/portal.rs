//! `GET /api/v1/operations/payment/customer-portal`: send the signed-in user
//! to Stripe's Customer Portal for their organization (the contract is
//! `shared/spec/customer-portal.txt`). With `?flow=…` it deep-links into one
//! portal flow.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use url::Url;

use crate::state::AppState;
use crate::store::{AuditEntry, Organization};
use crate::stripe::{CreatePortalSession, FlowData};
use crate::web::errors::{ApiError, ErrorBody, no_store};
use crate::web::guards::Manager;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PortalQuery {
    /// A deep link: `payment_method_update`, `subscription_cancel` or `subscription_update`.
    flow: Option<String>,
    /// With `subscription_cancel` and `subscription_update`: one of the organization's subscriptions.
    subscription: Option<String>,
}

/// Redirects to a Stripe Customer Portal session for the signed-in user's organization.
#[utoipa::path(
    get,
    path = "/api/v1/operations/payment/customer-portal",
    tag = "billing",
    params(PortalQuery),
    security(("clerk_bearer" = []), ("clerk_session_cookie" = [])),
    responses(
        (status = 302, description = "To the portal (`Location`), `Cache-Control: no-store`",
         headers(("Location" = String, description = "The portal session's URL"))),
        (status = 400, description = "`VALIDATION_ERROR`: no active organization, or a bad deep link", body = ErrorBody),
        (status = 401, description = "`UNAUTHORIZED`", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: the role may not manage billing", body = ErrorBody),
        (status = 404, description = "`NOT_FOUND`: the organization has no Stripe customer", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`", body = ErrorBody),
    )
)]
pub async fn customer_portal(
    Manager(member): Manager,
    query: web::Query<PortalQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let org = state
        .store
        .ensure_organization_cached(&member.org.id, member.org.slug.as_deref())
        .await
        .map_err(ApiError::internal)?;
    let customer = org.stripe_customer_id.clone().ok_or_else(|| {
        ApiError::NotFound(
            "Your organization does not have a billing account yet. Subscribe to a plan or buy credits first."
                .to_owned(),
        )
    })?;
    let flow = deep_link(&state, &org, &query).await?;
    // The return URL comes from configuration only: a forged Host header must
    // not turn Stripe's portal into an open redirect.
    let params = CreatePortalSession {
        customer: customer.as_str(),
        return_url: &state.plans_url,
        configuration: state.portal_configuration.as_deref(),
        flow_data: flow,
    };
    let idempotency_key = format!("portal-{}", uuid::Uuid::new_v4());
    let session = state
        .stripe
        .create_portal_session(&params, &idempotency_key)
        .await
        .map_err(ApiError::internal)?;
    let location = portal_location(&session.url)?;
    state
        .audit
        .record(AuditEntry {
            org_id: org.id.to_string(),
            user_id: member.identity.user_id.to_string(),
            action: "portal",
            stripe_session_id: Some(session.id.clone()),
        })
        .await;
    // The portal URL is a bearer credential: no cache may keep it.
    Ok(no_store(StatusCode::FOUND)
        .insert_header((header::LOCATION, location.as_str()))
        .finish())
}

/// `?flow=payment_method_update`, or `subscription_cancel` /
/// `subscription_update` with `&subscription=sub_…` of this organization.
async fn deep_link<'a>(
    state: &'a AppState,
    org: &Organization,
    query: &'a PortalQuery,
) -> Result<Option<FlowData<'a>>, ApiError> {
    let Some(flow) = query.flow.as_deref() else {
        return Ok(None);
    };
    let kind = match flow {
        "payment_method_update" => "payment_method_update",
        "subscription_cancel" => "subscription_cancel",
        "subscription_update" => "subscription_update",
        _ => {
            return Err(ApiError::Validation(
                "flow must be payment_method_update, subscription_cancel or subscription_update."
                    .to_owned(),
            ));
        }
    };
    let subscription = if kind == "payment_method_update" {
        None
    } else {
        let id = query
            .subscription
            .as_deref()
            .ok_or_else(|| ApiError::Validation(format!("{kind} needs a subscription.")))?;
        let customer = org.stripe_customer_id.as_ref().map(|c| c.as_str());
        let owner = state
            .store
            .subscription_customer(id)
            .await
            .map_err(ApiError::internal)?;
        if owner.is_none() || owner.as_deref() != customer {
            return Err(ApiError::Validation(
                "That subscription is not your organization's.".to_owned(),
            ));
        }
        Some(id)
    };
    Ok(Some(FlowData::new(kind, subscription, &state.plans_url)))
}

/// Stripe's answer is trusted, but a malformed URL must be a 500, not a
/// broken `Location` header.
fn portal_location(raw: &str) -> Result<Url, ApiError> {
    Url::parse(raw)
        .ok()
        .filter(|url| matches!(url.scheme(), "https" | "http") && url.host_str().is_some())
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("Stripe returned an unusable portal URL"))
        })
}
