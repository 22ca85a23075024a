//! `GET /api/v1/operations/payment/customer-portal`: send the signed-in user
//! to Stripe's Customer Portal for their organization (see
//! docs: `shared/spec/customer-portal.txt`).

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use url::Url;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::stripe::CreatePortalSession;

#[get("/customer-portal")]
pub async fn customer_portal(
    identity: Identity,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let membership = identity.require_org()?;
    let org = state
        .orgs
        .ensure(&state.store, &membership.id, membership.slug.as_deref())
        .await
        .map_err(ApiError::internal)?;
    let customer = org.stripe_customer_id.ok_or_else(|| {
        ApiError::NotFound(
            "Your organization does not have a billing account yet. Subscribe to a plan or buy credits first."
                .to_owned(),
        )
    })?;
    // The return URL comes from configuration only: a forged Host header must
    // not turn Stripe's portal into an open redirect.
    let params = CreatePortalSession {
        customer: customer.as_str(),
        return_url: &state.plans_url,
        configuration: state.portal_configuration.as_deref(),
    };
    let idempotency_key = format!("portal-{}", uuid::Uuid::new_v4());
    let session = state
        .stripe
        .create_portal_session(&params, &idempotency_key)
        .await
        .map_err(ApiError::internal)?;
    let location = portal_location(&session.url)?;
    log::info!(
        "portal session {} opened for {} ({customer}) by {}",
        session.id,
        org.id,
        identity.user_id
    );
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, location.as_str()))
        // The portal URL is a bearer credential: no cache may keep it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
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
