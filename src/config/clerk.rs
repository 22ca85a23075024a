//! Clerk's settings beside session tokens: its Backend API (`clerk sync`)
//! and the signing secrets of its webhooks.

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, Env};

/// What `clerk sync` needs.
#[derive(Debug, Clone)]
pub struct ClerkApiSettings {
    /// `CLERK_SECRET_KEY`, sent as a bearer token.
    pub secret_key: SecretString,
    /// `CLERK_API_BASE`; Clerk's own unless a stand-in is used.
    pub api_base: Url,
}

impl ClerkApiSettings {
    pub const DEFAULT_API_BASE: &'static str = "https://api.clerk.com";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let key = env.require(
            "CLERK_SECRET_KEY",
            "Clerk's secret key (sk_…) reads organizations and members",
        )?;
        let raw = env.get("CLERK_API_BASE").unwrap_or(Self::DEFAULT_API_BASE);
        Ok(Self {
            secret_key: SecretString::from(key.to_owned()),
            api_base: env.url("CLERK_API_BASE", raw)?,
        })
    }
}

/// `CLERK_WEBHOOK_SECRET`: each a Svix secret (`whsec_<base64>`).
pub(super) fn clerk_webhook_secrets(env: &Env) -> Result<Vec<SecretString>, ConfigError> {
    let secrets: Vec<SecretString> = env
        .list("CLERK_WEBHOOK_SECRET")
        .into_iter()
        .map(SecretString::from)
        .collect();
    crate::clerk::svix::SvixVerifier::new(&secrets)
        .map_err(|e| ConfigError::new("CLERK_WEBHOOK_SECRET", e.to_string()))?;
    Ok(secrets)
}
