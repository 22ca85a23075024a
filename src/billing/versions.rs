//! Webhook events rendered at an API version other than `STRIPE_API_VERSION`
//! mean the endpoint is not pinned to ours (or follows the account's
//! default). They are still applied; the operator is told once per version,
//! in the log, and the admin webhook-health page counts them.

use std::collections::BTreeSet;
use std::sync::Mutex;

pub struct VersionWatch {
    ours: String,
    told: Mutex<BTreeSet<String>>,
}

impl VersionWatch {
    pub fn new(ours: &str) -> Self {
        Self {
            ours: ours.to_owned(),
            told: Mutex::default(),
        }
    }

    /// Notes a delivery's version; returns whether this was the first time
    /// this process saw that other version (and so logged it).
    pub fn note(&self, version: Option<&str>) -> bool {
        let Some(version) = version.filter(|v| *v != self.ours) else {
            return false;
        };
        let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
        if !told.insert(version.to_owned()) {
            return false;
        }
        log::warn!(
            "Stripe delivers webhook events at API version {version}, not {} (STRIPE_API_VERSION): \
             they are applied, but pin the endpoint to {} (`lance-billing webhooks setup --url … --new`)",
            self.ours,
            self.ours
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_other_version_is_told_once() {
        let watch = VersionWatch::new("2025-09-30.clover");
        assert!(!watch.note(Some("2025-09-30.clover")));
        assert!(!watch.note(None));
        assert!(watch.note(Some("2019-12-03")));
        assert!(!watch.note(Some("2019-12-03")));
        assert!(watch.note(Some("2017-08-15")));
    }
}
