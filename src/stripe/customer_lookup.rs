//! Stripe customers.

use std::collections::HashMap;

use serde::Deserialize;

use super::{StripeClient, StripeError};
use crate::domain::StripeCustomerId;

/// A customer, or the stub Stripe returns for a deleted one (`deleted: true`).
#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub deleted: bool,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

impl Customer {
    /// The organization this customer was created for, if we tagged it.
    pub fn org_id(&self) -> Option<&str> {
        self.metadata.get("org_id").map(String::as_str)
    }
}

impl StripeClient {
    pub async fn retrieve_customer(&self, id: &StripeCustomerId) -> Result<Customer, StripeError> {
        self.get(&format!(
            "/v1/customers/{}",
            super::path_segment(id.as_str())
        ))
        .await
    }
}
