//! What handlers share: one instance per process, behind `web::Data`. It
//! sits below the web layer and imports nothing from it, so handlers and
//! the server that mounts them both depend on it and not on each other.

use crate::billing::Ingestor;
use crate::billing::budget::StripeBudget;
use crate::billing::credits::Debits;
use crate::billing::usage::UsageIntake;
use crate::billing::versions::VersionWatch;
use crate::clerk::svix::SvixVerifier;
use crate::config::{AccessSettings, PagesSettings, SeatSettings};
use crate::store::{AuditLog, Store};
use crate::stripe::StripeClient;
use crate::stripe::webhook::WebhookVerifier;

pub struct AppState {
    pub store: Store,
    pub stripe: StripeClient,
    /// `{PUBLIC_URL}/organization#/plans`, computed once at startup.
    pub plans_url: String,
    pub portal_configuration: Option<String>,
    /// `PUBLIC_URL` without a trailing slash: the only origin we build URLs from.
    pub origin: String,
    pub pages: PagesSettings,
    pub access: AccessSettings,
    /// The bearer token `GET /metrics` asks for (`METRICS_TOKEN`).
    pub metrics_token: Option<secrecy::SecretString>,
    /// Seats that follow members, and their limit in entitlements.
    pub seats: SeatSettings,
    pub audit: AuditLog,
    /// `None` when no webhook secret is configured.
    pub webhooks: Option<WebhookVerifier>,
    /// Clerk's deliveries; `None` when no `CLERK_WEBHOOK_SECRET` is configured.
    pub clerk_webhooks: Option<SvixVerifier>,
    pub ingestor: Ingestor,
    /// Debits of credits, written in batches.
    pub debits: Debits,
    /// The meters usage may be reported to (`STRIPE_METERS`).
    pub meters: Vec<String>,
    /// Usage records, written in batches.
    pub usage: UsageIntake,
    /// How long a request body may take to arrive (`CLIENT_BODY_TIMEOUT`).
    pub body_timeout: std::time::Duration,
    /// Webhook events at another API version than ours, told once each.
    pub versions: VersionWatch,
    /// Stripe calls each organization's page loads may still make.
    pub stripe_budget: StripeBudget,
}
