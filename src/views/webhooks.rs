//! The operators' webhook-health page: failures to replay, recent events,
//! the API versions events arrive at, and the Events-API catch-up.

use askama::Template;

use super::admin::EventLine;
use super::format::{date_time, newest_event};
use crate::store::{CatchUpState, ForeignCheckout, VersionCount};

#[derive(Template)]
#[template(path = "admin_webhooks.html")]
pub struct AdminWebhooksPage {
    pub csrf: String,
    pub notice: Option<String>,
    pub failed: Vec<EventLine>,
    pub recent: Vec<EventLine>,
    pub health: DeliveryHealth,
    pub foreign_checkouts: Vec<ForeignCheckoutLine>,
}

/// A completed checkout this service did not create that named an
/// organization: not linked.
pub struct ForeignCheckoutLine {
    pub id: String,
    pub org_id: String,
    pub customer: String,
    pub when: String,
}

impl ForeignCheckoutLine {
    pub fn new(checkout: &ForeignCheckout) -> Self {
        Self {
            id: checkout.id.clone(),
            org_id: checkout.org_id.clone(),
            customer: checkout.customer_id.clone().unwrap_or_default(),
            when: date_time(checkout.created_at),
        }
    }
}

/// How events reach us, for the top of the page.
pub struct DeliveryHealth {
    pub ours: String,
    pub versions: Vec<VersionLine>,
    /// Some events came at another version than ours.
    pub other_versions: bool,
    pub catch_up: Option<CatchUpLine>,
    /// The newest stored event's `created`, and how long ago that was.
    pub newest: Option<(String, String)>,
    /// Events of the other mode than the key's, recorded and not applied,
    /// and that mode's name.
    pub other_mode: Option<(i64, &'static str)>,
    /// Objects waiting to be fetched again because their versions could
    /// not be ordered, and how many of them failed at least once.
    pub refetch: (i64, i64),
}

pub struct VersionLine {
    pub version: String,
    pub events: i64,
    pub ours: bool,
}

pub struct CatchUpLine {
    pub when: String,
    pub seen: i64,
    pub applied: i64,
    pub error: Option<String>,
}

/// What the store knows of deliveries, as the page reads it.
pub struct DeliveryFacts<'a> {
    pub ours: &'a str,
    pub versions: &'a [VersionCount],
    pub catch_up: Option<&'a CatchUpState>,
    pub newest: Option<i64>,
    /// Stored events of the other mode than the key's.
    pub other_mode: i64,
    /// The key is a live-mode key.
    pub live: bool,
    pub refetch: (i64, i64),
    pub now: i64,
}

impl DeliveryHealth {
    pub fn new(facts: DeliveryFacts<'_>) -> Self {
        let versions: Vec<VersionLine> = facts
            .versions
            .iter()
            .map(|v| VersionLine {
                version: v.api_version.clone().unwrap_or_else(|| "(none)".to_owned()),
                events: v.events,
                ours: v.api_version.as_deref() == Some(facts.ours),
            })
            .collect();
        Self {
            ours: facts.ours.to_owned(),
            other_versions: versions.iter().any(|v| !v.ours),
            versions,
            catch_up: facts.catch_up.and_then(|state| {
                Some(CatchUpLine {
                    when: date_time(state.last_run_at?),
                    seen: state.last_seen,
                    applied: state.last_applied,
                    error: state.last_error.clone(),
                })
            }),
            newest: facts.newest.map(|created| newest_event(created, facts.now)),
            other_mode: (facts.other_mode > 0)
                .then_some((facts.other_mode, if facts.live { "test" } else { "live" })),
            refetch: facts.refetch,
        }
    }
}
