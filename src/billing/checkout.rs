//! Buying: what is on offer, the one Stripe customer per organization,
//! Checkout sessions, and the refresh after the browser returns from Stripe
//! (Checkout or the Customer Portal), so the change shows before its webhook.

use std::collections::BTreeMap;
use std::time::Duration;

use super::budget::StripeBudget;
use super::reconcile;
use crate::domain::{CheckoutSessionId, StripeCustomerId, UserId};
use crate::store::{
    AuditEntry, AuditLog, BillingState, CatalogPrice, CheckoutReturn, LinkError, LinkOutcome,
    Organization, Store, StoreError,
};
use crate::stripe::{
    CreateCheckoutSession, CreateCustomer, LineItem, StripeClient, SubscriptionData,
};

/// How long a page waits for Stripe when refreshing after a return from it.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(4);

/// What a Checkout session sells.
#[derive(Debug, Clone, Copy)]
pub enum Purchase<'a> {
    /// A recurring price, one unit.
    Subscription { price: &'a str },
    /// `quantity` packs of the credits price, granting `credits` in all.
    Credits {
        price: &'a str,
        quantity: i64,
        credits: i64,
    },
}

impl Purchase<'_> {
    fn mode(&self) -> &'static str {
        match self {
            Self::Subscription { .. } => "subscription",
            Self::Credits { .. } => "payment",
        }
    }

    fn audit_action(&self) -> &'static str {
        match self {
            Self::Subscription { .. } => "checkout_subscription",
            Self::Credits { .. } => "checkout_credits",
        }
    }

    fn line(&self) -> LineItem<'_> {
        match *self {
            Self::Subscription { price } => LineItem { price, quantity: 1 },
            Self::Credits {
                price, quantity, ..
            } => LineItem { price, quantity },
        }
    }
}

/// Statuses of a subscription the organization still has: while one is,
/// it changes its plan in the portal and is sold no second one.
const LIVE_STATUSES: [&str; 5] = ["active", "trialing", "past_due", "unpaid", "paused"];

/// Whether the organization still has a plan (a subscription of a live
/// status): it is then sold no other.
pub fn has_live_subscription(billing: &BillingState) -> bool {
    billing
        .subscriptions
        .iter()
        .any(|s| LIVE_STATUSES.contains(&s.status.as_str()))
}

/// The synced catalog, else the configured prices (`PRICE_IDS`).
pub async fn offers(store: &Store, configured: &[String]) -> Result<Vec<CatalogPrice>, StoreError> {
    let synced = store.catalog().await?;
    if !synced.is_empty() {
        return Ok(synced);
    }
    Ok(configured
        .iter()
        .map(|id| CatalogPrice {
            id: id.clone(),
            product_id: None,
            product_name: None,
            unit_amount: None,
            currency: "usd".to_owned(),
            recurring_interval: None,
            interval_count: None,
            credits: None,
        })
        .collect())
}

/// The organization's Stripe customer, created on its first purchase. The
/// idempotency key is derived from the organization and how many customers
/// it has lost, so concurrent clicks (on any instance) get one customer from
/// Stripe, and a customer deleted since is never replayed by Stripe's key
/// window; the unique link in our database settles who records it.
pub async fn ensure_customer(
    store: &Store,
    stripe: &StripeClient,
    org: &Organization,
) -> anyhow::Result<StripeCustomerId> {
    if let Some(customer) = &org.stripe_customer_id {
        return Ok(customer.clone());
    }
    let name = org.slug.as_deref().unwrap_or(org.id.as_str());
    let params = CreateCustomer {
        name,
        metadata: BTreeMap::from([("org_id", org.id.as_str())]),
    };
    let generation = store.customer_generation(&org.id).await?;
    let created = stripe
        .create_customer(&params, &format!("customer-for-{}-{generation}", org.id))
        .await?;
    let customer = StripeCustomerId::parse(&created.id)?;
    match store.link_customer(&org.id, &customer, false).await {
        Ok(LinkOutcome::Linked | LinkOutcome::AlreadyLinked | LinkOutcome::Replaced { .. }) => {
            Ok(customer)
        }
        Err(LinkError::OrgHasCustomer { existing, .. }) => Ok(existing),
        Err(err) => Err(err.into()),
    }
}

/// Who buys what, and where the browser comes back to.
pub struct CheckoutRequest<'a> {
    pub org: &'a Organization,
    pub customer: &'a StripeCustomerId,
    pub user: &'a UserId,
    pub purchase: Purchase<'a>,
    /// `PUBLIC_URL` without a trailing slash.
    pub origin: &'a str,
}

