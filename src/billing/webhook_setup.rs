//! `lance-billing webhooks setup`: the Stripe webhook endpoint this service
//! needs, made so from the service itself. It subscribes exactly the events
//! the sync rules handle (`rules::HANDLED_EVENTS`) at `STRIPE_API_VERSION`,
//! and running it again changes nothing.

use std::collections::BTreeSet;
use std::fmt;

use anyhow::Context;

use super::rules::HANDLED_EVENTS;
use crate::stripe::{CreateWebhookEndpoint, StripeClient, UpdateWebhookEndpoint, WebhookEndpoint};

/// What `setup_endpoint` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSetup {
    /// A new endpoint; its signing secret is shown this once.
    Created { id: String, secret: Option<String> },
    /// An endpoint at that URL now subscribes exactly the handled events.
    Updated {
        id: String,
        added: Vec<String>,
        removed: Vec<String>,
        reenabled: bool,
        version: VersionCheck,
    },
    /// Nothing to change.
    UpToDate { id: String, version: VersionCheck },
}

/// An existing endpoint's API version against ours: Stripe cannot change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionCheck {
    Same,
    /// `None`: the endpoint follows the account's default version.
    Other {
        endpoint: Option<String>,
        ours: String,
    },
}

/// Creates the endpoint at `url`, or brings the one there up to date. With
/// `new`, creates another endpoint even when one exists (to roll the API
/// version: both deliver until the old one is deleted).
pub async fn setup_endpoint(
    stripe: &StripeClient,
    url: &str,
    new: bool,
) -> anyhow::Result<EndpointSetup> {
    let ours = stripe.api_version().to_owned();
    let existing = match new {
        true => None,
        false => stripe
            .webhook_endpoints()
            .await
            .context("could not list the webhook endpoints")?
            .into_iter()
            .find(|endpoint| endpoint.url == url),
    };
    match existing {
        None => create(stripe, url, &ours).await,
        Some(endpoint) => bring_up_to_date(stripe, endpoint, ours).await,
    }
}

async fn create(stripe: &StripeClient, url: &str, version: &str) -> anyhow::Result<EndpointSetup> {
    let params = CreateWebhookEndpoint {
        url,
        enabled_events: HANDLED_EVENTS,
        api_version: version,
        description: "lance-billing",
    };
    // A retried creation must not make a second endpoint.
    let key = format!("webhook-endpoint-{}", uuid::Uuid::new_v4());
    let created = stripe
        .create_webhook_endpoint(&params, &key)
        .await
        .context("could not create the webhook endpoint")?;
    Ok(EndpointSetup::Created {
        id: created.id,
        secret: created.secret,
    })
}

async fn bring_up_to_date(
    stripe: &StripeClient,
    endpoint: WebhookEndpoint,
    ours: String,
) -> anyhow::Result<EndpointSetup> {
    let wanted: BTreeSet<&str> = HANDLED_EVENTS.iter().copied().collect();
    let current: BTreeSet<&str> = endpoint.enabled_events.iter().map(String::as_str).collect();
    let added: Vec<String> = wanted.difference(&current).map(|e| e.to_string()).collect();
    let removed: Vec<String> = current.difference(&wanted).map(|e| e.to_string()).collect();
    let disabled = endpoint.status.as_deref() == Some("disabled");
    let version = match &endpoint.api_version {
        Some(v) if *v == ours => VersionCheck::Same,
        other => VersionCheck::Other {
            endpoint: other.clone(),
            ours,
        },
    };
    if added.is_empty() && removed.is_empty() && !disabled {
        return Ok(EndpointSetup::UpToDate {
            id: endpoint.id,
            version,
        });
    }
    let params = UpdateWebhookEndpoint {
        enabled_events: HANDLED_EVENTS,
        disabled: disabled.then_some(false),
    };
    let key = format!("webhook-endpoint-update-{}", uuid::Uuid::new_v4());
    stripe
        .update_webhook_endpoint(&endpoint.id, &params, &key)
        .await
        .with_context(|| format!("could not update webhook endpoint {}", endpoint.id))?;
    Ok(EndpointSetup::Updated {
        id: endpoint.id,
        added,
        removed,
        reenabled: disabled,
        version,
    })
}

impl fmt::Display for EndpointSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created { id, secret } => {
                writeln!(
                    f,
                    "created webhook endpoint {id} for {} event type(s)",
                    HANDLED_EVENTS.len()
                )?;
                match secret {
                    Some(secret) => write!(
                        f,
                        "signing secret (shown once; set STRIPE_WEBHOOK_SECRET to it): {secret}"
                    ),
                    None => write!(
                        f,
                        "Stripe returned no signing secret: reveal it in the Dashboard"
                    ),
                }
            }
            Self::Updated {
                id,
                added,
                removed,
                reenabled,
                version,
            } => {
                writeln!(f, "updated webhook endpoint {id}")?;
                if !added.is_empty() {
                    writeln!(f, "  now also receives: {}", added.join(", "))?;
                }
                if !removed.is_empty() {
                    writeln!(f, "  no longer receives: {}", removed.join(", "))?;
                }
                if *reenabled {
                    writeln!(
                        f,
                        "  re-enabled: Stripe had disabled it after failed deliveries"
                    )?;
                }
                write!(f, "{version}")
            }
            Self::UpToDate { id, version } => {
                writeln!(f, "webhook endpoint {id} is up to date: nothing changed")?;
                write!(f, "{version}")
            }
        }
    }
}

impl fmt::Display for VersionCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Same => write!(f, "  API version: as configured"),
            Self::Other { endpoint, ours } => write!(
                f,
                "  API version: the endpoint sends events at {}, not {ours}. Stripe cannot change an \
                 existing endpoint's version; to roll it: run `lance-billing webhooks setup --url <same URL> --new`, \
                 add the new signing secret to STRIPE_WEBHOOK_SECRET (comma-separated, beside the old one), \
                 and delete the old endpoint in the Dashboard once the new one delivers. Events arrive at \
                 either version meanwhile and are applied once.",
                endpoint
                    .as_deref()
                    .unwrap_or("the account's default version")
            ),
        }
    }
}
