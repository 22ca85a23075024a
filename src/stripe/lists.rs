//! Stripe's paged lists: `limit=100`, then `starting_after` the last id
//! while `has_more`.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::objects::List;
use super::{StripeClient, StripeError};

/// Stripe's largest page.
const PAGE_SIZE: &str = "100";

impl StripeClient {
    /// Every page of the list at `path`, with `params` on each request.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Vec<T>, StripeError> {
        let mut items = Vec::new();
        let mut starting_after: Option<String> = None;
        loop {
            let page = self
                .list_page(path, params, starting_after.as_deref())
                .await?;
            let last_id = page
                .data
                .last()
                .and_then(|o| o["id"].as_str())
                .map(str::to_owned);
            for object in page.data {
                items.push(parse_item(path, object)?);
            }
            match (page.has_more, last_id) {
                (true, Some(id)) => starting_after = Some(id),
                _ => return Ok(items),
            }
        }
    }

    /// One page of the list at `path`, after the object `starting_after`.
    pub async fn list_page(
        &self,
        path: &str,
        params: &[(&str, &str)],
        starting_after: Option<&str>,
    ) -> Result<List<serde_json::Value>, StripeError> {
        let mut query: BTreeMap<&str, &str> = params.iter().copied().collect();
        query.insert("limit", PAGE_SIZE);
        if let Some(after) = starting_after {
            query.insert("starting_after", after);
        }
        self.get_with_query(path, query).await
    }
}

fn parse_item<T: DeserializeOwned>(
    path: &str,
    object: serde_json::Value,
) -> Result<T, StripeError> {
    serde_json::from_value(object).map_err(|e| StripeError::InvalidResponse {
        status: StatusCode::OK,
        reason: format!("unexpected object in {path}: {e}"),
    })
}
