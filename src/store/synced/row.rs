//! What a synced row is: its fingerprint, its guarded upsert, and the macro
//! that declares both from a table's columns.

use std::collections::HashSet;

use super::Version;
use crate::store::sets::{InsertRows, ListQuery, Values};
use crate::store::{StoreError, Tx};

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
        hex::encode(&digest.as_ref()[..16])
    }
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

/// The columns every synced table ends with, after its own.
pub(super) const BOOKKEEPING: [&str; 5] = [
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
pub(super) use synced_table;

/// The rows written, and those the version guard refused.
pub(super) fn split_written<R: SyncedRow>(rows: Vec<R>, written: &[String]) -> (Vec<R>, Vec<R>) {
    let written: HashSet<&str> = written.iter().map(String::as_str).collect();
    rows.into_iter().partition(|r| written.contains(r.id()))
}
