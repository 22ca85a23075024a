//! The link between an organization and its Stripe customer: a customer
//! belongs to at most one organization, and a late or replayed event never
//! moves it.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use super::sets::{Column, InsertRows, ListQuery, repeated};
use super::{Store, StoreError, Tx, is_unique_violation, with_tx};
use crate::domain::{OrgId, StripeCustomerId, unix_now};

/// What `link_customer` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    AlreadyLinked,
    Replaced { previous: StripeCustomerId },
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("customer {customer} is already linked to organization {other}")]
    CustomerTaken {
        customer: StripeCustomerId,
        other: OrgId,
    },
    #[error(
        "organization {org} is already linked to customer {existing}; pass --replace to link it to another customer"
    )]
    OrgHasCustomer {
        org: OrgId,
        existing: StripeCustomerId,
    },
    #[error(
        "customer {0} was linked to another organization at the same moment; run the command again"
    )]
    Race(StripeCustomerId),
    #[error("customer {0} is deleted in Stripe and cannot be linked")]
    Deleted(StripeCustomerId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LinkError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl Store {
    /// Attaches a Stripe customer to an organization (creating the row if
    /// needed). A customer belongs to at most one organization; the unique
    /// index enforces it even against a concurrent link.
    pub async fn link_customer(
        &self,
        org: &OrgId,
        customer: &StripeCustomerId,
        replace: bool,
    ) -> Result<LinkOutcome, LinkError> {
        let result = async {
            let mut tx = self.begin().await?;
            let outcome = tx.link_customer(org, customer, replace).await?;
            // Grants made before the link count for the organization now.
            tx.claim_linked_credits(&[customer.as_str()]).await?;
            tx.commit().await?;
            Ok::<_, LinkError>(outcome)
        }
        .await;
        self.caches.invalidate_org(org.as_str());
        result.map_err(|err| match err {
            LinkError::Store(StoreError::Database(db)) if is_unique_violation(&db) => {
                LinkError::Race(customer.clone())
            }
            other => other,
        })
    }
}

impl Tx {
    /// `Store::link_customer`'s decision and write, uncommitted.
    async fn link_customer(
        &mut self,
        org: &OrgId,
        customer: &StripeCustomerId,
        replace: bool,
    ) -> Result<LinkOutcome, LinkError> {
        let deleted: Option<bool> = with_tx!(self, |conn| {
            sqlx::query_scalar("SELECT deleted FROM customers WHERE id = $1")
                .bind(customer.as_str())
                .fetch_optional(conn)
                .await?
        });
        if deleted == Some(true) {
            return Err(LinkError::Deleted(customer.clone()));
        }
        let owner: Option<String> = with_tx!(self, |conn| {
            sqlx::query_scalar("SELECT id FROM organizations WHERE stripe_customer_id = $1")
                .bind(customer.as_str())
                .fetch_optional(conn)
                .await?
        });
        let current: Option<Option<String>> = with_tx!(self, |conn| {
            sqlx::query_scalar("SELECT stripe_customer_id FROM organizations WHERE id = $1")
                .bind(org.as_str())
                .fetch_optional(conn)
                .await?
        });
        let outcome = decide_link(org, customer, owner, current.flatten(), replace)?;
        if outcome != LinkOutcome::AlreadyLinked {
            with_tx!(self, |conn| {
                sqlx::query(
                    "INSERT INTO organizations (id, stripe_customer_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (id) DO UPDATE SET stripe_customer_id = $2, updated_at = $3",
                )
                .bind(org.as_str())
                .bind(customer.as_str())
                .bind(unix_now())
                .execute(conn)
                .await?;
            });
            self.changed.org(org.as_str());
            // Its Plans tab now shows this customer: keep its document.
            self.changed.customer(customer.as_str());
        }
        Ok(outcome)
    }

    /// Links each customer to its organization unless either is already
    /// linked elsewhere, or the customer is deleted: the first link wins, in
    /// the order given, so a late or replayed event cannot move a customer
    /// between organizations. Creates organization rows as needed. Written
    /// with one statement whose guard holds against another instance's link;
    /// when two of the batch's links share an organization or a customer,
    /// the order decides, so they are first decided on what is stored (one
    /// read more). Returns the links made.
    pub async fn link_customers_if_free(
        &mut self,
        links: &[(String, String)],
    ) -> Result<u64, StoreError> {
        let mut seen = HashSet::new();
        let links: Vec<&(String, String)> = links.iter().filter(|l| seen.insert(*l)).collect();
        if links.is_empty() {
            return Ok(0);
        }
        let made = if each_link_stands_alone(&links) {
            self.link_each_if_free(&links).await?
        } else {
            self.link_in_order_if_free(&links).await?
        };
        for org in &made {
            self.changed.org(org);
        }
        let customers: Vec<&str> = links
            .iter()
            .filter(|(org, _)| made.contains(org))
            .map(|(_, customer)| customer.as_str())
            .collect();
        for customer in &customers {
            self.changed.customer(customer);
        }
        self.claim_linked_credits(&customers).await?;
        Ok(made.len() as u64)
    }

    /// Links each of `links` whose organization and customer are both free
    /// (and the customer not deleted), with one statement: no two of them
    /// share an organization or a customer, so none decides another.
    async fn link_each_if_free(
        &mut self,
        links: &[&(String, String)],
    ) -> Result<Vec<String>, StoreError> {
        static LINK_IF_FREE: LazyLock<InsertRows> = LazyLock::new(|| {
            InsertRows::filtered(
                "organizations",
                &LINK_COLUMNS,
                "NOT EXISTS (SELECT 1 FROM organizations o \
                 WHERE o.stripe_customer_id = given.stripe_customer_id) \
                 AND NOT EXISTS (SELECT 1 FROM customers c \
                 WHERE c.id = given.stripe_customer_id AND c.deleted = TRUE)",
                LINK_TAIL,
            )
        });
        self.insert_links(&LINK_IF_FREE, links).await
    }

    /// Links `links` in order, each if its organization and customer are
    /// free by then, decided on what is stored (one read).
    async fn link_in_order_if_free(
        &mut self,
        links: &[&(String, String)],
    ) -> Result<Vec<String>, StoreError> {
        // Organizations by id and by customer, and deleted customers: what
        // the batch's links are decided on, in one read.
        static STANDING: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new(
                "SELECT id, stripe_customer_id, FALSE FROM organizations WHERE id {in_ids} \
                 UNION ALL SELECT id, stripe_customer_id, FALSE FROM organizations \
                 WHERE stripe_customer_id {in_ids} \
                 UNION ALL SELECT NULL, id, TRUE FROM customers WHERE deleted = TRUE AND id {in_ids}",
            )
        });
        static LINK: LazyLock<InsertRows> =
            LazyLock::new(|| InsertRows::new("organizations", &LINK_COLUMNS, LINK_TAIL));
        let mut ids: Vec<&str> = links
            .iter()
            .flat_map(|(org, customer)| [org.as_str(), customer.as_str()])
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let standing: Vec<(Option<String>, Option<String>, bool)> =
            self.fetch_listed(&STANDING, &ids).await?;
        let mut linked = Links::default();
        for (org, customer, deleted) in standing {
            match (org, customer) {
                (Some(org), Some(customer)) => linked.note(org, customer),
                // A deleted customer may not be linked.
                (None, Some(customer)) if deleted => {
                    linked.taken.insert(customer);
                }
                _ => {}
            }
        }
        let new: Vec<&(String, String)> = links
            .iter()
            .copied()
            .filter(|(org, customer)| linked.link(org, customer))
            .collect();
        self.insert_links(&LINK, &new).await
    }

    /// Runs `insert` (of `organizations`: `LINK_COLUMNS`, ending in
    /// `LINK_TAIL`) for `links`; returns the organizations linked.
    async fn insert_links(
        &mut self,
        insert: &'static InsertRows,
        links: &[&(String, String)],
    ) -> Result<Vec<String>, StoreError> {
        let now = unix_now();
        let columns = vec![
            Column::column(links.iter().map(|(org, _)| org)),
            Column::column(links.iter().map(|(_, customer)| customer)),
            repeated(now, links.len()),
            repeated(now, links.len()),
        ];
        self.insert_rows(insert, columns).await
    }

    /// Deleted Stripe customers can no longer open the portal: forget their links.
    pub async fn unlink_customers(&mut self, customers: &[&str]) -> Result<u64, StoreError> {
        static UNLINK: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new(
                "UPDATE organizations SET stripe_customer_id = NULL, updated_at = $2, \
                 customer_generation = customer_generation + 1 WHERE stripe_customer_id {in_ids}",
            )
        });
        let unlinked = self
            .execute_listed(&UNLINK, customers, Some(unix_now()))
            .await?;
        if unlinked > 0 {
            for customer in customers {
                self.changed.customer(customer);
            }
        }
        Ok(unlinked)
    }

    /// The organization each of `customers` is linked to, if any.
    pub async fn orgs_of_customers(
        &mut self,
        customers: &[&str],
    ) -> Result<HashMap<String, String>, StoreError> {
        static SQL: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new(
                "SELECT stripe_customer_id, id FROM organizations WHERE stripe_customer_id {in_ids}",
            )
        });
        let pairs: Vec<(String, String)> = self.fetch_listed(&SQL, customers).await?;
        Ok(pairs.into_iter().collect())
    }
}

