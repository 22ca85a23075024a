//! Clerk's deliveries applied: organizations' names and deletions, and who
//! is a member with which role. Each delivery is recorded by its `svix-id`
//! in the same transaction as its change, so it applies once; each change
//! applies only over an older one, so the order of arrival does not matter.

use crate::clerk::events::{ClerkEvent, DirectoryChange};
use crate::store::{Store, StoreError};

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

/// Applies `change`, delivered as `svix_id`, in one transaction.
pub async fn receive(
    store: &Store,
    svix_id: &str,
    event: &ClerkEvent,
    change: &DirectoryChange,
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
            tx.apply_membership(membership, false).await?;
        }
        DirectoryChange::MembershipDeleted(membership) => {
            tx.apply_membership(membership, true).await?;
        }
        DirectoryChange::Ignored => {}
    }
    tx.commit().await?;
    Ok(Received::Applied)
}
