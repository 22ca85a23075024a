//! `GET /organization`: the General and Plans tabs. Back from Stripe
//! (`?checkout=cs_…`, or the portal's return), it refreshes from Stripe first.

use std::sync::Arc;

use actix_session::Session;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::billing::checkout::{self, Refreshed};
use crate::billing::{access, seats};
use crate::domain::CheckoutSessionId;
use crate::state::AppState;
use crate::store::{Organization, PLANS_HISTORY, Plans};
use crate::views::{Catalog, Notice, OrganizationContext, OrganizationPage};
use crate::web::PORTAL_PATH;
use crate::web::errors::{PageError, html_page};
use crate::web::guards::{PageMember, can_manage, csrf_token};

#[derive(Deserialize)]
pub struct PageQuery {
    checkout: Option<String>,
}

pub async fn show(
    member: PageMember,
    session: Session,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let store = &state.store;
    let mut org = store
        .ensure_organization_cached(&member.org.id, member.org.slug.as_deref())
        .await
        .map_err(PageError::internal)?;
    let mut notice = None;
    if let Some(session_id) = returned_from_checkout(query.checkout.as_deref()) {
        let refreshed = checkout::refresh_after_checkout(
            store,
            &state.stripe,
            &state.stripe_budget,
            &org,
            &session_id,
        )
        .await;
        notice = Some(match refreshed {
            Refreshed::Done => Notice {
                kind: "ok",
                text: "Thank you! Your purchase is complete.".to_owned(),
            },
            Refreshed::StillSyncing => still_syncing(),
        });
        org = store
            .find_organization(&org.id)
            .await
            .map_err(PageError::internal)?
            .unwrap_or(org);
    }
    let mut plans = plans_of(&state, &org).await?;
    if let (None, true, Some(customer)) = (
        &query.checkout,
        plans.billing.portal_visited,
        &org.stripe_customer_id,
    ) {
        let refreshed = checkout::refresh_after_portal(
            store,
            &state.stripe,
            &state.stripe_budget,
            &org,
            customer,
        )
        .await;
        notice = (refreshed == Refreshed::StillSyncing).then(still_syncing);
        plans = plans_of(&state, &org).await?;
    }
    let has_plan = checkout::has_live_subscription(&plans.billing);
    let context = OrganizationContext {
        org_id: org.id.to_string(),
        org_name: org.name.clone(),
        org_slug: org.slug.clone(),
        role: member.org.role.clone(),
        can_manage: can_manage(&state, &member.org),
        csrf: csrf_token(&session)?,
        has_customer: org.stripe_customer_id.is_some(),
        can_subscribe: !has_plan,
        notice,
        sells_credits: state.pages.credits_price_id.is_some(),
        portal_path: PORTAL_PATH,
        grace_ends_at: grace_ends_at(&state, &org).await?,
        seats_used: seats_used(&state, &org).await?,
        credits_low_balance: state.pages.credits_low_balance,
    };
    let (prices, features) = if has_plan {
        (Vec::new(), Vec::new())
    } else {
        tokio::try_join!(
            checkout::offers(store, &state.pages.price_ids),
            store.product_features(),
        )
        .map_err(PageError::internal)?
    };
    let catalog = Catalog {
        prices: &prices,
        features: &features,
    };
    let html = OrganizationPage::new(context, &plans, catalog)
        .render()
        .map_err(PageError::internal)?;
    Ok(html_page(html))
}

/// Members who take a seat, when the seats are tracked.
async fn seats_used(state: &AppState, org: &Organization) -> Result<Option<i64>, PageError> {
    if !(state.seats.follow_members || state.seats.report_limit) {
        return Ok(None);
    }
    let members = state
        .store
        .members_of(org.id.as_str())
        .await
        .map_err(PageError::internal)?;
    Ok(Some(seats::members_taking_seats(&members, &state.seats)))
}

/// The session a return from Checkout names, if it is one: anything else in
/// the link is ignored (never sent to Stripe, logged escaped and cut short).
fn returned_from_checkout(raw: Option<&str>) -> Option<CheckoutSessionId> {
    match CheckoutSessionId::parse(raw?) {
        Ok(session) => Some(session),
        Err(err) => {
            log::info!("ignored a return link: {err}");
            None
        }
    }
}

/// The plan state and billing history.
async fn plans_of(state: &AppState, org: &Organization) -> Result<Arc<Plans>, PageError> {
    let customer = org.stripe_customer_id.as_ref().map(|c| c.as_str());
    state
        .store
        .plans(org.id.as_str(), customer, PLANS_HISTORY)
        .await
        .map_err(PageError::internal)
}

/// When the organization's grace period ends, while it is in one.
async fn grace_ends_at(state: &AppState, org: &Organization) -> Result<Option<i64>, PageError> {
    let answer = access::of(&state.store, org, state.access.grace_period)
        .await
        .map_err(PageError::internal)?;
    Ok(answer.grace_ends_at)
}

fn still_syncing() -> Notice {
    Notice {
        kind: "info",
        text: "Changes you made in Stripe are still syncing and will show here shortly.".to_owned(),
    }
}
