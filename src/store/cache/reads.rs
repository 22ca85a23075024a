//! In-process caches of an organization's reads: the Plans tab's (plan state
//! and billing history, the page's whole database cost) and the entitlement
//! facts behind the access answers. `Caches` holds both and is what writes
//! invalidate.
//!
//! Every write made through this process drops what it touched when its
//! transaction commits (`Tx::commit`, and the few writes outside a `Tx`), so
//! one instance always shows its own writes. The time to live bounds only how
//! long a write made by another instance can go unseen. A read that raced a
//! write is not kept: each invalidation bumps an epoch, and a read stores its
//! result only if the epoch it started under is still current. When an entry
//! expires under load, one request per organization reads it again while the
//! others wait for that read instead of all reaching the database at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::store::StoreError;

/// Organizations kept at most (an entry with 24 invoices is about 10 KiB).
const CAPACITY: usize = 10_000;

/// What a transaction changed, by the keys the cache is reached through.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Changed {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(in crate::store) customers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(in crate::store) orgs: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(in crate::store) everything: bool,
}

impl Changed {
    pub fn customer(&mut self, id: &str) {
        self.customers.push(id.to_owned());
    }

    pub fn org(&mut self, id: &str) {
        self.orgs.push(id.to_owned());
    }

    /// For rows many organizations show (products), or rows whose previous
    /// owner is unknown (a detached payment method).
    pub fn everything(&mut self) {
        self.everything = true;
    }

    fn is_empty(&self) -> bool {
        !self.everything && self.customers.is_empty() && self.orgs.is_empty()
    }

    pub fn merge(&mut self, other: Changed) {
        self.customers.extend(other.customers);
        self.orgs.extend(other.orgs);
        self.everything |= other.everything;
    }

    /// Each key once; no keys when everything changed.
    pub fn deduplicated(mut self) -> Self {
        if self.everything {
            self.customers.clear();
            self.orgs.clear();
        }
        for keys in [&mut self.customers, &mut self.orgs] {
            keys.sort_unstable();
            keys.dedup();
        }
        self
    }
}

/// Which read of an organization: for its current customer, and a variant
/// (how many invoices the Plans tab shows).
#[derive(Clone, Copy, Debug)]
pub struct CacheKey<'a> {
    pub org: &'a str,
    pub customer: Option<&'a str>,
    pub variant: i64,
}

/// Every cache of reads, dropped together by what a write changed.
#[derive(Debug)]
pub struct Caches<P, E> {
    pub plans: ReadCache<P>,
    pub entitlements: ReadCache<E>,
    /// Where this instance's changes are announced to the others, if anywhere.
    announce: OnceLock<mpsc::UnboundedSender<Changed>>,
}

impl<P, E> Caches<P, E> {
    pub fn new(plans_ttl: Duration, entitlements_ttl: Duration) -> Self {
        Self {
            plans: ReadCache::new("plans", plans_ttl),
            entitlements: ReadCache::new("entitlements", entitlements_ttl),
            announce: OnceLock::new(),
        }
    }

    pub(crate) fn announce_to(&self, queue: mpsc::UnboundedSender<Changed>) {
        let _ = self.announce.set(queue);
    }

    /// Drops what this instance changed, and tells the others.
    pub(crate) fn invalidate(&self, changed: &Changed) {
        if changed.is_empty() {
            return;
        }
        self.apply(changed);
        if let Some(queue) = self.announce.get() {
            let _ = queue.send(changed.clone());
        }
    }

    /// For writes made outside a `Tx`.
    pub(crate) fn invalidate_org(&self, org: &str) {
        let mut changed = Changed::default();
        changed.org(org);
        self.invalidate(&changed);
    }

    /// Drops what `changed` names (another instance's announcement).
    pub(crate) fn apply(&self, changed: &Changed) {
        self.plans.apply(changed);
        self.entitlements.apply(changed);
    }

    pub(crate) fn clear(&self) {
        self.plans.clear();
        self.entitlements.clear();
    }
}

#[derive(Debug)]
pub struct ReadCache<V> {
    /// Its name in the metrics (`plans`, `entitlements`).
    name: &'static str,
    ttl: Duration,
    inner: Mutex<Inner<V>>,
    /// One lock per organization being read, held by its reader.
    reads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug)]
struct Inner<V> {
    epoch: u64,
    entries: HashMap<String, Entry<V>>,
    org_of_customer: HashMap<String, String>,
    /// When expired entries were last let go.
    swept: Option<Instant>,
}

impl<V> Default for Inner<V> {
    fn default() -> Self {
        Self {
            epoch: 0,
            entries: HashMap::new(),
            org_of_customer: HashMap::new(),
            swept: None,
        }
    }
}

