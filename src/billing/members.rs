//! Clerk's deliveries applied: organizations' names and deletions, and who
//! is a member with which role. Each delivery is recorded by its `svix-id`
//! in the same transaction as its change, so it applies once; each change
//! applies only over an older one, so the order of arrival does not matter.

use crate::clerk::api::{ClerkApi, ClerkApiError};
use crate::clerk::events::{ClerkEvent, DirectoryChange, Membership, OrganizationProfile};
use crate::config::SeatSettings;
use crate::domain::{OrgId, unix_now_us};
use crate::store::{Store, StoreError, Tx};

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Received {
    /// Committed (a change older than what is kept changes nothing).
    Applied,
    /// Delivered before: nothing done again.
    Duplicate,
    /// A type this service does not handle.
    Ignored,
}

/// Applies `change`, delivered as `svix_id`, in one transaction; a member
/// who came or went schedules the seats' update when seats follow members.
pub async fn receive(
    store: &Store,
    svix_id: &str,
    event: &ClerkEvent,
    change: &DirectoryChange,
    seats: &SeatSettings,
) -> Result<Received, StoreError> {
    if *change == DirectoryChange::Ignored {
        return Ok(Received::Ignored);
    }
    let mut tx = store.begin().await?;
    if !tx.record_clerk_delivery(svix_id, &event.kind).await? {
        return Ok(Received::Duplicate);
    }
    match change {
        DirectoryChange::Organization(profile) => {
            tx.apply_organization_profile(profile).await?;
        }
        DirectoryChange::OrganizationDeleted { id, at } => {
            tx.mark_organization_deleted(id.as_str(), *at).await?;
        }
        DirectoryChange::Membership(membership, profile) => {
            if let Some(profile) = profile {
                tx.apply_organization_profile(profile).await?;
            }
            if tx.apply_membership(membership, false).await? {
                schedule_seats(&mut tx, membership.org.as_str(), seats).await?;
            }
        }
        DirectoryChange::MembershipDeleted(membership) => {
            if tx.apply_membership(membership, true).await? {
                schedule_seats(&mut tx, membership.org.as_str(), seats).await?;
            }
        }
        DirectoryChange::Ignored => {}
    }
    tx.commit().await?;
    Ok(Received::Applied)
}

/// Schedules `org`'s seat update after the debounce, when seats follow
/// members: the burst this change starts, or the one it joins.
async fn schedule_seats(tx: &mut Tx, org: &str, seats: &SeatSettings) -> Result<(), StoreError> {
    if !seats.follow_members {
        return Ok(());
    }
    let debounce_ms = i64::try_from(seats.debounce.as_millis()).unwrap_or(i64::MAX);
    let due = (unix_now_us() / 1000).saturating_add(debounce_ms);
    tx.schedule_seat_sync(org, due).await
}

/// What `clerk sync` did.
#[derive(Debug, Default)]
pub struct ClerkSyncReport {
    pub organizations: u64,
    pub members: u64,
    /// Members here that Clerk no longer lists, removed.
    pub removed: u64,
    /// What the key could not read (skipped; everything else was applied).
    pub unreadable: Vec<String>,
}

impl std::fmt::Display for ClerkSyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "clerk sync: {} organization(s), {} member(s), {} removed",
            self.organizations, self.members, self.removed
        )?;
        if !self.unreadable.is_empty() {
            write!(f, "; could not read {}", self.unreadable.join(", "))?;
        }
        Ok(())
    }
}

/// Clerk's list pages: its maximum.
pub const CLERK_PAGE: u32 = 100;

/// Backfills every organization and its members from Clerk's Backend API,
/// through the same ordered writes as the webhooks: what a newer delivery
/// wrote stays. A member kept here whom Clerk no longer lists is removed,
/// as of the moment the sync began. An organization whose members the key
/// cannot read is named in the report and skipped.
pub async fn sync_from_clerk(
    store: &Store,
    clerk: &ClerkApi,
    page_size: u32,
    seats: &SeatSettings,
) -> anyhow::Result<ClerkSyncReport> {
    let began = crate::domain::unix_now() * 1000;
    let mut report = ClerkSyncReport::default();
    let mut offset = 0;
    loop {
        let page = clerk.organizations(page_size, offset).await?;
        let profiles: Vec<OrganizationProfile> = page
            .data
            .iter()
            .map(OrganizationProfile::from_clerk)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("Clerk sent an organization we cannot read: {e}"))?;
        let mut tx = store.begin().await?;
        for profile in &profiles {
            tx.apply_organization_profile(profile).await?;
        }
        tx.commit().await?;
        for profile in &profiles {
            let org = profile.id.as_str();
            match members_in_clerk(clerk, org, page_size).await {
                Ok(listed) => {
                    let removed = apply_members(store, &profile.id, &listed, began, seats).await?;
                    report.members += listed.len() as u64;
                    report.removed += removed;
                }
                Err(err) if err.is_refusal() => {
                    log::warn!("clerk sync skipped the members of {org}: {err}");
                    report.unreadable.push(format!("the members of {org}"));
                }
                Err(err) => return Err(err.into()),
            }
        }
        report.organizations += profiles.len() as u64;
        offset += page.data.len() as u64;
        if page.data.len() < page_size as usize
            || page.total_count.is_some_and(|total| offset as i64 >= total)
        {
            return Ok(report);
        }
    }
}

/// One organization's members, as Clerk lists them.
async fn members_in_clerk(
    clerk: &ClerkApi,
    org: &str,
    page_size: u32,
) -> Result<Vec<Membership>, ClerkApiError> {
    let mut listed = Vec::new();
    let mut offset = 0;
    loop {
        let page = clerk.memberships(org, page_size, offset).await?;
        for data in &page.data {
            let version = data.get("updated_at").and_then(serde_json::Value::as_i64);
            match version.map(|v| Membership::from_clerk(data, v)) {
                Some(Ok(membership)) => listed.push(membership),
                _ => log::warn!("clerk sync skipped a membership of {org} it cannot read"),
            }
        }
        offset += page.data.len() as u64;
        if page.data.len() < page_size as usize
            || page.total_count.is_some_and(|total| offset as i64 >= total)
        {
            return Ok(listed);
        }
    }
}

/// Keeps the members Clerk listed; those kept here and no longer listed
/// are removed as of `began` (ms). How many were removed.
async fn apply_members(
    store: &Store,
    org: &OrgId,
    listed: &[Membership],
    began: i64,
    seats: &SeatSettings,
) -> Result<u64, StoreError> {
    let kept_here = store.members_of(org.as_str()).await?;
    let mut tx = store.begin().await?;
    let mut changed = false;
    for membership in listed {
        changed |= tx.apply_membership(membership, false).await?;
    }
    let mut removed = 0;
    for gone in kept_here
        .iter()
        .filter(|m| !listed.iter().any(|l| l.user_id == m.user_id))
    {
        let removal = Membership {
            org: org.clone(),
            user_id: gone.user_id.clone(),
            role: gone.role.clone(),
            version: began,
        };
        if tx.apply_membership(&removal, true).await? {
            removed += 1;
        }
    }
    if changed || removed > 0 {
        schedule_seats(&mut tx, org.as_str(), seats).await?;
    }
    tx.commit().await?;
    Ok(removed)
}
