//! A short-lived, in-process cache of organizations that have a Stripe
//! customer, in front of `ensure_organization` on the portal's hot path.
//!
//! Only positive answers are cached, so an organization that just got its
//! customer (checkout) is seen at once. A cached link may outlive a change
//! made on another instance by at most `TTL`; the customer it names still
//! belongs to the same organization, so no cross-organization answer is
//! possible.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Organization, Store, StoreError};
use crate::domain::OrgId;

const TTL: Duration = Duration::from_secs(5);
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct OrgCache {
    entries: Mutex<HashMap<OrgId, (Organization, Instant)>>,
}

impl OrgCache {
    /// `store.ensure_organization`, answered from memory when fresh.
    pub async fn ensure(
        &self,
        store: &Store,
        id: &OrgId,
        slug: Option<&str>,
    ) -> Result<Organization, StoreError> {
        if let Some(org) = self.fresh(id, slug) {
            return Ok(org);
        }
        let org = store.ensure_organization(id, slug).await?;
        if org.stripe_customer_id.is_some() {
            self.remember(&org);
        }
        Ok(org)
    }

    fn fresh(&self, id: &OrgId, slug: Option<&str>) -> Option<Organization> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (org, at) = entries.get(id)?;
        let slug_current = slug.is_none() || org.slug.as_deref() == slug;
        (at.elapsed() < TTL && slug_current).then(|| org.clone())
    }

    fn remember(&self, org: &Organization) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        entries.insert(org.id.clone(), (org.clone(), Instant::now()));
    }
}
