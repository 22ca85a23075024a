//! Server-rendered pages: `GET /organization` (General and Plans tabs) and
//! the checkout forms it posts to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::{
    AuthError, Authenticator, Identity, KeyError, OrgMembership, token_from_request,
};
use crate::billing::reconcile;
use crate::domain::StripeCustomerId;
use crate::pages::{ErrorPage, Notice, OrganizationContext, OrganizationPage};
use crate::startup::AppState;
use crate::store::{AuditEntry, LinkError, LinkOutcome, Organization, Plans};
use crate::stripe::{CreateCheckoutSession, CreateCustomer, LineItem, SubscriptionData};

/// How long a page waits for Stripe when refreshing after a return from it.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(4);
/// How many invoices the billing history shows.
const HISTORY_LENGTH: i64 = 24;
const CSRF_KEY: &str = "csrf";

/// An error on a page: rendered as an HTML page, never as JSON.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in: to Clerk's sign-in page when configured, else a 401 page.
    #[error("sign in required")]
    SignIn(Option<String>),
    #[error("no active organization")]
    NoOrganization,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl PageError {
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn(Some(_)) => StatusCode::SEE_OTHER,
            Self::SignIn(None) => StatusCode::UNAUTHORIZED,
            Self::NoOrganization | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::SignIn(Some(url)) = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, url.as_str()))
                .finish();
        }
        if let Self::Internal(cause) = self {
            log::error!("page error: {cause:#}");
        }
        let (title, message, action) = match self {
            Self::SignIn(_) => ("Sign in required", "Sign in to see your organization's billing.".to_owned(), None),
            Self::NoOrganization => (
                "No organization selected",
                "You are signed in, but no organization is active. Select or create an organization, then come back."
                    .to_owned(),
                None,
            ),
            Self::Forbidden(why) => ("Not allowed", (*why).to_owned(), Some(("Back to organization", "/organization#/plans"))),
            Self::BadRequest(why) => ("Something is not right", why.clone(), Some(("Back to organization", "/organization#/plans"))),
            Self::NotFound => ("Not found", "There is nothing here.".to_owned(), None),
            Self::Internal(_) => (
                "Something went wrong",
                "Something went wrong on our side. Please try again in a moment.".to_owned(),
                None,
            ),
        };
        let page = ErrorPage {
            title,
            message: &message,
            action,
        };
        html_response(
            self.status_code(),
            page.render().unwrap_or_else(|_| message.clone()),
        )
    }
}

/// The signed-in user of a page load (`__session` cookie, or a bearer token).
pub async fn page_identity(
    req: &HttpRequest,
    state: &AppState,
    auth: &Authenticator,
) -> Result<Identity, PageError> {
    let token = token_from_request(req).map_err(|_| sign_in(state, req))?;
    match auth.verify(&token).await {
        Ok(identity) => Ok(identity),
        Err(AuthError::Key(KeyError::Unavailable)) => Err(PageError::internal(anyhow::anyhow!(
            "Clerk's keys are unavailable"
        ))),
        Err(err) => {
            log::info!("page sign-in required: {err}");
            Err(sign_in(state, req))
        }
    }
}

fn sign_in(state: &AppState, req: &HttpRequest) -> PageError {
    PageError::SignIn(state.pages.sign_in_url.as_ref().map(|url| {
        let mut url = url.clone();
        let back = format!("{}{}", state.origin, req.path());
        url.query_pairs_mut().append_pair("redirect_url", &back);
        url.to_string()
    }))
}

pub fn can_manage(state: &AppState, membership: &OrgMembership) -> bool {
    let roles = &state.pages.manage_roles;
    roles.is_empty() || membership.role.as_ref().is_some_and(|r| roles.contains(r))
}

pub const NOT_A_MANAGER: &str =
    "Your role in this organization cannot manage billing. Ask an organization admin.";

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> Result<String, PageError> {
    if let Some(token) = session
        .get::<String>(CSRF_KEY)
        .map_err(PageError::internal)?
    {
        return Ok(token);
    }
    let token =
        uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string();
    session
        .insert(CSRF_KEY, &token)
        .map_err(PageError::internal)?;
    Ok(token)
}

