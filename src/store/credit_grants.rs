//! Credits purchases grant: once per purchase, for the organization its
//! customer is linked to (now, or when the link is made).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use super::credit_lots::LotGrant;
use super::sets::{Column, InsertRows, ListQuery, Values, repeated};
use super::{StoreError, Tx};
use crate::domain::unix_now;

/// Credits a purchase grants, once per source (`checkout_session`,
/// `invoice`). A grant whose customer is not linked yet (`org_id` unknown)
/// is kept, and counts for the organization its customer is linked to later.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditGrant {
    pub source_type: &'static str,
    pub source_id: String,
    pub org_id: Option<String>,
    pub customer_id: Option<String>,
    pub amount: i64,
    /// The payment that paid for it, which a refund or a dispute names.
    pub payment_intent: Option<String>,
}

impl Tx {
    /// Records each grant once per source (the first of a batch wins; a
    /// repeat changes nothing), for the organization named or the one its
    /// customer is linked to, and adds it to that balance. Returns the
    /// grants recorded.
    pub async fn grant_credits(&mut self, grants: Vec<CreditGrant>) -> Result<u64, StoreError> {
        static SQL: LazyLock<InsertRows> = LazyLock::new(|| {
            InsertRows::new(
                "credit_ledger",
                &[
                    "source_type",
                    "source_id",
                    "org_id",
                    "customer_id",
                    "amount",
                    "created_at",
                    "payment_intent",
                ],
                "ON CONFLICT (source_type, source_id) DO NOTHING \
                 RETURNING source_type || ':' || source_id",
            )
        });
        let mut seen = HashSet::new();
        let mut grants: Vec<CreditGrant> = grants
            .into_iter()
            .filter(|g| seen.insert((g.source_type, g.source_id.clone())))
            .collect();
        if grants.is_empty() {
            return Ok(0);
        }
        let owners = self.organizations_of_customers(&grants).await?;
        for grant in grants.iter_mut().filter(|g| g.org_id.is_none()) {
            grant.org_id = grant
                .customer_id
                .as_ref()
                .and_then(|c| owners.get(c))
                .cloned();
        }
        let now = unix_now();
        let columns = vec![
            Values::Text(
                grants
                    .iter()
                    .map(|g| Some(g.source_type.to_owned()))
                    .collect(),
            ),
            Column::column(grants.iter().map(|g| &g.source_id)),
            Column::column(grants.iter().map(|g| &g.org_id)),
            Column::column(grants.iter().map(|g| &g.customer_id)),
            Column::column(grants.iter().map(|g| &g.amount)),
            repeated(now, grants.len()),
            Column::column(grants.iter().map(|g| &g.payment_intent)),
        ];
        let granted: HashSet<String> = self.insert_rows(&SQL, columns).await?.into_iter().collect();
        let granted: Vec<&CreditGrant> = grants
            .iter()
            .filter(|g| granted.contains(&format!("{}:{}", g.source_type, g.source_id)))
            .collect();
        let mut by_org: BTreeMap<&str, Vec<LotGrant<'_>>> = BTreeMap::new();
        for grant in &granted {
            if let Some(org) = &grant.org_id {
                by_org.entry(org).or_default().push((
                    grant.source_type,
                    &grant.source_id,
                    grant.amount,
                    now,
                ));
            }
            if let Some(customer) = &grant.customer_id {
                self.changed.customer(customer);
            }
        }
        for (org, grants) in by_org {
            self.add_granted(org, &grants, now).await?;
        }
        Ok(granted.len() as u64)
    }

    /// The organization each grant's customer is linked to, where one is.
    async fn organizations_of_customers(
        &mut self,
        grants: &[CreditGrant],
    ) -> Result<HashMap<String, String>, StoreError> {
        static SQL: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new(
                "SELECT stripe_customer_id, id FROM organizations \
                 WHERE stripe_customer_id {in_ids}",
            )
        });
        let customers: Vec<&str> = grants
            .iter()
            .filter(|g| g.org_id.is_none())
            .filter_map(|g| g.customer_id.as_deref())
            .collect();
        if customers.is_empty() {
            return Ok(HashMap::new());
        }
        let found: Vec<(String, String)> = self.fetch_listed(&SQL, &customers).await?;
        Ok(found.into_iter().collect())
    }

    /// Gives the grants of `customers` made before they were linked to the
    /// organization each is linked to now, and adds them to its balance.
    pub async fn claim_linked_credits(&mut self, customers: &[&str]) -> Result<(), StoreError> {
        static SQL: LazyLock<ListQuery> = LazyLock::new(|| {
            ListQuery::new(
                "UPDATE credit_ledger SET org_id = (SELECT o.id FROM organizations o \
                   WHERE o.stripe_customer_id = credit_ledger.customer_id) \
                 WHERE org_id IS NULL AND customer_id {in_ids} AND EXISTS (SELECT 1 \
                   FROM organizations o WHERE o.stripe_customer_id = credit_ledger.customer_id) \
                 RETURNING org_id, source_type, source_id, amount, created_at",
            )
        });
        if customers.is_empty() {
            return Ok(());
        }
        let claimed: Vec<(String, String, String, i64, i64)> =
            self.fetch_listed(&SQL, customers).await?;
        let mut by_org: BTreeMap<&str, Vec<LotGrant<'_>>> = BTreeMap::new();
        for (org, source_type, source_id, amount, created_at) in &claimed {
            by_org
                .entry(org)
                .or_default()
                .push((source_type, source_id, *amount, *created_at));
        }
        let now = unix_now();
        for (org, grants) in by_org {
            self.add_granted(org, &grants, now).await?;
        }
        Ok(())
    }

    /// Adds grants to `org`'s balance, and their lots when credits expire.
    async fn add_granted(
        &mut self,
        org: &str,
        grants: &[LotGrant<'_>],
        now: i64,
    ) -> Result<(), StoreError> {
        let total = grants.iter().map(|g| g.2).sum();
        let balance = self.add_to_balance(org, total, now).await?;
        self.add_lots(org, grants, balance).await
    }
}