/// A link's organization row, written by `Tx::insert_links`.
const LINK_COLUMNS: [&str; 4] = ["id", "stripe_customer_id", "created_at", "updated_at"];

/// A link's organization row: created, or given the customer if it has none.
const LINK_TAIL: &str = "ON CONFLICT (id) DO UPDATE \
     SET stripe_customer_id = excluded.stripe_customer_id, updated_at = excluded.updated_at \
     WHERE organizations.stripe_customer_id IS NULL RETURNING id";

/// Whether no two of `links` share an organization or a customer, so each
/// can be decided on what is stored alone, in any order.
fn each_link_stands_alone(links: &[&(String, String)]) -> bool {
    let mut orgs = HashSet::new();
    let mut customers = HashSet::new();
    links
        .iter()
        .all(|(org, customer)| orgs.insert(org) && customers.insert(customer))
}

/// Who is linked to whom, as a batch of links is decided in order.
#[derive(Default)]
struct Links {
    /// Organizations that have a customer.
    full: HashSet<String>,
    /// Customers that have an organization, or may not get one.
    taken: HashSet<String>,
}

impl Links {
    fn note(&mut self, org: String, customer: String) {
        self.full.insert(org);
        self.taken.insert(customer);
    }

    /// Whether `customer` may be linked to `org` now; if so, it is.
    fn link(&mut self, org: &str, customer: &str) -> bool {
        if self.full.contains(org) || self.taken.contains(customer) {
            return false;
        }
        self.full.insert(org.to_owned());
        self.taken.insert(customer.to_owned());
        true
    }
}

/// The rules of `link_customer`, apart from the SQL.
fn decide_link(
    org: &OrgId,
    customer: &StripeCustomerId,
    owner: Option<String>,
    current: Option<String>,
    replace: bool,
) -> Result<LinkOutcome, LinkError> {
    if let Some(owner) = owner.filter(|o| o != org.as_str()) {
        return Err(LinkError::CustomerTaken {
            customer: customer.clone(),
            other: OrgId::parse(&owner).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        });
    }
    match current {
        None => Ok(LinkOutcome::Linked),
        Some(existing) if existing == customer.as_str() => Ok(LinkOutcome::AlreadyLinked),
        Some(existing) => {
            let existing = StripeCustomerId::parse(&existing)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if replace {
                Ok(LinkOutcome::Replaced { previous: existing })
            } else {
                Err(LinkError::OrgHasCustomer {
                    org: org.clone(),
                    existing,
                })
            }
        }
    }
}
