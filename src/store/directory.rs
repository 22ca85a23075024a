//! What Clerk says of organizations (name, slug, image, deletion) and of
//! their members, each change applied only over an older one; and Clerk's
//! deliveries by `svix-id`.

use super::{Store, StoreError, Tx, with_pool, with_tx};
use crate::clerk::events::{Membership, OrganizationProfile};
use crate::domain::unix_now;

impl Tx {
    /// Records a delivery; false when it was recorded before (a duplicate).
    pub async fn record_clerk_delivery(
        &mut self,
        svix_id: &str,
        kind: &str,
    ) -> Result<bool, StoreError> {
        let recorded: Option<String> = with_tx!(self, |conn| {
            sqlx::query_scalar(
                "INSERT INTO clerk_deliveries (svix_id, kind, received_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (svix_id) DO NOTHING RETURNING svix_id",
            )
            .bind(svix_id)
            .bind(kind)
            .bind(unix_now())
            .fetch_optional(conn)
            .await?
        });
        Ok(recorded.is_some())
    }

    /// Keeps the profile if it is newer than the one kept (and the
    /// organization is not deleted); whether it was kept.
    pub async fn apply_organization_profile(
        &mut self,
        profile: &OrganizationProfile,
    ) -> Result<bool, StoreError> {
        let kept: Option<String> = with_tx!(self, |conn| {
            sqlx::query_scalar(
                "INSERT INTO organizations (id, slug, name, image_url, clerk_updated_at, \
                   created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (id) DO UPDATE SET slug = COALESCE(excluded.slug, organizations.slug), \
                   name = excluded.name, image_url = excluded.image_url, \
                   clerk_updated_at = excluded.clerk_updated_at, updated_at = excluded.updated_at \
                 WHERE organizations.deleted_at IS NULL AND (organizations.clerk_updated_at IS NULL \
                   OR organizations.clerk_updated_at < excluded.clerk_updated_at) \
                 RETURNING id",
            )
            .bind(profile.id.as_str())
            .bind(&profile.slug)
            .bind(&profile.name)
            .bind(&profile.image_url)
            .bind(profile.version)
            .bind(unix_now())
            .fetch_optional(conn)
            .await?
        });
        if kept.is_some() {
            self.changed.org(profile.id.as_str());
        }
        Ok(kept.is_some())
    }

    /// Marks the organization deleted in Clerk at `at` (ms), once.
    pub async fn mark_organization_deleted(&mut self, id: &str, at: i64) -> Result<(), StoreError> {
        let now = unix_now();
        with_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO organizations (id, created_at, updated_at, deleted_at) \
                 VALUES ($1, $2, $2, $3) ON CONFLICT (id) DO UPDATE \
                 SET deleted_at = COALESCE(organizations.deleted_at, excluded.deleted_at), \
                   updated_at = excluded.updated_at",
            )
            .bind(id)
            .bind(now)
            .bind(at / 1000)
            .execute(conn)
            .await?;
        });
        self.changed.org(id);
        Ok(())
    }

    /// Keeps a membership (or its removal, `deleted`) if it is newer than
    /// what is kept for that member; whether it was kept.
    pub async fn apply_membership(
        &mut self,
        membership: &Membership,
        deleted: bool,
    ) -> Result<bool, StoreError> {
        let now = unix_now();
        // The organization may be new to us: it exists before its members.
        with_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO organizations (id, created_at, updated_at) VALUES ($1, $2, $2) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(membership.org.as_str())
            .bind(now)
            .execute(conn)
            .await?;
        });
        let kept: Option<String> = with_tx!(self, |conn| {
            sqlx::query_scalar(
                "INSERT INTO organization_members (org_id, user_id, role, version, deleted, \
                   updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role, \
                   version = excluded.version, deleted = excluded.deleted, \
                   updated_at = excluded.updated_at \
                 WHERE organization_members.version < excluded.version \
                 RETURNING user_id",
            )
            .bind(membership.org.as_str())
            .bind(&membership.user_id)
            .bind(&membership.role)
            .bind(membership.version)
            .bind(deleted)
            .bind(now)
            .fetch_optional(conn)
            .await?
        });
        if kept.is_some() {
            self.changed.org(membership.org.as_str());
        }
        Ok(kept.is_some())
    }
}

/// A member, as the admin page lists them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrgMember {
    pub user_id: String,
    pub role: String,
}

impl Store {
    /// An organization's members, by user id.
    pub async fn members_of(&self, org_id: &str) -> Result<Vec<OrgMember>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT user_id, role FROM organization_members \
                 WHERE org_id = $1 AND deleted = FALSE ORDER BY user_id",
            )
            .bind(org_id)
            .fetch_all(pool)
            .await?
        }))
    }
}