impl<V> Inner<V> {
    fn sweep(&mut self, ttl: Duration) {
        self.entries.retain(|_, entry| entry.at.elapsed() < ttl);
        let entries = &self.entries;
        self.org_of_customer
            .retain(|_, org| entries.contains_key(org));
        self.swept = Some(Instant::now());
    }
}

#[derive(Debug)]
struct Entry<V> {
    customer: Option<String>,
    variant: i64,
    value: Arc<V>,
    at: Instant,
}

/// Where a read started, to be handed back with its result.
struct Ticket(u64);

impl<V> ReadCache<V> {
    pub fn new(name: &'static str, ttl: Duration) -> Self {
        Self {
            name,
            ttl,
            inner: Mutex::default(),
            reads: Mutex::default(),
        }
    }

    /// The cached reads of `org`, or `read()`'s, kept for the next request.
    pub async fn get_or_read<F>(
        &self,
        key: CacheKey<'_>,
        read: impl FnOnce() -> F,
    ) -> Result<Arc<V>, StoreError>
    where
        F: Future<Output = Result<V, StoreError>>,
    {
        if let Ok(value) = self.get(key) {
            self.count("hit");
            return Ok(value);
        }
        self.count("miss");
        if self.ttl.is_zero() {
            return read().await.map(Arc::new);
        }
        let lock = self.read_lock(key.org);
        let first = lock.try_lock().ok();
        if first.is_none() {
            // Someone is reading it: wait, then read too only if that answer
            // was not kept (a write raced it).
            drop(lock.lock().await);
        }
        let result = match self.get(key) {
            Ok(value) => Ok(value),
            Err(ticket) => read().await.map(|value| {
                let value = Arc::new(value);
                self.put(ticket, key, value.clone());
                value
            }),
        };
        drop(first);
        self.release_read_lock(key.org, lock);
        result
    }

    fn count(&self, result: &str) {
        crate::metrics::cache_read(self.name, result);
    }

    fn read_lock(&self, org: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        reads.entry(org.to_owned()).or_default().clone()
    }

    /// Forgets the organization's lock once nobody else holds or awaits it.
    fn release_read_lock(&self, org: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: no other request has cloned it.
        if Arc::strong_count(&lock) == 2 {
            reads.remove(org);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached reads of `org`, if fresh and made for the same customer
    /// and variant; else a ticket for storing a new read.
    fn get(&self, key: CacheKey<'_>) -> Result<Arc<V>, Ticket> {
        let inner = self.lock();
        match inner.entries.get(key.org) {
            Some(entry)
                if entry.at.elapsed() < self.ttl
                    && entry.customer.as_deref() == key.customer
                    && entry.variant == key.variant =>
            {
                Ok(entry.value.clone())
            }
            _ => Err(Ticket(inner.epoch)),
        }
    }

    /// Keeps a read unless something was invalidated since it began.
    fn put(&self, ticket: Ticket, key: CacheKey<'_>, value: Arc<V>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        if inner.epoch != ticket.0 {
            return;
        }
        // Expired entries are let go at most once a TTL (or a second), so
        // memory follows the organizations viewed lately, not ever.
        let sweep_due = inner
            .swept
            .is_none_or(|at| at.elapsed() >= self.ttl.max(Duration::from_secs(1)));
        if sweep_due || inner.entries.len() >= CAPACITY {
            inner.sweep(self.ttl);
        }
        if inner.entries.len() >= CAPACITY {
            return;
        }
        if let Some(customer) = key.customer {
            inner
                .org_of_customer
                .insert(customer.to_owned(), key.org.to_owned());
        }
        let entry = Entry {
            customer: key.customer.map(str::to_owned),
            variant: key.variant,
            value,
            at: Instant::now(),
        };
        inner.entries.insert(key.org.to_owned(), entry);
    }

    pub(crate) fn clear(&self) {
        let mut everything = Changed::default();
        everything.everything();
        self.apply(&everything);
    }

    /// Drops what `changed` names.
    pub(crate) fn apply(&self, changed: &Changed) {
        if changed.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.epoch += 1;
        if changed.everything {
            inner.entries.clear();
            inner.org_of_customer.clear();
            return;
        }
        for customer in &changed.customers {
            if let Some(org) = inner.org_of_customer.remove(customer) {
                inner.entries.remove(&org);
            }
        }
        for org in &changed.orgs {
            inner.entries.remove(org);
        }
    }
}

#[cfg(test)]
#[path = "reads_tests.rs"]
mod tests;
