//! The operators' webhook-health page: failures to replay, recent events,
//! the API versions events arrive at, and the Events-API catch-up.

use askama::Template;

use super::admin::EventLine;
use super::format::{date_time, newest_event};
use crate::store::{CatchUpState, VersionCount};

#[derive(Template)]
#[template(path = "admin_webhooks.html")]
pub struct AdminWebhooksPage {
    pub csrf: String,
    pub notice: Option<String>,
    pub failed: Vec<EventLine>,
    pub recent: Vec<EventLine>,
    pub health: DeliveryHealth,
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
        }
    }
}
