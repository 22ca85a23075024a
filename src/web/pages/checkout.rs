//! The checkout forms of the Plans tab: `POST /organization/checkout/…`.
//! Each answers `303 See Other` to Stripe Checkout.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::billing::checkout::{self, CheckoutRequest, Purchase};
use crate::state::AppState;
use crate::web::errors::{PageError, see_other};
use crate::web::guards::{PageManager, Posted};

#[derive(Deserialize)]
pub struct SubscribeForm {
    price: String,
}

#[derive(Deserialize)]
pub struct CreditsForm {
    quantity: i64,
}

pub async fn subscribe(
    posted: Posted<PageManager, SubscribeForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Posted { by, form } = posted;
    let org = by.0.organization(&state.store).await?;
    let customer = org.stripe_customer_id.as_ref().map(|c| c.as_str());
    let plans = state
        .store
        .plans(org.id.as_str(), customer, 0)
        .await
        .map_err(PageError::internal)?;
    if checkout::has_live_subscription(&plans.billing) {
        return Err(PageError::Conflict(
            "Your organization already has a plan. Change it with Manage billing instead.",
        ));
    }
    let offers = checkout::offers(&state.store, &state.pages.price_ids)
        .await
        .map_err(PageError::internal)?;
    if !offers.iter().any(|offer| offer.id == form.price) {
        return Err(PageError::BadRequest(
            "That plan is not on offer.".to_owned(),
        ));
    }
    let purchase = Purchase::Subscription { price: &form.price };
    send_to_checkout(&state, by, purchase).await
}

pub async fn buy_credits(
    posted: Posted<PageManager, CreditsForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Posted { by, form } = posted;
    let Some(price) = state.pages.credits_price_id.as_deref() else {
        return Err(PageError::BadRequest(
            "Credits are not for sale.".to_owned(),
        ));
    };
    if !(1..=1000).contains(&form.quantity) {
        return Err(PageError::BadRequest(
            "Choose between 1 and 1000 packs.".to_owned(),
        ));
    }
    let per_pack = state
        .store
        .price(price)
        .await
        .map_err(PageError::internal)?
        .and_then(|p| p.credits)
        .unwrap_or(state.pages.credits_per_unit);
    let purchase = Purchase::Credits {
        price,
        quantity: form.quantity,
        credits: per_pack.saturating_mul(form.quantity),
    };
    send_to_checkout(&state, by, purchase).await
}

/// Creates the customer on the organization's first purchase, then the
/// Checkout session, and sends the browser there.
async fn send_to_checkout(
    state: &AppState,
    PageManager(manager): PageManager,
    purchase: Purchase<'_>,
) -> Result<HttpResponse, PageError> {
    let org = manager.organization(&state.store).await?;
    let customer = checkout::ensure_customer(&state.store, &state.stripe, &org)
        .await
        .map_err(PageError::internal)?;
    let request = CheckoutRequest {
        org: &org,
        customer: &customer,
        user: &manager.identity.user_id,
        purchase,
        origin: &state.origin,
    };
    let url = checkout::start_checkout(&state.store, &state.stripe, &state.audit, request)
        .await
        .map_err(PageError::internal)?;
    Ok(see_other(&url))
}
