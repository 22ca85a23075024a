//! How often one organization's page loads may call Stripe: every
//! organization shares the account's rate limit, so a loop of reloads of a
//! return link must not spend it. A small token bucket per organization, in
//! this instance's memory (`governor`'s keyed GCRA).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::OrgId;

/// Calls an organization may make at once.
const BURST: u32 = 5;
/// One more call per this long.
const REFILL: Duration = Duration::from_secs(12);
/// Organizations remembered before idle ones are forgotten.
const MAX_KEYS: usize = 10_000;

pub struct StripeBudget {
    limiter: DefaultKeyedRateLimiter<OrgId>,
}

impl Default for StripeBudget {
    fn default() -> Self {
        let burst = NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(REFILL)
            .unwrap_or_else(|| Quota::per_minute(burst))
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
        }
    }
}

impl StripeBudget {
    /// Takes one call from `org`'s budget; false when it has none left.
    pub fn allows(&self, org: &OrgId) -> bool {
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(org).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organization_spends_its_burst_and_others_keep_theirs() {
        let budget = StripeBudget::default();
        let (busy, calm) = (
            OrgId::parse("org_busy").unwrap(),
            OrgId::parse("org_calm").unwrap(),
        );
        let allowed = (0..20).filter(|_| budget.allows(&busy)).count();
        assert_eq!(allowed, BURST as usize);
        assert!(budget.allows(&calm));
    }
}