/// Creates a Checkout session, audits it, and returns the URL to send the
/// browser to.
pub async fn start_checkout(
    store: &Store,
    stripe: &StripeClient,
    audit: &AuditLog,
    request: CheckoutRequest<'_>,
) -> anyhow::Result<String> {
    let CheckoutRequest {
        org,
        customer,
        user,
        purchase,
        origin,
    } = request;
    let success_url = format!("{origin}/organization?checkout={{CHECKOUT_SESSION_ID}}#/plans");
    let cancel_url = format!("{origin}/organization#/plans");
    let mut metadata = BTreeMap::from([("org_id", org.id.to_string())]);
    if let Purchase::Credits { credits, .. } = purchase {
        metadata.insert("credits", credits.to_string());
    }
    let mode = purchase.mode();
    let params = CreateCheckoutSession {
        mode,
        customer: customer.as_str(),
        client_reference_id: org.id.as_str(),
        line_items: vec![purchase.line()],
        success_url: &success_url,
        cancel_url: &cancel_url,
        metadata,
        subscription_data: matches!(purchase, Purchase::Subscription { .. }).then(|| {
            SubscriptionData {
                metadata: BTreeMap::from([("org_id", org.id.as_str())]),
            }
        }),
    };
    let key = format!("checkout-{}", uuid::Uuid::new_v4());
    let session = stripe.create_checkout_session(&params, &key).await?;
    let url = session
        .url
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| anyhow::anyhow!("Stripe returned no checkout URL"))?;
    // Before the browser goes: the session's completion links only what we recorded.
    store
        .record_checkout_session(&session.id, org.id.as_str(), customer.as_str())
        .await?;
    audit
        .record(AuditEntry {
            org_id: org.id.to_string(),
            user_id: user.to_string(),
            action: purchase.audit_action(),
            stripe_session_id: Some(session.id.clone()),
        })
        .await;
    log::info!(
        "checkout {} ({mode}) started for {} by {user}",
        session.id,
        org.id
    );
    Ok(url)
}

/// How a refresh after a return from Stripe went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// What Stripe holds is now stored.
    Done,
    /// Stripe was slow or failed: the synced state shows, and the webhook
    /// will bring the change shortly.
    StillSyncing,
}

/// After a checkout (`?checkout=cs_…`), fetch the session and the customer
/// from Stripe, bounded in time: only a session this service created for
/// `org`, only until one fetch applied it, and within `org`'s budget of
/// Stripe calls.
pub async fn refresh_after_checkout(
    store: &Store,
    stripe: &StripeClient,
    budget: &StripeBudget,
    org: &Organization,
    session: &CheckoutSessionId,
) -> Refreshed {
    match store
        .checkout_return(session.as_str(), org.id.as_str())
        .await
    {
        Ok(Some(CheckoutReturn { answered: true })) => return Refreshed::Done,
        Ok(Some(_)) => {}
        Ok(None) => {
            log::info!(
                "{} returned with checkout {session}, not one created for it",
                org.id
            );
            return Refreshed::StillSyncing;
        }
        Err(err) => {
            log::warn!("could not read checkout {session}: {err}");
            return Refreshed::StillSyncing;
        }
    }
    if !budget.allows(&org.id) {
        return Refreshed::StillSyncing;
    }
    let refreshed = tokio::time::timeout(
        REFRESH_TIMEOUT,
        refresh_checkout(store, stripe, org, session),
    )
    .await;
    match refreshed {
        Ok(Ok(())) => {
            if let Err(err) = store.mark_checkout_answered(session.as_str()).await {
                log::warn!("could not remember checkout {session} as answered: {err}");
            }
            Refreshed::Done
        }
        Ok(Err(err)) => {
            log::warn!("refresh after checkout {session} failed: {err:#}");
            Refreshed::StillSyncing
        }
        Err(_) => Refreshed::StillSyncing,
    }
}

async fn refresh_checkout(
    store: &Store,
    stripe: &StripeClient,
    org: &Organization,
    session: &CheckoutSessionId,
) -> anyhow::Result<()> {
    let session = stripe.retrieve_checkout_session(session.as_str()).await?;
    let own = Some(org.id.as_str());
    if session.trusted_org() != own && session.named_org() != own {
        anyhow::bail!(
            "checkout session {} belongs to another organization",
            session.id
        );
    }
    reconcile::apply_checkout_session(store, &session).await?;
    if let Some(customer) = &session.customer {
        reconcile::sync_customer_by_id(store, stripe, customer).await?;
    }
    Ok(())
}

/// After a portal visit (the portal returns to the Plans tab), fetch the
/// customer's state from Stripe once, within `org`'s budget of calls.
pub async fn refresh_after_portal(
    store: &Store,
    stripe: &StripeClient,
    budget: &StripeBudget,
    org: &Organization,
    customer: &StripeCustomerId,
) -> Refreshed {
    if !budget.allows(&org.id) {
        return Refreshed::StillSyncing;
    }
    let sync = reconcile::sync_customer_by_id(store, stripe, customer.as_str());
    match tokio::time::timeout(REFRESH_TIMEOUT, sync).await {
        Ok(Ok(report)) => {
            if !report.unreadable().is_empty() {
                log::warn!("refresh of {} after a portal visit: {report}", org.id);
            }
            let _ = store.mark_refreshed(org.id.as_str()).await;
            Refreshed::Done
        }
        Ok(Err(err)) => {
            log::warn!("refresh of {} after a portal visit failed: {err:#}", org.id);
            Refreshed::StillSyncing
        }
        Err(_) => Refreshed::StillSyncing,
    }
}
