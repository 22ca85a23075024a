//! Clerk's webhook events: `{"type", "data", "timestamp" (ms), …}`, and the
//! change each one makes to what we know of organizations and members.
//! Clerk's times are milliseconds; a change is ordered by its object's
//! `updated_at`, a deletion by the event's `timestamp`.

use serde::Deserialize;
use serde_json::Value;

use crate::domain::OrgId;

/// An event as Clerk delivers it.
#[derive(Debug, Clone, Deserialize)]
pub struct ClerkEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Value,
    /// When it happened, in milliseconds.
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// An organization's profile, as of `version` (its `updated_at`, ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationProfile {
    pub id: OrgId,
    pub name: Option<String>,
    pub slug: Option<String>,
    pub image_url: Option<String>,
    pub version: i64,
}

/// Who is a member of which organization, with which role, as of
/// `version` (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub org: OrgId,
    pub user_id: String,
    pub role: String,
    pub version: i64,
}

/// What an event changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryChange {
    Organization(OrganizationProfile),
    /// Deleted in Clerk at `at` (ms); its billing is left to an operator.
    OrganizationDeleted {
        id: OrgId,
        at: i64,
    },
    /// The membership, and its organization's profile as the event carries it.
    Membership(Membership, Option<OrganizationProfile>),
    MembershipDeleted(Membership),
    /// A type this service does not handle.
    Ignored,
}

/// The event types handled; subscribe the Clerk endpoint to these.
pub const HANDLED_CLERK_EVENTS: [&str; 6] = [
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "organizationMembership.created",
    "organizationMembership.updated",
    "organizationMembership.deleted",
];

impl ClerkEvent {
    /// The change this event makes, or why its data is not what its type says.
    pub fn change(&self) -> Result<DirectoryChange, String> {
        let data = &self.data;
        Ok(match self.kind.as_str() {
            "organization.created" | "organization.updated" => {
                DirectoryChange::Organization(organization(data)?)
            }
            "organization.deleted" => DirectoryChange::OrganizationDeleted {
                id: org_id(data.get("id"))?,
                at: self.at()?,
            },
            "organizationMembership.created" | "organizationMembership.updated" => {
                let membership = membership(data, millis(data, "updated_at")?)?;
                let profile = data
                    .get("organization")
                    .filter(|o| o.get("updated_at").is_some())
                    .map(organization)
                    .transpose()?;
                DirectoryChange::Membership(membership, profile)
            }
            "organizationMembership.deleted" => {
                // Never before what it removes, whatever the clocks say.
                let at = self.at()?.max(millis(data, "updated_at").unwrap_or(0));
                DirectoryChange::MembershipDeleted(membership(data, at)?)
            }
            _ => DirectoryChange::Ignored,
        })
    }

    fn at(&self) -> Result<i64, String> {
        self.timestamp
            .ok_or_else(|| format!("a {} event without its timestamp", self.kind))
    }
}

impl OrganizationProfile {
    /// From Clerk's organization object (a webhook's data, an API answer).
    pub fn from_clerk(data: &Value) -> Result<Self, String> {
        organization(data)
    }
}

impl Membership {
    /// From Clerk's membership object, as of `version` (ms).
    pub fn from_clerk(data: &Value, version: i64) -> Result<Self, String> {
        membership(data, version)
    }
}

fn organization(data: &Value) -> Result<OrganizationProfile, String> {
    Ok(OrganizationProfile {
        id: org_id(data.get("id"))?,
        name: text(data, "name"),
        slug: text(data, "slug"),
        image_url: text(data, "image_url"),
        version: millis(data, "updated_at")?,
    })
}

fn membership(data: &Value, version: i64) -> Result<Membership, String> {
    let org = org_id(data.pointer("/organization/id"))?;
    let user_id = data
        .pointer("/public_user_data/user_id")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("user_") && u.len() <= 64)
        .ok_or("a membership without public_user_data.user_id")?;
    Ok(Membership {
        org,
        user_id: user_id.to_owned(),
        role: text(data, "role").unwrap_or_else(|| "org:member".to_owned()),
        version,
    })
}

fn org_id(value: Option<&Value>) -> Result<OrgId, String> {
    let raw = value.and_then(Value::as_str).ok_or("no organization id")?;
    OrgId::parse(raw).map_err(|e| e.to_string())
}

fn text(data: &Value, field: &str) -> Option<String> {
    data.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(256).collect())
}

fn millis(data: &Value, field: &str) -> Result<i64, String> {
    data.get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("no {field}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, data: Value) -> ClerkEvent {
        serde_json::from_value(
            json!({"type": kind, "data": data, "timestamp": 1_700_000_000_500i64,
            "object": "event", "instance_id": "ins_1"}),
        )
        .unwrap()
    }

    fn member(updated_at: i64) -> Value {
        json!({"id": "orgmem_1", "object": "organization_membership", "role": "org:admin",
            "created_at": 1_700_000_000_000i64, "updated_at": updated_at,
            "organization": {"id": "org_1", "name": "Acme", "slug": "acme",
                "updated_at": 1_699_000_000_000i64},
            "public_user_data": {"user_id": "user_1", "identifier": "a@example.com"}})
    }

    #[test]
    fn organizations_and_memberships_become_changes() {
        let created = event(
            "organization.created",
            json!({"id": "org_1", "name": " Acme ",
            "slug": "acme", "image_url": "https://img.clerk.com/x", "updated_at": 5}),
        );
        let DirectoryChange::Organization(profile) = created.change().unwrap() else {
            panic!("not an organization");
        };
        assert_eq!(profile.name.as_deref(), Some("Acme"));
        assert_eq!(profile.version, 5);

        let deleted = event(
            "organization.deleted",
            json!({"id": "org_1", "deleted": true,
            "object": "organization"}),
        );
        assert!(matches!(
            deleted.change().unwrap(),
            DirectoryChange::OrganizationDeleted {
                at: 1_700_000_000_500,
                ..
            }
        ));

        let joined = event("organizationMembership.created", member(1_700_000_000_000));
        let DirectoryChange::Membership(m, Some(org)) = joined.change().unwrap() else {
            panic!("not a membership");
        };
        assert_eq!(
            (m.user_id.as_str(), m.role.as_str()),
            ("user_1", "org:admin")
        );
        assert_eq!(org.slug.as_deref(), Some("acme"));

        let left = event("organizationMembership.deleted", member(1_800_000_000_000));
        let DirectoryChange::MembershipDeleted(m) = left.change().unwrap() else {
            panic!("not a removal");
        };
        assert_eq!(m.version, 1_800_000_000_000, "never before what it removes");
        assert_eq!(
            event("user.created", json!({})).change(),
            Ok(DirectoryChange::Ignored)
        );
    }

    #[test]
    fn data_that_is_not_what_its_type_says_is_refused() {
        for (kind, data) in [
            ("organization.created", json!({"id": "org_1"})),
            (
                "organization.updated",
                json!({"id": "user_1", "updated_at": 1}),
            ),
            (
                "organizationMembership.created",
                json!({"updated_at": 1, "organization": {"id": "org_1"}}),
            ),
            (
                "organizationMembership.deleted",
                json!({"organization": {"id": "org_1"},
                "public_user_data": {"user_id": "not-a-user"}}),
            ),
        ] {
            assert!(event(kind, data).change().is_err(), "{kind}");
        }
    }
}
