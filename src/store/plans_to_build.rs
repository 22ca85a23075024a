//! Which customers' kept Plans documents (`synced_plans`) this instance is
//! to build: those its commits cleared, each with when it last changed.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::cache::Changed;

/// The customers whose documents this instance's commits cleared, each
/// with when it last changed, and whether to look in the table for more
/// (at start, and after a change every customer shows).
#[derive(Debug)]
pub(super) struct PlansToBuild(Mutex<Pending>);

#[derive(Debug)]
struct Pending {
    customers: HashMap<String, Instant>,
    look_in_table: bool,
}

impl Default for PlansToBuild {
    fn default() -> Self {
        Self(Mutex::new(Pending {
            customers: HashMap::new(),
            look_in_table: true,
        }))
    }
}

impl PlansToBuild {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes what a commit changed.
    pub(super) fn committed(&self, changed: &Changed) {
        if changed.customers.is_empty() && !changed.everything {
            return;
        }
        let now = Instant::now();
        let mut pending = self.pending();
        pending.look_in_table |= changed.everything;
        for customer in &changed.customers {
            pending.customers.insert(customer.clone(), now);
        }
    }

    /// Takes up to `limit` customers unchanged for `settle`.
    pub(super) fn take_settled(&self, settle: Duration, limit: usize) -> Vec<String> {
        let mut pending = self.pending();
        let settled: Vec<String> = pending
            .customers
            .iter()
            .filter(|(_, changed)| changed.elapsed() >= settle)
            .map(|(customer, _)| customer.clone())
            .take(limit)
            .collect();
        for customer in &settled {
            pending.customers.remove(customer);
        }
        settled
    }

    /// Whether to look in the table, asked once.
    pub(super) fn take_look_in_table(&self) -> bool {
        std::mem::take(&mut self.pending().look_in_table)
    }

    /// Has the next build look in the table.
    pub(super) fn look_in_table(&self) {
        self.pending().look_in_table = true;
    }

    /// Customers found cleared in the table, as if they changed at `at`.
    pub(super) fn found(&self, customers: Vec<String>, at: Instant) {
        let mut pending = self.pending();
        for customer in customers {
            pending.customers.entry(customer).or_insert(at);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.pending().customers.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Changed, PlansToBuild};

    #[test]
    fn a_customer_is_taken_once_settled_and_once_only() {
        let to_build = PlansToBuild::default();
        to_build.pending().look_in_table = false;
        let mut changed = Changed::default();
        changed.customer("cus_a");
        changed.customer("cus_b");
        changed.customer("cus_a");
        to_build.committed(&changed);

        assert!(
            to_build
                .take_settled(Duration::from_secs(3600), 10)
                .is_empty()
        );
        let mut taken = to_build.take_settled(Duration::ZERO, 1);
        taken.extend(to_build.take_settled(Duration::ZERO, 10));
        taken.sort();
        assert_eq!(taken, ["cus_a", "cus_b"]);
        assert!(to_build.take_settled(Duration::ZERO, 10).is_empty());
    }

    #[test]
    fn a_change_every_customer_shows_looks_in_the_table() {
        let to_build = PlansToBuild::default();
        to_build.pending().look_in_table = false;
        to_build.committed(&Changed::default());
        assert!(!to_build.pending().look_in_table);
        let mut changed = Changed::default();
        changed.everything();
        to_build.committed(&changed);
        assert!(to_build.pending().look_in_table);
    }
}
