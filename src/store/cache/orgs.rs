//! A short-lived, in-process cache of organizations that have a Stripe
//! customer, in front of `ensure_organization` on the portal's hot path
//! (`Store::ensure_organization_cached`).
//!
//! Only positive answers are cached, so an organization that just got its
//! customer (checkout) is seen at once. A cached link may outlive a change
//! made on another instance by at most `TTL`; the customer it names still
//! belongs to the same organization, so no cross-organization answer is
//! possible.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::OrgId;
use crate::store::Organization;

const TTL: Duration = Duration::from_secs(5);
const CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
pub struct OrgCache {
    entries: Mutex<HashMap<OrgId, (Organization, Instant)>>,
}

impl OrgCache {
    pub(in crate::store) fn fresh(&self, id: &OrgId, slug: Option<&str>) -> Option<Organization> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (org, at) = entries.get(id)?;
        let slug_current = slug.is_none() || org.slug.as_deref() == slug;
        (at.elapsed() < TTL && slug_current).then(|| org.clone())
    }

    pub(in crate::store) fn remember(&self, org: &Organization) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        entries.insert(org.id.clone(), (org.clone(), Instant::now()));
    }
}
