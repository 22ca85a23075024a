//! The read cache: what it keeps, what drops it, and reads in flight.

use super::*;
use crate::store::{BillingState, PeriodUsage, Plans};

fn org(id: &str) -> Changed {
    let mut changed = Changed::default();
    changed.org(id);
    changed
}

fn plans(credit_balance: i64) -> Arc<Plans> {
    Arc::new(Plans {
        billing: BillingState {
            subscriptions: Vec::new(),
            payment_method: None,
            credit_balance,
            synced_at: None,
            portal_visited: false,
        },
        invoices: Vec::new(),
        plan_features: Vec::new(),
        credit_entries: Vec::new(),
        expiring: Vec::new(),
        usage: PeriodUsage {
            starts: 0,
            ends: 1,
            meters: Vec::new(),
        },
    })
}

fn key<'a>(org: &'a str, customer: Option<&'a str>) -> CacheKey<'a> {
    CacheKey {
        org,
        customer,
        variant: 24,
    }
}

fn cached(cache: &ReadCache<Plans>, org: &str, customer: Option<&str>) -> Option<i64> {
    cache
        .get(key(org, customer))
        .ok()
        .map(|p| p.billing.credit_balance)
}

fn fill(cache: &ReadCache<Plans>, org: &str, customer: Option<&str>, balance: i64) {
    let ticket = cache.get(key(org, customer)).unwrap_err();
    cache.put(ticket, key(org, customer), plans(balance));
}

#[test]
fn serves_a_fresh_read_for_the_same_customer_and_history_only() {
    let cache = ReadCache::<Plans>::new("plans", Duration::from_secs(60));
    fill(&cache, "org_1", Some("cus_1"), 5);
    assert_eq!(cached(&cache, "org_1", Some("cus_1")), Some(5));
    assert_eq!(cached(&cache, "org_1", Some("cus_2")), None);
    assert_eq!(cached(&cache, "org_1", None), None);
    let shorter = CacheKey {
        variant: 10,
        ..key("org_1", Some("cus_1"))
    };
    assert!(cache.get(shorter).is_err());
    assert_eq!(cached(&cache, "org_2", Some("cus_1")), None);
}

#[test]
fn a_write_drops_the_organization_by_customer_by_org_or_all() {
    let cache = ReadCache::<Plans>::new("plans", Duration::from_secs(60));
    for (org, customer) in [("org_1", "cus_1"), ("org_2", "cus_2"), ("org_3", "cus_3")] {
        fill(&cache, org, Some(customer), 1);
    }
    let mut changed = Changed::default();
    changed.customer("cus_1");
    cache.apply(&changed);
    assert_eq!(cached(&cache, "org_1", Some("cus_1")), None);
    assert_eq!(cached(&cache, "org_2", Some("cus_2")), Some(1));
    cache.apply(&org("org_2"));
    assert_eq!(cached(&cache, "org_2", Some("cus_2")), None);
    assert_eq!(cached(&cache, "org_3", Some("cus_3")), Some(1));
    let mut changed = Changed::default();
    changed.everything();
    cache.apply(&changed);
    assert_eq!(cached(&cache, "org_3", Some("cus_3")), None);
}

#[test]
fn a_read_that_raced_a_write_is_not_kept() {
    let cache = ReadCache::<Plans>::new("plans", Duration::from_secs(60));
    let ticket = cache.get(key("org_1", Some("cus_1"))).unwrap_err();
    cache.apply(&org("org_9"));
    cache.put(ticket, key("org_1", Some("cus_1")), plans(1));
    assert_eq!(cached(&cache, "org_1", Some("cus_1")), None);
}

#[test]
fn nothing_is_kept_past_its_time_or_with_a_zero_ttl() {
    let cache = ReadCache::<Plans>::new("plans", Duration::from_millis(20));
    fill(&cache, "org_1", None, 1);
    assert_eq!(cached(&cache, "org_1", None), Some(1));
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(cached(&cache, "org_1", None), None);
    let off = ReadCache::<Plans>::new("plans", Duration::ZERO);
    fill(&off, "org_1", None, 1);
    assert_eq!(cached(&off, "org_1", None), None);
}

#[tokio::test]
async fn concurrent_misses_share_one_read() {
    let cache = Arc::new(ReadCache::<Plans>::new("plans", Duration::from_secs(60)));
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let loads = (0..16).map(|_| {
        let (cache, reads) = (cache.clone(), reads.clone());
        tokio::spawn(async move {
            cache
                .get_or_read(key("org_1", None), || async {
                    reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(Arc::unwrap_or_clone(plans(7)))
                })
                .await
                .unwrap()
                .billing
                .credit_balance
        })
    });
    for load in loads.collect::<Vec<_>>() {
        assert_eq!(load.await.unwrap(), 7);
    }
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(cache.reads.lock().unwrap().is_empty(), "locks are released");
}

#[tokio::test]
async fn a_failed_read_is_reported_and_not_kept() {
    let cache = ReadCache::<Plans>::new("plans", Duration::from_secs(60));
    let failed = cache
        .get_or_read(key("org_1", None), || async {
            Err(StoreError::Corrupt("boom".into()))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(cached(&cache, "org_1", None), None);
}

#[test]
fn expired_entries_are_let_go() {
    let cache = ReadCache::<Plans>::new("plans", Duration::from_millis(10));
    fill(&cache, "org_1", Some("cus_1"), 1);
    std::thread::sleep(Duration::from_millis(20));
    cache.lock().swept = Some(Instant::now() - Duration::from_secs(2));
    fill(&cache, "org_2", Some("cus_2"), 1);
    let inner = cache.lock();
    assert_eq!(inner.entries.keys().collect::<Vec<_>>(), ["org_2"]);
    assert_eq!(inner.org_of_customer.keys().collect::<Vec<_>>(), ["cus_2"]);
}

#[test]
fn an_empty_change_does_not_disturb_reads_in_flight() {
    let cache = ReadCache::<Plans>::new("plans", Duration::from_secs(60));
    let ticket = cache.get(key("org_1", None)).unwrap_err();
    cache.apply(&Changed::default());
    cache.put(ticket, key("org_1", None), plans(3));
    assert_eq!(cached(&cache, "org_1", None), Some(3));
}
