//! Clerk's Backend API, for `clerk sync`: organizations and their
//! memberships, a page (`limit`, `offset`) at a time.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::ClerkApiSettings;

#[derive(Debug, thiserror::Error)]
pub enum ClerkApiError {
    #[error("Clerk answered {status} to {path}")]
    Status { status: u16, path: String },
    #[error("could not reach Clerk for {path}: {source}")]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ClerkApiError {
    /// The key may not read this resource, or it is gone: skip it.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Status {
                status: 401 | 403 | 404,
                ..
            }
        )
    }
}

/// One page of a list.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub data: Vec<Value>,
    #[serde(default)]
    pub total_count: Option<i64>,
}

#[derive(Clone)]
pub struct ClerkApi {
    http: reqwest::Client,
    base: Url,
    secret_key: SecretString,
}

impl ClerkApi {
    pub fn new(settings: &ClerkApiSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("lance-billing/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: settings.api_base.clone(),
            secret_key: settings.secret_key.clone(),
        })
    }

    /// Organizations, oldest first.
    pub async fn organizations(&self, limit: u32, offset: u64) -> Result<Page, ClerkApiError> {
        self.page("/v1/organizations", limit, offset).await
    }

    /// An organization's memberships.
    pub async fn memberships(
        &self,
        org: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Page, ClerkApiError> {
        let path = format!(
            "/v1/organizations/{}/memberships",
            crate::stripe::path_segment(org)
        );
        self.page(&path, limit, offset).await
    }

    async fn page(&self, path: &str, limit: u32, offset: u64) -> Result<Page, ClerkApiError> {
        let transport = |source| ClerkApiError::Transport {
            path: path.to_owned(),
            source,
        };
        let mut url = self.base.clone();
        url.set_path(path);
        let response = self
            .http
            .get(url)
            .bearer_auth(self.secret_key.expose_secret())
            .query(&[("limit", limit.to_string()), ("offset", offset.to_string())])
            .query(&[("order_by", "+created_at")])
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClerkApiError::Status {
                status: status.as_u16(),
                path: path.to_owned(),
            });
        }
        response.json().await.map_err(transport)
    }
}
