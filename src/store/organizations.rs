//! The `organizations` table: one row per Clerk organization, and the reads
//! and writes of it apart from its link to a Stripe customer
//! (`customer_links`).

use super::{Store, StoreError, with_pool};
use crate::domain::{OrgId, StripeCustomerId, unix_now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrgId,
    pub slug: Option<String>,
    /// Clerk's name, once a webhook or `clerk sync` told it.
    pub name: Option<String>,
    /// When Clerk deleted it (unix seconds).
    pub deleted_at: Option<i64>,
    pub stripe_customer_id: Option<StripeCustomerId>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct OrganizationRow {
    id: String,
    slug: Option<String>,
    name: Option<String>,
    deleted_at: Option<i64>,
    stripe_customer_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<OrganizationRow> for Organization {
    type Error = StoreError;
    fn try_from(row: OrganizationRow) -> Result<Self, StoreError> {
        let corrupt = |e: crate::domain::InvalidId| StoreError::Corrupt(e.to_string());
        Ok(Self {
            id: OrgId::parse(&row.id).map_err(corrupt)?,
            slug: row.slug,
            name: row.name,
            deleted_at: row.deleted_at,
            stripe_customer_id: row
                .stripe_customer_id
                .as_deref()
                .map(StripeCustomerId::parse)
                .transpose()
                .map_err(corrupt)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const SELECT_ORG: &str = "SELECT id, slug, name, deleted_at, stripe_customer_id, created_at, \
                          updated_at \
                          FROM organizations WHERE id = $1";

impl Store {
    pub async fn find_organization(&self, id: &OrgId) -> Result<Option<Organization>, StoreError> {
        let row: Option<OrganizationRow> = with_pool!(self, |pool| {
            sqlx::query_as(SELECT_ORG)
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(Organization::try_from).transpose()
    }

    /// `find_organization`, answered from memory when an organization with a
    /// customer was read a moment ago. Never writes.
    pub async fn find_organization_cached(
        &self,
        id: &OrgId,
    ) -> Result<Option<Organization>, StoreError> {
        if let Some(org) = self.orgs.fresh(id, None) {
            return Ok(Some(org));
        }
        let org = self.find_organization(id).await?;
        if let Some(org) = org.as_ref().filter(|o| o.stripe_customer_id.is_some()) {
            self.orgs.remember(org);
        }
        Ok(org)
    }

    /// `ensure_organization`, answered from memory when an organization with
    /// a customer was read a moment ago: the portal's and the page's hot path.
    pub async fn ensure_organization_cached(
        &self,
        id: &OrgId,
        slug: Option<&str>,
    ) -> Result<Organization, StoreError> {
        if let Some(org) = self.orgs.fresh(id, slug) {
            return Ok(org);
        }
        let org = self.ensure_organization(id, slug).await?;
        if org.stripe_customer_id.is_some() {
            self.orgs.remember(&org);
        }
        Ok(org)
    }

    /// Returns the organization, creating its row on first sight and keeping
    /// the slug current. The common case is a single indexed read.
    pub async fn ensure_organization(
        &self,
        id: &OrgId,
        slug: Option<&str>,
    ) -> Result<Organization, StoreError> {
        match self.find_organization(id).await? {
            Some(org) if slug.is_none() || org.slug.as_deref() == slug => Ok(org),
            Some(_) => self.update_slug(id, slug).await,
            None => self.insert_organization(id, slug).await,
        }
    }

    async fn insert_organization(
        &self,
        id: &OrgId,
        slug: Option<&str>,
    ) -> Result<Organization, StoreError> {
        let now = unix_now();
        // A concurrent first request may insert the same row: DO NOTHING keeps
        // theirs, and the read below returns whichever won.
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO organizations (id, slug, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(slug)
            .bind(now)
            .execute(pool)
            .await?;
        });
        self.find_organization(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("organization {id} vanished after insert")))
    }

    async fn update_slug(
        &self,
        id: &OrgId,
        slug: Option<&str>,
    ) -> Result<Organization, StoreError> {
        let row: OrganizationRow = with_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE organizations SET slug = $2, updated_at = $3 WHERE id = $1 \
                 RETURNING id, slug, name, deleted_at, stripe_customer_id, created_at, updated_at",
            )
            .bind(id.as_str())
            .bind(slug)
            .bind(unix_now())
            .fetch_one(pool)
            .await?
        });
        row.try_into()
    }

    /// The organization was just refreshed from Stripe: portal visits before
    /// now no longer make its Plans tab stale.
    pub async fn mark_refreshed(&self, org_id: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE organizations SET refreshed_at = $2 WHERE id = $1")
                .bind(org_id)
                .bind(unix_now() + 1)
                .execute(pool)
                .await?;
        });
        self.caches.invalidate_org(org_id);
        Ok(())
    }

    /// Every (organization, customer) link.
    pub async fn linked_customers(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, stripe_customer_id FROM organizations \
                 WHERE stripe_customer_id IS NOT NULL ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// How many customers `org` has lost: names its next customer's creation.
    pub async fn customer_generation(&self, org: &OrgId) -> Result<i64, StoreError> {
        let generation: Option<i64> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT customer_generation FROM organizations WHERE id = $1")
                .bind(org.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(generation.unwrap_or(0))
    }
}
