//! Seats that follow members (`BILLING_SEATS=members`): the quantity of a
//! live subscription's per-seat item is the number of members who count
//! (never below 1). A membership change schedules the organization
//! (`seat_syncs`, durable); a burst of changes gathers for the debounce
//! and makes one update; one instance at a time sets the quantity in
//! Stripe, retrying with backoff, and the `customer.subscription.updated`
//! that follows syncs it back as any edit.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::SeatSettings;
use crate::domain::{unix_now, unix_now_us};
use crate::store::{AuditEntry, OrgMember, SeatSync, Store};
use crate::stripe::objects::{Subscription, SubscriptionItem};
use crate::stripe::{StripeClient, UpdateSubscriptionItem};

const TICK: Duration = Duration::from_millis(500);
/// Organizations updated per tick at most.
const PER_TICK: i64 = 20;
const MAX_BACKOFF_SECS: i64 = 3600;

/// What one update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatOutcome {
    Updated {
        item: String,
        from: i64,
        to: i64,
    },
    /// Stripe already has that quantity: nothing sent.
    AlreadySet,
    /// No active or trialing subscription: nothing to update.
    NoLiveSubscription,
}

/// The members who take a seat under `settings` (those of its roles).
pub fn members_taking_seats(members: &[OrgMember], settings: &SeatSettings) -> i64 {
    members.iter().filter(|m| settings.counts(&m.role)).count() as i64
}

/// The seats `members` take under `settings`: never below 1.
pub fn seats_used(members: &[OrgMember], settings: &SeatSettings) -> i64 {
    members_taking_seats(members, settings).max(1)
}

/// The subscription's per-seat item: the one whose price is listed in
/// `price_ids`, else its one licensed, per-unit item.
pub fn seat_item(sub: &Subscription, price_ids: &[String]) -> Result<SubscriptionItem, String> {
    let items = sub.items();
    let candidates: Vec<&SubscriptionItem> = items
        .iter()
        .filter(|item| {
            let Some(price) = item.price() else {
                return false;
            };
            if price_ids.is_empty() {
                let licensed = price
                    .recurring
                    .as_ref()
                    .is_some_and(|r| r.usage_type.as_deref().unwrap_or("licensed") == "licensed");
                licensed && price.billing_scheme.as_deref().unwrap_or("per_unit") == "per_unit"
            } else {
                price_ids.contains(&price.id)
            }
        })
        .collect();
    match candidates.as_slice() {
        [item] => Ok((*item).clone()),
        [] => Err(format!("subscription {} has no per-seat item", sub.id)),
        _ => Err(format!(
            "subscription {} has several per-seat items: set BILLING_SEAT_PRICE_IDS",
            sub.id
        )),
    }
}

/// Sets one organization's quantity in Stripe.
async fn update_seats(
    store: &Store,
    stripe: &StripeClient,
    settings: &SeatSettings,
    sync: &SeatSync,
) -> anyhow::Result<SeatOutcome> {
    let Some(live) = store.seat_subscription(&sync.org_id).await? else {
        return Ok(SeatOutcome::NoLiveSubscription);
    };
    let members = store.members_of(&sync.org_id).await?;
    let target = seats_used(&members, settings);
    let sub = stripe.retrieve_subscription(&live.id).await?;
    if !matches!(sub.status.as_str(), "active" | "trialing") {
        return Ok(SeatOutcome::NoLiveSubscription);
    }
    let item = seat_item(&sub, &settings.price_ids).map_err(anyhow::Error::msg)?;
    let from = item.quantity.unwrap_or(1);
    if from == target {
        return Ok(SeatOutcome::AlreadySet);
    }
    // The same burst retried names the same request; a later burst that
    // comes back to this quantity is a request of its own.
    let key = format!("seats-{}-{}-{target}-{}", sub.id, item.id, sync.burst);
    let update = UpdateSubscriptionItem {
        quantity: target,
        proration_behavior: &settings.proration,
    };
    stripe
        .update_subscription_item(&item.id, &update, &key)
        .await?;
    Ok(SeatOutcome::Updated {
        item: item.id,
        from,
        to: target,
    })
}

