//! The rows of Stripe state we keep, each declared once: its fields and the
//! columns they fill. The declaration gives the row its upsert (with the
//! version guard), its fingerprint and its `SELECT` of the stored fingerprint,
//! so a column is named in exactly one place.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use super::sets::{Column, InsertRows, ListQuery, OwnedRows, Values, repeated};
use super::upsert::{FETCHED, Update, upsert_sql};
use super::{StoreError, Tx};
use crate::domain::unix_now;

/// Which write wins: the greater (created, rank). Two versions of one
/// object with equal (created, rank) but different content cannot be
/// ordered from what Stripe sent (event ids are not time-ordered), and
/// neither can a fetch and an event of the same second: the stored one is
/// kept and the object is queued to be fetched again (`Uncertain`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// The event's `created`, or the second of a fetch.
    pub created: i64,
    /// Breaks same-second ties by the object's own state.
    pub rank: i64,
    /// The event id, or `FETCHED`: which write this was, never an order.
    pub source: String,
}

impl Version {
    /// What orders two versions.
    pub fn order(&self) -> (i64, i64) {
        (self.created, self.rank)
    }

    pub fn is_fetched(&self) -> bool {
        self.source == FETCHED
    }

    /// Whether `self` and `other`, of different content, leave their order
    /// unknown: the same second and rank, or a fetch and anything else of
    /// the same second (the fetch saw the state at some instant of it).
    pub fn ambiguous_with(&self, other: &Version) -> bool {
        self.created == other.created
            && (self.rank == other.rank || self.is_fetched() || other.is_fetched())
    }
}

