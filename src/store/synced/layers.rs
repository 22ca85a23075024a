//! A batch's rows of one table, in layers of distinct ids, written together
//! with the other tables' first layers (`Round`), and the versions whose
//! order cannot be told queued to be fetched again.

use std::collections::BTreeMap;

use super::row::{SyncedRow, UpsertRow, split_written};
use super::{Uncertain, Version};
use crate::store::sets::{InsertRows, OwnedRows, Values};
use crate::store::{StoreError, Tx};

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