/// Updates the organizations due at `now_ms`; how many were settled.
pub async fn update_due(
    store: &Store,
    stripe: &StripeClient,
    settings: &SeatSettings,
    now_ms: i64,
) -> anyhow::Result<usize> {
    let due = store.claim_seat_syncs(now_ms, PER_TICK).await?;
    let mut settled = 0;
    for sync in &due {
        match update_seats(store, stripe, settings, sync).await {
            Ok(outcome) => {
                if let SeatOutcome::Updated { item, from, to } = &outcome {
                    log::info!("seats of {}: {from} -> {to} on {item}", sync.org_id);
                    let entry = AuditEntry {
                        org_id: sync.org_id.clone(),
                        user_id: "system".to_owned(),
                        action: "seats",
                        stripe_session_id: Some(format!("{item}:{to}")),
                    };
                    store.record_audits(&[(entry, unix_now())]).await?;
                }
                store.seat_sync_done(sync).await?;
                settled += 1;
            }
            Err(err) => {
                let wait = 2i64.saturating_pow(sync.attempts.clamp(0, 20) as u32 + 1);
                let retry_at = now_ms + wait.min(MAX_BACKOFF_SECS) * 1000;
                log::warn!(
                    "seats of {} not updated (tried again later): {err:#}",
                    sync.org_id
                );
                store
                    .seat_sync_failed(sync, retry_at, &format!("{err:#}"))
                    .await?;
            }
        }
    }
    Ok(settled)
}

/// Updates what is due, on one instance at a time, until `stop`.
pub async fn run(
    store: Store,
    stripe: StripeClient,
    settings: SeatSettings,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let lock = match store.try_lock_job("seat-syncs").await {
            Ok(Some(lock)) => lock,
            Ok(None) => continue,
            Err(err) => {
                log::warn!("the seat updates could not take their lock: {err}");
                continue;
            }
        };
        let now_ms = unix_now_us() / 1000;
        if let Err(err) = update_due(&store, &stripe, &settings, now_ms).await {
            log::warn!("the seat updates failed: {err:#}");
        }
        lock.release().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use serde_json::json;

    fn settings(pairs: &[(&str, &str)]) -> SeatSettings {
        SeatSettings::from_env(&Env::from_pairs(pairs.iter().copied())).unwrap()
    }

    fn member(user: &str, role: &str) -> OrgMember {
        OrgMember {
            user_id: user.to_owned(),
            role: role.to_owned(),
        }
    }

    #[test]
    fn only_the_roles_configured_take_seats_and_never_fewer_than_one() {
        let members = [
            member("user_a", "org:admin"),
            member("user_b", "org:viewer"),
        ];
        assert_eq!(seats_used(&members, &settings(&[])), 2);
        let admins = settings(&[("BILLING_SEAT_ROLES", "org:admin,org:member")]);
        assert_eq!(seats_used(&members, &admins), 1);
        assert_eq!(seats_used(&[], &admins), 1);
    }

    fn subscription(items: serde_json::Value) -> Subscription {
        serde_json::from_value(json!({"id": "sub_1", "object": "subscription",
            "customer": "cus_1", "status": "active", "created": 1,
            "items": {"object": "list", "data": items}}))
        .unwrap()
    }

    fn item(id: &str, price: &str, usage_type: &str, scheme: &str) -> serde_json::Value {
        json!({"id": id, "quantity": 3, "price": {"id": price, "currency": "usd",
            "unit_amount": 900, "billing_scheme": scheme,
            "recurring": {"interval": "month", "usage_type": usage_type}}})
    }

    #[test]
    fn the_seat_item_is_the_one_licensed_per_unit_item_or_the_configured_price() {
        let sub = subscription(json!([
            item("si_seats", "price_seat", "licensed", "per_unit"),
            item("si_api", "price_api", "metered", "per_unit"),
            item("si_tiers", "price_tiers", "licensed", "tiered"),
        ]));
        assert_eq!(seat_item(&sub, &[]).unwrap().id, "si_seats");
        let two = subscription(json!([
            item("si_seats", "price_seat", "licensed", "per_unit"),
            item("si_addon", "price_addon", "licensed", "per_unit"),
        ]));
        assert!(
            seat_item(&two, &[])
                .unwrap_err()
                .contains("BILLING_SEAT_PRICE_IDS")
        );
        let chosen = seat_item(&two, &["price_addon".to_owned()]).unwrap();
        assert_eq!(chosen.id, "si_addon");
        let none = subscription(json!([item("si_api", "price_api", "metered", "per_unit")]));
        assert!(seat_item(&none, &[]).is_err());
    }
}
