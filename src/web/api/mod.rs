//! JSON handlers, one resource a file. Errors are `ApiError`, so every
//! failure has the contract's body.

mod body;
pub mod clerk_webhook;
pub mod credits;
pub mod entitlements;
pub mod health;
pub mod invoices;
pub mod plan_state;
pub mod portal;
pub mod usage;
pub mod webhooks;

use crate::domain::OrgId;
use crate::state::AppState;
use crate::store::Organization;
use crate::web::errors::ApiError;

/// The organization `id` names, for the internal routes, if this service
/// has seen it; a read never makes one.
async fn known_organization(state: &AppState, id: &str) -> Result<Organization, ApiError> {
    let org = OrgId::parse(id).map_err(|e| ApiError::Validation(format!("{e}.")))?;
    state
        .store
        .find_organization_cached(&org)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound(format!("No organization {org} is known.")))
}
