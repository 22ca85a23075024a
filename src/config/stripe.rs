//! Stripe's settings: the API key and client, the catch-up, the meters, and
//! the webhook deliveries' verification.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{ConfigError, Env};

#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub secret_key: SecretString,
    pub api_base: Url,
    pub api_version: String,
    pub portal_configuration: Option<String>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_retries: u32,
    /// How often the server catches up on events through the Events API
    /// (`STRIPE_CATCHUP_INTERVAL`); `None` when set to `0`.
    pub catchup_interval: Option<Duration>,
    /// The event names of the meters usage may be reported to (`STRIPE_METERS`).
    pub meters: Vec<String>,
    /// Meter events sent a second at most (`STRIPE_METER_EVENTS_PER_SECOND`).
    pub meter_events_per_second: u32,
}

/// Stripe's documented limit for `POST /v1/billing/meter_events` in live mode.
const DEFAULT_METER_EVENTS_PER_SECOND: u32 = 1000;

impl StripeSettings {
    /// The API version our parsing is written against; events may still arrive
    /// rendered at older or newer versions (see `billing`).
    pub const DEFAULT_API_VERSION: &'static str = "2025-09-30.clover";
    pub const DEFAULT_API_BASE: &'static str = "https://api.stripe.com";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let key = env.require(
            "STRIPE_SECRET_KEY",
            "set it to your Stripe secret key (sk_test_… or a restricted rk_… key)",
        )?;
        if !(key.starts_with("sk_") || key.starts_with("rk_")) {
            return Err(ConfigError::new(
                "STRIPE_SECRET_KEY",
                "must be a Stripe secret key starting with sk_ or rk_ (a publishable pk_ key will not work)",
            ));
        }
        let base = env.get("STRIPE_API_BASE").unwrap_or(Self::DEFAULT_API_BASE);
        let portal_configuration = env.get("STRIPE_PORTAL_CONFIGURATION").map(str::to_owned);
        if portal_configuration
            .as_ref()
            .is_some_and(|bpc| !bpc.starts_with("bpc_"))
        {
            return Err(ConfigError::new(
                "STRIPE_PORTAL_CONFIGURATION",
                "must be a portal configuration id starting with bpc_",
            ));
        }
        Ok(Self {
            secret_key: SecretString::from(key.to_owned()),
            api_base: env.url("STRIPE_API_BASE", base)?,
            api_version: env
                .get("STRIPE_API_VERSION")
                .unwrap_or(Self::DEFAULT_API_VERSION)
                .to_owned(),
            portal_configuration,
            connect_timeout: env.duration_or("STRIPE_CONNECT_TIMEOUT", Duration::from_secs(5))?,
            timeout: env.duration_or("STRIPE_TIMEOUT", Duration::from_secs(10))?,
            max_retries: env.parse_or("STRIPE_MAX_RETRIES", 2, "a whole number")?,
            catchup_interval: Some(
                env.duration_or("STRIPE_CATCHUP_INTERVAL", Duration::from_secs(300))?,
            )
            .filter(|interval| !interval.is_zero()),
            meters: env.list("STRIPE_METERS"),
            meter_events_per_second: match env.parse_or(
                "STRIPE_METER_EVENTS_PER_SECOND",
                DEFAULT_METER_EVENTS_PER_SECOND,
                "a whole number",
            )? {
                0 => {
                    return Err(ConfigError::new(
                        "STRIPE_METER_EVENTS_PER_SECOND",
                        "must be at least 1",
                    ));
                }
                n => n,
            },
        })
    }

    pub fn is_live(&self) -> bool {
        let key = self.secret_key.expose_secret();
        key.starts_with("sk_live_") || key.starts_with("rk_live_")
    }
}

/// Verification of Stripe's webhook deliveries.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Several while a secret is being rolled: a delivery signed with any passes.
    pub secrets: Vec<SecretString>,
    pub tolerance: Duration,
}

impl WebhookSettings {
    /// `None` when `STRIPE_WEBHOOK_SECRET` is unset: the endpoint then refuses deliveries.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let tolerance = env.duration_or("STRIPE_WEBHOOK_TOLERANCE", Duration::from_secs(300))?;
        if env.get("STRIPE_WEBHOOK_SECRET").is_none() {
            return Ok(None);
        }
        let secrets = env.list("STRIPE_WEBHOOK_SECRET");
        if secrets.is_empty() || secrets.iter().any(|s| !s.starts_with("whsec_")) {
            return Err(ConfigError::new(
                "STRIPE_WEBHOOK_SECRET",
                "must be one or more comma-separated signing secrets starting with whsec_",
            ));
        }
        Ok(Some(Self {
            secrets: secrets.into_iter().map(SecretString::from).collect(),
            tolerance,
        }))
    }
}