/// An object whose newest version could not be ordered: fetched again from
/// Stripe (`store::refetch`), unless a newer version comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncertain {
    /// Its table, which names its kind.
    pub table: &'static str,
    pub id: String,
    /// The second of the versions that could not be ordered.
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    pub id: String,
    pub org_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub default_payment_method: Option<String>,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionItemRow {
    pub id: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub currency: Option<String>,
    pub unit_amount: Option<i64>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    /// The price's nickname (or a pre-2018 plan's name): shown when the
    /// product's name is not known.
    pub plan_name: Option<String>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub default_payment_method: Option<String>,
    pub created: i64,
    /// When it became `past_due`: an event's time, or the oldest unpaid
    /// invoice a fetch found (never the fetch's time); the stored row keeps
    /// the earliest while it stays so.
    pub past_due_since: Option<i64>,
    pub items: Vec<SubscriptionItemRow>,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceRow {
    pub id: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub number: Option<String>,
    pub status: Option<String>,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub total: i64,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub created: i64,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentMethodRow {
    pub id: String,
    pub customer_id: Option<String>,
    pub kind: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProductRow {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub active: bool,
    pub deleted: bool,
    pub version: Version,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceRow {
    pub id: String,
    pub product_id: Option<String>,
    pub active: bool,
    pub currency: String,
    pub unit_amount: Option<i64>,
    pub kind: Option<String>,
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    pub nickname: Option<String>,
    pub lookup_key: Option<String>,
    pub credits: Option<i64>,
    pub deleted: bool,
    pub version: Version,
}

/// A customer's active features (Stripe's active entitlement summary),
/// replaced whole by each newer summary.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitlementsRow {
    /// The customer.
    pub id: String,
    /// Lookup keys, sorted, as a JSON array.
    pub features: String,
    pub version: Version,
}

/// An entitlement feature (`entitlements.feature`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    pub id: String,
    pub lookup_key: String,
    pub name: Option<String>,
    pub active: bool,
    pub version: Version,
}

/// A row whose synced content can be fingerprinted, so reconciliation can
/// tell a real change from a version bump.
pub trait SyncedRow: std::fmt::Debug + Clone {
    const TABLE: &'static str;
    /// `SELECT content_hash FROM <table> WHERE id = $1`.
    const SELECT_HASH: &'static str;
    /// Whether the upsert keeps anything of the stored row (its `updates`).
    const KEEPS_FROM_OLDER: bool = false;
    fn id(&self) -> &str;
    fn version(&self) -> &Version;
    fn version_mut(&mut self) -> &mut Version;
    /// Clears fields derived from the version, which are no content either.
    fn blank_derived(&mut self) {}

    /// SHA-256 of the row's fields with the version (and what derives from
    /// it) blanked out.
    fn content_hash(&self) -> String {
        let mut content = self.clone();
        *content.version_mut() = Version::default();
        content.blank_derived();
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{content:?}").as_bytes(),
        );
        digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The statements that write a batch's `rows`, each a set of distinct ids
/// (one statement may not write a row twice), ids sorted so concurrent
/// batches take row locks in one order. Where the upsert keeps nothing of
/// the stored row, each id's newest version alone is written: the others
/// would change nothing. Where it keeps something (`KEEPS_FROM_OLDER`), an
/// id's versions are written oldest first, one a statement, so the upsert's
/// rules see them as they would one event at a time. Of versions that
/// cannot be ordered the first to arrive is written and the object is
/// returned as uncertain.
pub(super) fn layers<R: SyncedRow>(rows: Vec<R>) -> (Vec<Vec<R>>, Vec<Uncertain>) {
    let mut by_id: BTreeMap<String, Vec<R>> = BTreeMap::new();
    for row in rows {
        by_id.entry(row.id().to_owned()).or_default().push(row);
    }
    let mut layers: Vec<Vec<R>> = Vec::new();
    let mut uncertain = Vec::new();
    for mut versions in by_id.into_values() {
        // Stable: of equal orders, arrival order stays.
        versions.sort_by_key(|row| row.version().order());
        let mut kept: Vec<R> = Vec::with_capacity(versions.len());
        for row in versions {
            match kept.last() {
                Some(last) if last.version().order() == row.version().order() => {
                    if last.version() != row.version() && last.content_hash() != row.content_hash()
                    {
                        uncertain.push(Uncertain {
                            table: R::TABLE,
                            id: row.id().to_owned(),
                            created: row.version().created,
                        });
                    }
                }
                _ => kept.push(row),
            }
        }
        if !R::KEEPS_FROM_OLDER {
            kept.drain(..kept.len() - 1);
        }
        for (depth, row) in kept.into_iter().enumerate() {
            if layers.len() <= depth {
                layers.push(Vec::new());
            }
            layers[depth].push(row);
        }
    }
    uncertain.dedup();
    (layers, uncertain)
}

/// A synced row's guarded upsert, declared by `synced_table!`.
pub(super) trait UpsertRow: SyncedRow {
    /// The upsert of one layer's rows (distinct ids), each unless the
    /// stored one is as new or newer.
    fn layer_statement(rows: &[Self]) -> (&'static InsertRows, Vec<Values>);

    /// `SELECT id, event_created, event_rank, event_source, content_hash`
    /// of the listed ids.
    fn stored_versions() -> &'static ListQuery;

    /// Writes one layer; returns the rows written and those not.
    async fn upsert_layer(
        rows: Vec<Self>,
        tx: &mut Tx,
    ) -> Result<(Vec<Self>, Vec<Self>), StoreError> {
        let (sql, columns) = Self::layer_statement(&rows);
        let written = tx.insert_rows(sql, columns).await?;
        Ok(split_written(rows, &written))
    }
}

/// The rows written, and those the version guard refused.
fn split_written<R: SyncedRow>(rows: Vec<R>, written: &[String]) -> (Vec<R>, Vec<R>) {
    let written: HashSet<&str> = written.iter().map(String::as_str).collect();
    rows.into_iter().partition(|r| written.contains(r.id()))
}

/// Of rows the version guard refused, the objects whose stored version
/// cannot be ordered against theirs (different content, see
/// `Version::ambiguous_with`). The common refusal, an older or repeated
/// delivery, is no such case.
async fn refused_ties<R: UpsertRow>(
    refused: &[R],
    tx: &mut Tx,
) -> Result<Vec<Uncertain>, StoreError> {
    if refused.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = refused.iter().map(SyncedRow::id).collect();
    let stored: Vec<(String, i64, i64, String, String)> =
        tx.fetch_listed(R::stored_versions(), &ids).await?;
    let stored: BTreeMap<String, (Version, String)> = stored
        .into_iter()
        .map(|(id, created, rank, source, hash)| {
            (
                id,
                (
                    Version {
                        created,
                        rank,
                        source,
                    },
                    hash,
                ),
            )
        })
        .collect();
    Ok(refused
        .iter()
        .filter(|row| {
            stored.get(row.id()).is_some_and(|(version, hash)| {
                version.ambiguous_with(row.version()) && *hash != row.content_hash()
            })
        })
        .map(|row| Uncertain {
            table: R::TABLE,
            id: row.id().to_owned(),
            created: row.version().created,
        })
        .collect())
}

/// The first layer of several tables' rows, written together (one
/// statement on PostgreSQL, see `Tx::insert_together`): the tables do not
/// depend on each other, and a batch's rows rarely need a second layer.
/// Rows owned by a table's rows (`OwnedRows`) are replaced in the same
/// statement as their owners.
#[derive(Default)]
pub(super) struct Round {
    inserts: Vec<(&'static InsertRows, Vec<Values>)>,
    owned: Vec<(usize, &'static OwnedRows, Vec<Values>)>,
}

/// The columns of the rows the given rows own.
type OwnedColumns<R> = fn(&[R]) -> Vec<Values>;

/// One table's rows in a `Round`: its first layer, and the layers after.
pub(super) struct Pending<R> {
    insert: Option<usize>,
    first: Vec<R>,
    rest: Vec<Vec<R>>,
    owns: Option<(&'static OwnedRows, OwnedColumns<R>)>,
    /// Objects whose versions in the batch could not be ordered.
    uncertain: Vec<Uncertain>,
}

impl Round {
    pub(super) fn add<R: UpsertRow>(&mut self, rows: Vec<R>) -> Pending<R> {
        let (layers, uncertain) = layers(rows);
        let mut layers = layers.into_iter();
        let first = layers.next().unwrap_or_default();
        let insert = (!first.is_empty()).then(|| {
            self.inserts.push(R::layer_statement(&first));
            self.inserts.len() - 1
        });
        Pending {
            insert,
            first,
            rest: layers.collect(),
            owns: None,
            uncertain,
        }
    }

    /// Adds `rows`, each owning rows of `owned` (their columns `columns_of`
    /// the rows), which are replaced whenever their owner is written.
    pub(super) fn add_owning<R: UpsertRow>(
        &mut self,
        rows: Vec<R>,
        owned: &'static OwnedRows,
        columns_of: OwnedColumns<R>,
    ) -> Pending<R> {
        let mut pending = self.add(rows);
        if let Some(insert) = pending.insert {
            self.owned.push((insert, owned, columns_of(&pending.first)));
        }
        pending.owns = Some((owned, columns_of));
        pending
    }

    /// Adds an insert independent of the tables' (the record of the events
    /// whose rows these are); returns where its written ids will be.
    pub(super) fn also(&mut self, insert: &'static InsertRows, columns: Vec<Values>) -> usize {
        self.inserts.push((insert, columns));
        self.inserts.len() - 1
    }

    /// Writes the first layers; then `Pending::finish` each table.
    pub(super) async fn write(self, tx: &mut Tx) -> Result<Vec<Vec<String>>, StoreError> {
        tx.insert_together(self.inserts, self.owned).await
    }
}

impl<R: UpsertRow> Pending<R> {
    /// The rows written: of the first layer (by the round's `written`), and
    /// of the later layers, written now, one statement each, then the rows
    /// these own, as the newest version written of each owner has them.
    /// Objects whose order turned out unknown are queued to be fetched again.
    pub(super) async fn finish(
        self,
        written: &[Vec<String>],
        tx: &mut Tx,
    ) -> Result<Vec<R>, StoreError> {
        let ids = self.insert.and_then(|i| written.get(i));
        let (mut rows, mut refused) = split_written(self.first, ids.map_or(&[], Vec::as_slice));
        let mut later = Vec::new();
        for layer in self.rest {
            let (written, not) = R::upsert_layer(layer, tx).await?;
            later.extend(written);
            refused.extend(not);
        }
        let mut uncertain = self.uncertain;
        uncertain.extend(refused_ties(&refused, tx).await?);
        tx.queue_refetches(&uncertain).await?;
        if let Some((owned, columns_of)) = self.owns.filter(|_| !later.is_empty()) {
            // Later layers are newer: the last version of each id wins.
            let newest: BTreeMap<&str, &R> = later.iter().map(|r| (r.id(), r)).collect();
            let owners: Vec<&str> = newest.keys().copied().collect();
            let newest: Vec<R> = newest.values().map(|r| (*r).clone()).collect();
            tx.replace_owned(owned, &owners, columns_of(&newest))
                .await?;
        }
        rows.extend(later);
        Ok(rows)
    }
}

/// The columns every synced table ends with, after its own.
const BOOKKEEPING: [&str; 5] = [
    "event_created",
    "event_rank",
    "event_source",
    "updated_at",
    "content_hash",
];

/// Declares a synced table: the row type, the table, and each column with the
/// field that fills it, in order (`id` first, implied; the version
/// bookkeeping last, implied). `updates` are the upsert's rules for a column
/// (see `Update`).
macro_rules! synced_table {
    (
        $row:ident => $table:literal {
            $($column:literal: $field:ident),+ $(,)?
        }
        $(updates: [$($update:expr),+ $(,)?])?
        $(derived: [$($derived:ident),+])?
    ) => {
        impl SyncedRow for $row {
            const TABLE: &'static str = $table;
            const SELECT_HASH: &'static str =
                concat!("SELECT content_hash FROM ", $table, " WHERE id = $1");
            fn id(&self) -> &str {
                &self.id
            }
            fn version(&self) -> &Version {
                &self.version
            }
            fn version_mut(&mut self) -> &mut Version {
                &mut self.version
            }
            $(fn blank_derived(&mut self) {
                $(self.$derived = Default::default();)+
            })?
            const KEEPS_FROM_OLDER: bool = !Self::UPDATES.is_empty();
        }

        impl $row {
            const UPDATES: &'static [Update] = &[$($($update),+)?];
        }

        impl UpsertRow for $row {
            fn layer_statement(rows: &[Self]) -> (&'static InsertRows, Vec<Values>) {
                static SQL: LazyLock<InsertRows> = LazyLock::new(|| {
                    let columns: Vec<&str> = ["id", $($column),+]
                        .into_iter()
                        .chain(BOOKKEEPING)
                        .collect();
                    upsert_sql($table, &columns, $row::UPDATES, true)
                });
                let n = rows.len();
                let columns = vec![
                    Column::column(rows.iter().map(|r| &r.id)),
                    $(Column::column(rows.iter().map(|r| &r.$field)),)+
                    Column::column(rows.iter().map(|r| &r.version.created)),
                    Column::column(rows.iter().map(|r| &r.version.rank)),
                    Column::column(rows.iter().map(|r| &r.version.source)),
                    repeated(unix_now(), n),
                    Values::Text(rows.iter().map(|r| Some(r.content_hash())).collect()),
                ];
                (&SQL, columns)
            }

            fn stored_versions() -> &'static ListQuery {
                static SQL: LazyLock<ListQuery> = LazyLock::new(|| {
                    ListQuery::new(concat!(
                        "SELECT id, event_created, event_rank, event_source, content_hash FROM ",
                        $table,
                        " WHERE id {in_ids}"
                    ))
                });
                &SQL
            }
        }
    };
}

synced_table! {
    CustomerRow => "customers" {
        "org_id": org_id,
        "email": email,
        "name": name,
        "default_payment_method": default_payment_method,
        "deleted": deleted,
    }
    // An event without the metadata must not unlink what checkout linked.
    updates: [Update::KeepWhenNull("org_id")]
}

synced_table! {
    SubscriptionRow => "subscriptions" {
        "customer_id": customer_id,
        "status": status,
        "price_id": price_id,
        "product_id": product_id,
        "quantity": quantity,
        "currency": currency,
        "unit_amount": unit_amount,
        "recurring_interval": interval,
        "interval_count": interval_count,
        "plan_name": plan_name,
        "current_period_start": current_period_start,
        "current_period_end": current_period_end,
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": cancel_at,
        "canceled_at": canceled_at,
        "ended_at": ended_at,
        "trial_start": trial_start,
        "trial_end": trial_end,
        "default_payment_method": default_payment_method,
        "created": created,
        "past_due_since": past_due_since,
    }
    // Past due since the earliest start known while it stays so: an event's
    // time, or the oldest unpaid invoice a fetch found.
    updates: [Update::With(
        "past_due_since",
        "CASE WHEN excluded.status <> 'past_due' THEN NULL \
         WHEN subscriptions.status = 'past_due' AND subscriptions.past_due_since IS NOT NULL \
         AND (excluded.past_due_since IS NULL \
           OR subscriptions.past_due_since < excluded.past_due_since) \
         THEN subscriptions.past_due_since ELSE excluded.past_due_since END",
    )]
    derived: [past_due_since]
}

synced_table! {
    InvoiceRow => "invoices" {
        "customer_id": customer_id,
        "subscription_id": subscription_id,
        "number": number,
        "status": status,
        "currency": currency,
        "amount_due": amount_due,
        "amount_paid": amount_paid,
        "amount_remaining": amount_remaining,
        "total": total,
        "hosted_invoice_url": hosted_invoice_url,
        "invoice_pdf": invoice_pdf,
        "period_start": period_start,
        "period_end": period_end,
        "created": created,
        "deleted": deleted,
    }
}

synced_table! {
    PaymentMethodRow => "payment_methods" {
        "customer_id": customer_id,
        "type": kind,
        "brand": brand,
        "last4": last4,
        "exp_month": exp_month,
        "exp_year": exp_year,
    }
}

synced_table! {
    ProductRow => "products" {
        "name": name,
        "description": description,
        "active": active,
        "deleted": deleted,
    }
}

synced_table! {
    PriceRow => "prices" {
        "product_id": product_id,
        "active": active,
        "currency": currency,
        "unit_amount": unit_amount,
        "type": kind,
        "recurring_interval": interval,
        "interval_count": interval_count,
        "nickname": nickname,
        "lookup_key": lookup_key,
        "credits": credits,
        "deleted": deleted,
    }
}

synced_table! {
    EntitlementsRow => "customer_entitlements" {
        "features": features,
    }
}

synced_table! {
    FeatureRow => "features" {
        "lookup_key": lookup_key,
        "name": name,
        "active": active,
    }
}

impl SubscriptionItemRow {
    /// Items are part of their subscription's snapshot, not versioned alone:
    /// replaced with it (see `OwnedRows`).
    pub(super) fn owned_by_subscriptions() -> &'static OwnedRows {
        static ITEMS: LazyLock<OwnedRows> = LazyLock::new(|| {
            let columns = [
                "id",
                "subscription_id",
                "price_id",
                "product_id",
                "quantity",
                "currency",
                "unit_amount",
                "recurring_interval",
                "interval_count",
                "current_period_start",
                "current_period_end",
            ];
            OwnedRows::new(
                upsert_sql("subscription_items", &columns, &[], false),
                "subscription_id",
            )
        });
        &ITEMS
    }

    /// The items of `subscriptions`, as the columns of `owned_by_subscriptions`;
    /// an item id given twice (one statement writes a row once) keeps its
    /// last subscription.
    pub(super) fn columns_of(subscriptions: &[SubscriptionRow]) -> Vec<Values> {
        let items: BTreeMap<&str, (&str, &Self)> = subscriptions
            .iter()
            .flat_map(|s| s.items.iter().map(move |item| (s.id.as_str(), item)))
            .map(|(subscription, item)| (item.id.as_str(), (subscription, item)))
            .collect();
        let items: Vec<(&str, &Self)> = items.into_values().collect();
        let subscriptions: Vec<String> = items.iter().map(|(s, _)| (*s).to_owned()).collect();
        vec![
            Column::column(items.iter().map(|(_, i)| &i.id)),
            Column::column(subscriptions.iter()),
            Column::column(items.iter().map(|(_, i)| &i.price_id)),
            Column::column(items.iter().map(|(_, i)| &i.product_id)),
            Column::column(items.iter().map(|(_, i)| &i.quantity)),
            Column::column(items.iter().map(|(_, i)| &i.currency)),
            Column::column(items.iter().map(|(_, i)| &i.unit_amount)),
            Column::column(items.iter().map(|(_, i)| &i.interval)),
            Column::column(items.iter().map(|(_, i)| &i.interval_count)),
            Column::column(items.iter().map(|(_, i)| &i.current_period_start)),
            Column::column(items.iter().map(|(_, i)| &i.current_period_end)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_the_version() {
        let mut row = ProductRow {
            id: "prod_1".into(),
            name: Some("Pro".into()),
            description: None,
            active: true,
            deleted: false,
            version: Version::default(),
        };
        let before = row.content_hash();
        row.version.created = 42;
        assert_eq!(row.content_hash(), before);
        row.name = Some("Team".into());
        assert_ne!(row.content_hash(), before);
    }
}