/// A form POST must carry the session's token and come from our own origin.
pub fn check_csrf(
    req: &HttpRequest,
    session: &Session,
    submitted: &str,
    origin: &str,
) -> Result<(), PageError> {
    let refused = PageError::Forbidden(
        "This form has expired or did not come from this site. Reload the page and try again.",
    );
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let same_origin = match (header(header::ORIGIN), header(header::REFERER)) {
        (Some(o), _) => o == origin,
        (None, Some(referer)) => referer.starts_with(&format!("{origin}/")),
        (None, None) => false,
    };
    let expected = session
        .get::<String>(CSRF_KEY)
        .ok()
        .flatten()
        .unwrap_or_default();
    let token_ok = !expected.is_empty()
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            submitted.as_bytes(),
        )
        .is_ok();
    if same_origin && token_ok {
        Ok(())
    } else {
        Err(refused)
    }
}

/// A rendered page; pages show per-user billing, so no cache keeps them.
pub fn html_page(body: String) -> HttpResponse {
    html_response(StatusCode::OK, body)
}

fn html_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

#[derive(Deserialize)]
pub struct PageQuery {
    checkout: Option<String>,
}

#[get("/organization")]
pub async fn organization(
    req: HttpRequest,
    session: Session,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, PageError> {
    let identity = page_identity(&req, &state, &auth).await?;
    let membership = identity.org.as_ref().ok_or(PageError::NoOrganization)?;
    let mut org = state
        .orgs
        .ensure(&state.store, &membership.id, membership.slug.as_deref())
        .await
        .map_err(PageError::internal)?;
    // Back from Stripe: show the change before its webhook arrives.
    let mut notice = None;
    if let Some(session_id) = query.checkout.as_deref() {
        notice = Some(refresh_after_checkout(&state, &org, session_id).await);
        org = state
            .store
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
        notice = refresh_after_portal(&state, &org, customer).await;
        plans = plans_of(&state, &org).await?;
    }
    let html = render_organization(
        &state,
        &org,
        membership,
        &plans,
        csrf_token(&session)?,
        notice,
    )
    .await?;
    Ok(html_page(html))
}

/// The plan state and billing history.
async fn plans_of(state: &AppState, org: &Organization) -> Result<Arc<Plans>, PageError> {
    let customer = org
        .stripe_customer_id
        .as_ref()
        .map(StripeCustomerId::as_str);
    state
        .store
        .plans(org.id.as_str(), customer, HISTORY_LENGTH)
        .await
        .map_err(PageError::internal)
}

pub async fn render_organization(
    state: &AppState,
    org: &Organization,
    membership: &OrgMembership,
    plans: &Plans,
    csrf: String,
    notice: Option<Notice>,
) -> Result<String, PageError> {
    let customer = org
        .stripe_customer_id
        .as_ref()
        .map(StripeCustomerId::as_str);
    let catalog = if customer.is_some() {
        Vec::new()
    } else {
        offers(state).await?
    };
    let context = OrganizationContext {
        org_id: org.id.to_string(),
        org_slug: org.slug.clone(),
        role: membership.role.clone(),
        can_manage: can_manage(state, membership),
        csrf,
        has_customer: customer.is_some(),
        notice,
        sells_credits: state.pages.credits_price_id.is_some(),
    };
    OrganizationPage::new(context, plans, &catalog)
        .render()
        .map_err(PageError::internal)
}

/// The synced catalog, else the configured prices.
async fn offers(state: &AppState) -> Result<Vec<crate::store::CatalogPrice>, PageError> {
    let synced = state.store.catalog().await.map_err(PageError::internal)?;
    if !synced.is_empty() {
        return Ok(synced);
    }
    Ok(state
        .pages
        .price_ids
        .iter()
        .map(|id| crate::store::CatalogPrice {
            id: id.clone(),
            product_name: None,
            unit_amount: None,
            currency: "usd".to_owned(),
            recurring_interval: None,
            interval_count: None,
            credits: None,
        })
        .collect())
}

/// After a checkout (`?checkout=cs_…`), fetch the session and the
/// customer from Stripe, bounded in time; on failure the synced state shows
/// with a note.
async fn refresh_after_checkout(state: &AppState, org: &Organization, session_id: &str) -> Notice {
    let refreshed =
        tokio::time::timeout(REFRESH_TIMEOUT, refresh_checkout(state, org, session_id)).await;
    match refreshed {
        Ok(Ok(())) => Notice {
            kind: "ok",
            text: "Thank you! Your purchase is complete.".to_owned(),
        },
        Ok(Err(err)) => {
            log::warn!("refresh after checkout {session_id} failed: {err:#}");
            still_syncing()
        }
        Err(_) => still_syncing(),
    }
}

/// After a portal visit (the portal returns to this page), fetch the
/// customer's state from Stripe once.
async fn refresh_after_portal(
    state: &AppState,
    org: &Organization,
    customer: &StripeCustomerId,
) -> Option<Notice> {
    let sync = reconcile::sync_customer_by_id(&state.store, &state.stripe, customer.as_str());
    match tokio::time::timeout(REFRESH_TIMEOUT, sync).await {
        Ok(Ok(_)) => {
            let _ = state.store.mark_refreshed(org.id.as_str()).await;
            None
        }
        Ok(Err(err)) => {
            log::warn!("refresh of {} after a portal visit failed: {err:#}", org.id);
            Some(still_syncing())
        }
        Err(_) => Some(still_syncing()),
    }
}

fn still_syncing() -> Notice {
    Notice {
        kind: "info",
        text: "Changes you made in Stripe are still syncing and will show here shortly.".to_owned(),
    }
}

async fn refresh_checkout(
    state: &AppState,
    org: &Organization,
    session_id: &str,
) -> anyhow::Result<()> {
    if !session_id.starts_with("cs_") || session_id.len() > 255 {
        anyhow::bail!("not a checkout session id");
    }
    let session = state.stripe.retrieve_checkout_session(session_id).await?;
    if session.org_id() != Some(org.id.as_str()) {
        anyhow::bail!("checkout session {session_id} belongs to another organization");
    }
    reconcile::apply_checkout_session(&state.store, &session).await?;
    if let Some(customer) = &session.customer {
        reconcile::sync_customer_by_id(&state.store, &state.stripe, customer).await?;
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct SubscribeForm {
    csrf: String,
    price: String,
}

#[derive(Deserialize)]
pub struct CreditsForm {
    csrf: String,
    quantity: i64,
}

#[post("/organization/checkout/subscription")]
pub async fn subscribe(
    req: HttpRequest,
    session: Session,
    form: web::Form<SubscribeForm>,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, PageError> {
    let (identity, org) = checkout_caller(&req, &session, &form.csrf, &state, &auth).await?;
    let price = state
        .store
        .price(&form.price)
        .await
        .map_err(PageError::internal)?;
    let offered = match &price {
        Some(p) => p.recurring_interval.is_some(),
        None => state.pages.price_ids.contains(&form.price),
    };
    if !offered {
        return Err(PageError::BadRequest(
            "That plan is not on offer.".to_owned(),
        ));
    }
    let customer = ensure_customer(&state, &org).await?;
    let line = LineItem {
        price: &form.price,
        quantity: 1,
    };
    start_checkout(
        &state,
        &identity,
        &org,
        &customer,
        "subscription",
        line,
        None,
    )
    .await
}

#[post("/organization/checkout/credits")]
pub async fn buy_credits(
    req: HttpRequest,
    session: Session,
    form: web::Form<CreditsForm>,
    state: web::Data<AppState>,
    auth: web::Data<Authenticator>,
) -> Result<HttpResponse, PageError> {
    let (identity, org) = checkout_caller(&req, &session, &form.csrf, &state, &auth).await?;
    let Some(price_id) = state.pages.credits_price_id.clone() else {
        return Err(PageError::BadRequest(
            "Credits are not for sale.".to_owned(),
        ));
    };
    if !(1..=1000).contains(&form.quantity) {
        return Err(PageError::BadRequest(
            "Choose between 1 and 1000 packs.".to_owned(),
        ));
    }
    let per_unit = state
        .store
        .price(&price_id)
        .await
        .map_err(PageError::internal)?
        .and_then(|p| p.credits)
        .unwrap_or(state.pages.credits_per_unit);
    let customer = ensure_customer(&state, &org).await?;
    let line = LineItem {
        price: &price_id,
        quantity: form.quantity,
    };
    let credits = per_unit.saturating_mul(form.quantity);
    start_checkout(
        &state,
        &identity,
        &org,
        &customer,
        "payment",
        line,
        Some(credits),
    )
    .await
}

/// Who is checking out: signed in, in an organization, allowed to, and the
/// form is genuine.
async fn checkout_caller(
    req: &HttpRequest,
    session: &Session,
    csrf: &str,
    state: &AppState,
    auth: &Authenticator,
) -> Result<(Identity, Organization), PageError> {
    let identity = page_identity(req, state, auth).await?;
    check_csrf(req, session, csrf, &state.origin)?;
    let membership = identity.org.clone().ok_or(PageError::NoOrganization)?;
    if !can_manage(state, &membership) {
        return Err(PageError::Forbidden(NOT_A_MANAGER));
    }
    let org = state
        .store
        .ensure_organization(&membership.id, membership.slug.as_deref())
        .await
        .map_err(PageError::internal)?;
    Ok((identity, org))
}

/// The organization's Stripe customer, created on its first purchase. The
/// idempotency key is derived from the organization, so concurrent clicks
/// (on any instance) get one customer from Stripe; the unique link in our
/// database settles who records it.
async fn ensure_customer(
    state: &AppState,
    org: &Organization,
) -> Result<StripeCustomerId, PageError> {
    if let Some(customer) = &org.stripe_customer_id {
        return Ok(customer.clone());
    }
    let name = org.slug.as_deref().unwrap_or(org.id.as_str());
    let params = CreateCustomer {
        name,
        metadata: BTreeMap::from([("org_id", org.id.as_str())]),
    };
    let created = state
        .stripe
        .create_customer(&params, &format!("customer-for-{}", org.id))
        .await
        .map_err(PageError::internal)?;
    let customer = StripeCustomerId::parse(&created.id).map_err(PageError::internal)?;
    match state.store.link_customer(&org.id, &customer, false).await {
        Ok(LinkOutcome::Linked | LinkOutcome::AlreadyLinked | LinkOutcome::Replaced { .. }) => {
            Ok(customer)
        }
        Err(LinkError::OrgHasCustomer { existing, .. }) => Ok(existing),
        Err(err) => Err(PageError::internal(err)),
    }
}

async fn start_checkout(
    state: &AppState,
    identity: &Identity,
    org: &Organization,
    customer: &StripeCustomerId,
    mode: &'static str,
    line: LineItem<'_>,
    credits: Option<i64>,
) -> Result<HttpResponse, PageError> {
    let success_url = format!(
        "{}/organization?checkout={{CHECKOUT_SESSION_ID}}#/plans",
        state.origin
    );
    let cancel_url = format!("{}/organization#/plans", state.origin);
    let mut metadata = BTreeMap::from([("org_id", org.id.to_string())]);
    if let Some(credits) = credits {
        metadata.insert("credits", credits.to_string());
    }
    let params = CreateCheckoutSession {
        mode,
        customer: customer.as_str(),
        client_reference_id: org.id.as_str(),
        line_items: vec![line],
        success_url: &success_url,
        cancel_url: &cancel_url,
        metadata,
        subscription_data: (mode == "subscription").then(|| SubscriptionData {
            metadata: BTreeMap::from([("org_id", org.id.as_str())]),
        }),
    };
    let key = format!("checkout-{}", uuid::Uuid::new_v4());
    let session = state
        .stripe
        .create_checkout_session(&params, &key)
        .await
        .map_err(PageError::internal)?;
    let url = session
        .url
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| PageError::internal(anyhow::anyhow!("Stripe returned no checkout URL")))?;
    let action = if mode == "subscription" {
        "checkout_subscription"
    } else {
        "checkout_credits"
    };
    state
        .audit
        .record(AuditEntry {
            org_id: org.id.to_string(),
            user_id: identity.user_id.to_string(),
            action,
            stripe_session_id: Some(session.id.clone()),
        })
        .await;
    log::info!(
        "checkout {} ({mode}) started for {} by {}",
        session.id,
        org.id,
        identity.user_id
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
