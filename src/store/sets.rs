//! Set-based statements: many rows written, or many ids looked up, with one
//! statement. PostgreSQL gets one array a column (`UNNEST`), so the text
//! does not depend on how many and is prepared once a connection; inserts
//! into tables that do not depend on each other go together, as CTEs of one
//! statement (`insert_together`), with the rows their rows own (`OwnedRows`),
//! since each statement is a round trip. An insert may keep only the rows a
//! condition on the tables admits (`InsertRows::filtered`): a decision and
//! its write in one statement.
//! SQLite, where a statement costs no round trip and preparing one is cheap,
//! gets multi-row `VALUES` within its limit on parameters (faster here than
//! one JSON array of rows: 6,977 against 5,423 events/s in the ingest
//! benchmark), and a JSON array of ids (`json_each`) for a lookup. A batch of
//! events thus costs a statement a table, not a statement an event.

use std::collections::HashSet;

use sqlx::Arguments;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::SqliteRow;

use super::{StoreError, Tx, TxConn};

/// One column's values, a row each.
#[derive(Debug)]
pub(crate) enum Values {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<bool>),
}

/// The columns as PostgreSQL arrays, bound in order.
fn arrays(columns: impl IntoIterator<Item = Values>) -> Result<PgArguments, StoreError> {
    let mut arguments = PgArguments::default();
    for column in columns {
        match column {
            Values::Text(v) => arguments.add(v),
            Values::Int(v) => arguments.add(v),
            Values::Bool(v) => arguments.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Text(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    /// The rows `keep` says yes to, in order.
    fn only(self, keep: &[bool]) -> Values {
        fn kept<T>(values: Vec<T>, keep: &[bool]) -> Vec<T> {
            values
                .into_iter()
                .zip(keep)
                .filter_map(|(value, keep)| keep.then_some(value))
                .collect()
        }
        match self {
            Values::Text(v) => Values::Text(kept(v, keep)),
            Values::Int(v) => Values::Int(kept(v, keep)),
            Values::Bool(v) => Values::Bool(kept(v, keep)),
        }
    }
}

/// A field's type, as a column of values.
pub(crate) trait Column {
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> Values
    where
        Self: 'a;
}

impl Column for String {
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> Values {
        Values::Text(values.map(|v| Some(v.clone())).collect())
    }
}

impl Column for Option<String> {
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> Values {
        Values::Text(values.cloned().collect())
    }
}

impl Column for i64 {
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> Values {
        Values::Int(values.map(|v| Some(*v)).collect())
    }
}

impl Column for Option<i64> {
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> Values {
        Values::Int(values.copied().collect())
    }
}

impl Column for bool {
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> Values {
        Values::Bool(values.copied().collect())
    }
}

/// The same value in each of `rows` rows.
pub(crate) fn repeated<T: Column + Clone>(value: T, rows: usize) -> Values {
    T::column(std::iter::repeat_n(&value, rows))
}

/// An `INSERT` of any number of rows, in both backends' words.
pub(crate) struct InsertRows {
    postgres: String,
    table: String,
    tail: String,
    names: Vec<String>,
    /// Which of the given rows to insert: a condition on `given.<column>`.
    filter: Option<String>,
}

/// SQLite's default SQLITE_MAX_VARIABLE_NUMBER (since 3.32).
const SQLITE_MAX_PARAMETERS: usize = 32_766;

impl InsertRows {
    /// `INSERT INTO table (columns) <the rows> tail`; `tail` is the conflict
    /// clause and `RETURNING` (of one column, which the insert returns).
    pub(crate) fn new(table: &str, columns: &[&str], tail: &str) -> Self {
        Self::build(table, columns, None, tail)
    }

    /// Like `new`, inserting only the given rows that `filter` admits: a
    /// condition on the row as `given.<column>`, which may read the tables.
    pub(crate) fn filtered(table: &str, columns: &[&str], filter: &str, tail: &str) -> Self {
        Self::build(table, columns, Some(filter), tail)
    }

    fn build(table: &str, columns: &[&str], filter: Option<&str>, tail: &str) -> Self {
        let mut insert = Self {
            postgres: String::new(),
            table: table.to_owned(),
            tail: tail.to_owned(),
            names: columns.iter().map(|c| (*c).to_owned()).collect(),
            filter: filter.map(str::to_owned),
        };
        insert.postgres = insert.postgres_from(1, insert.filter.as_deref());
        insert
    }

    /// `INSERT INTO table (columns)`.
    fn head(&self) -> String {
        format!("INSERT INTO {} ({})", self.table, self.names.join(", "))
    }

    fn columns(&self) -> usize {
        self.names.len()
    }

    /// The PostgreSQL statement, its arrays bound from `$first` on, of the
    /// rows `filter` admits (all without one).
    fn postgres_from(&self, first: usize, filter: Option<&str>) -> String {
        let arrays: Vec<String> = (first..first + self.columns())
            .map(|i| format!("${i}"))
            .collect();
        let arrays = arrays.join(", ");
        match filter {
            None => format!(
                "{} SELECT * FROM UNNEST({arrays}) {}",
                self.head(),
                self.tail
            ),
            Some(filter) => format!(
                "{} SELECT * FROM UNNEST({arrays}) AS given({}) WHERE {filter} {}",
                self.head(),
                self.names.join(", "),
                self.tail
            ),
        }
    }

    /// One PostgreSQL statement running `inserts` (of distinct tables) as
    /// data-modifying CTEs, each with its own arrays, and replacing the rows
    /// `owned` by what an insert wrote (`OwnedRows`); it returns each row
    /// the inserts wrote as (the insert's index, its `RETURNING` value).
    /// The CTEs all see the database as it was before the statement, so an
    /// owned row is either upserted or deleted, never both.
    fn postgres_together(inserts: &[&InsertRows], owned: &[(usize, &OwnedRows)]) -> String {
        let mut first = 1;
        let mut parts = Vec::with_capacity(inserts.len() + 2 * owned.len());
        let mut results = Vec::with_capacity(inserts.len());
        for (i, insert) in inserts.iter().enumerate() {
            let filter = insert.filter.as_deref();
            parts.push(format!("p{i} AS ({})", insert.postgres_from(first, filter)));
            results.push(format!("SELECT {i} AS part, p{i}.* FROM p{i}"));
            first += insert.columns();
        }
        for (k, (owner, rows)) in owned.iter().enumerate() {
            let upsert = &rows.upsert;
            let column = &rows.owner_column;
            let written = format!("given.{column} IN (SELECT id FROM p{owner})");
            parts.push(format!(
                "o{k} AS ({})",
                upsert.postgres_from(first, Some(&written))
            ));
            // Arrays, not `IN` a subquery: the planner, which cannot tell
            // how few rows a CTE returns, scanned the whole table for that.
            parts.push(format!(
                "d{k} AS (DELETE FROM {} WHERE {column} = ANY(ARRAY(SELECT id FROM p{owner})) \
                 AND id <> ALL(ARRAY(SELECT id FROM o{k})))",
                upsert.table
            ));
            first += upsert.columns();
        }
        format!("WITH {} {}", parts.join(", "), results.join(" UNION ALL "))
    }

    /// The most rows one SQLite statement may carry.
    fn sqlite_rows_per_statement(&self) -> usize {
        (SQLITE_MAX_PARAMETERS / self.columns().max(1)).max(1)
    }

    /// The SQLite statement for `rows` rows: `VALUES (?, …), (…), …`.
    /// Anonymous parameters, bound in order: sqlx asks SQLite the name of
    /// each parameter it binds, a scan of all named ones, so numbered
    /// parameters cost time quadratic in their number (a fifth of the
    /// SQLite thread's time at 320 a statement).
    fn sqlite_values(&self, rows: usize) -> String {
        let row = format!("({})", vec!["?"; self.columns()].join(", "));
        let tuples = vec![row.as_str(); rows].join(", ");
        match &self.filter {
            None => format!("{} VALUES {tuples} {}", self.head(), self.tail),
            // A CTE names the columns (SQLite's VALUES has no aliases); the
            // WHERE also tells SQLite's parser that ON CONFLICT is the upsert.
            Some(filter) => format!(
                "WITH given({}) AS (VALUES {tuples}) {} SELECT * FROM given WHERE {filter} {}",
                self.names.join(", "),
                self.head(),
                self.tail
            ),
        }
    }

    #[cfg(test)]
    pub(crate) fn texts(&self, sqlite_rows: usize) -> (String, String) {
        (self.postgres.clone(), self.sqlite_values(sqlite_rows))
    }
}

/// Rows that belong to another table's rows and are replaced with them (a
/// subscription's items): when an owner's row is written, the rows it owns
/// become exactly the ones given for it; the others given are left out.
pub(crate) struct OwnedRows {
    /// `INSERT … ON CONFLICT (id) DO UPDATE … RETURNING id` of the rows.
    upsert: InsertRows,
    owner_column: String,
    delete_owned: ListQuery,
}

impl OwnedRows {
    pub(crate) fn new(upsert: InsertRows, owner_column: &str) -> Self {
        debug_assert!(
            upsert.filter.is_none(),
            "owned rows are filtered by their owner"
        );
        let delete_owned = ListQuery::new(&format!(
            "DELETE FROM {} WHERE {owner_column} {{in_ids}}",
            upsert.table
        ));
        Self {
            upsert,
            owner_column: owner_column.to_owned(),
            delete_owned,
        }
    }
}

/// A query of rows whose id is in a list: `{in_ids}` in the template stands
/// for "is in the list", the list being the statement's first parameter.
pub(crate) struct ListQuery {
    postgres: String,
    sqlite: String,
}

impl ListQuery {
    pub(crate) fn new(template: &str) -> Self {
        Self {
            // `= ANY` lets PostgreSQL use an index for each side of an OR.
            postgres: template.replace("{in_ids}", "= ANY($1::text[])"),
            sqlite: template.replace("{in_ids}", "IN (SELECT value FROM json_each($1))"),
        }
    }
}

impl Tx {
    /// Inserts the rows `columns` hold (the same count in each) with one
    /// statement (on SQLite, one per its limit on parameters); returns the
    /// first `RETURNING` column of each row written.
    pub(crate) async fn insert_rows(
        &mut self,
        insert: &'static InsertRows,
        mut columns: Vec<Values>,
    ) -> Result<Vec<String>, StoreError> {
        let rows = columns.first().map_or(0, Values::len);
        if rows == 0 {
            return Ok(Vec::new());
        }
        debug_assert!(columns.iter().all(|c| c.len() == rows));
        if let TxConn::Postgres(conn) = &mut self.conn {
            let written = sqlx::query_scalar_with(insert.postgres.as_str(), arrays(columns)?)
                .fetch_all(&mut **conn)
                .await?;
            self.count_statement();
            return Ok(written);
        }
        let mut written = Vec::with_capacity(rows);
        let per_statement = insert.sqlite_rows_per_statement();
        for start in (0..rows).step_by(per_statement) {
            let end = (start + per_statement).min(rows);
            let TxConn::Sqlite(conn) = &mut self.conn else {
                unreachable!("PostgreSQL returned above");
            };
            let sql = sqlx::AssertSqlSafe(insert.sqlite_values(end - start));
            let mut query = sqlx::query_scalar(sql);
            for row in start..end {
                for column in &mut columns {
                    query = match column {
                        // Bound once: moved, not copied (payloads are KiBs).
                        Values::Text(v) => query.bind(v[row].take()),
                        Values::Int(v) => query.bind(v[row]),
                        Values::Bool(v) => query.bind(v[row]),
                    };
                }
            }
            written.extend(query.fetch_all(&mut **conn).await?);
            self.count_statement();
        }
        Ok(written)
    }

    /// Runs independent inserts (of distinct tables, none reading what
    /// another writes) and replaces the rows `owned` by what one of them
    /// wrote (each `(insert's index, rows, their columns)`): one statement on
    /// PostgreSQL, where each statement is a round trip, and one after
    /// another on SQLite, where it is not. Returns, for each insert, what
    /// `insert_rows` would have.
    pub(crate) async fn insert_together(
        &mut self,
        inserts: Vec<(&'static InsertRows, Vec<Values>)>,
        owned: Vec<(usize, &'static OwnedRows, Vec<Values>)>,
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let together = inserts.len() + owned.len() >= 2;
        if !together || !matches!(self.conn, TxConn::Postgres(_)) {
            let mut written = Vec::with_capacity(inserts.len());
            for (insert, columns) in inserts {
                written.push(self.insert_rows(insert, columns).await?);
            }
            for (owner, rows, columns) in owned {
                let owners: Vec<&str> = written[owner].iter().map(String::as_str).collect();
                self.replace_owned(rows, &owners, columns).await?;
            }
            return Ok(written);
        }
        let statements: Vec<&InsertRows> = inserts.iter().map(|(insert, _)| *insert).collect();
        let owners: Vec<(usize, &OwnedRows)> =
            owned.iter().map(|(i, rows, _)| (*i, *rows)).collect();
        let sql = sqlx::AssertSqlSafe(InsertRows::postgres_together(&statements, &owners));
        let all_columns = inserts
            .into_iter()
            .flat_map(|(_, columns)| columns)
            .chain(owned.into_iter().flat_map(|(_, _, columns)| columns));
        let TxConn::Postgres(conn) = &mut self.conn else {
            unreachable!("SQLite returned above");
        };
        let rows: Vec<(i32, String)> = sqlx::query_as_with(sql, arrays(all_columns)?)
            .fetch_all(&mut **conn)
            .await?;
        self.count_statement();
        let mut written = vec![Vec::new(); statements.len()];
        for (part, id) in rows {
            let part = usize::try_from(part)
                .ok()
                .and_then(|part| written.get_mut(part))
                .ok_or_else(|| StoreError::Corrupt(format!("no insert {part} in the statement")))?;
            part.push(id);
        }
        Ok(written)
    }

    /// Makes the rows `owners` own exactly those of `columns` given for
    /// them: the owners' rows deleted, then those given upserted.
    pub(crate) async fn replace_owned(
        &mut self,
        rows: &'static OwnedRows,
        owners: &[&str],
        columns: Vec<Values>,
    ) -> Result<(), StoreError> {
        if owners.is_empty() {
            return Ok(());
        }
        let written: HashSet<&str> = owners.iter().copied().collect();
        let owner = rows
            .upsert
            .names
            .iter()
            .position(|c| *c == rows.owner_column);
        let keep: Vec<bool> = match owner.and_then(|i| columns.get(i)) {
            Some(Values::Text(given)) => given
                .iter()
                .map(|owner| owner.as_deref().is_some_and(|o| written.contains(o)))
                .collect(),
            _ => return Err(StoreError::Corrupt("owned rows without their owner".into())),
        };
        self.execute_listed(&rows.delete_owned, owners, None)
            .await?;
        let columns = columns.into_iter().map(|c| c.only(&keep)).collect();
        self.insert_rows(&rows.upsert, columns).await?;
        Ok(())
    }

    /// The rows `query` selects for `ids` (none when `ids` is empty).
    pub(crate) async fn fetch_listed<T>(
        &mut self,
        query: &'static ListQuery,
        ids: &[&str],
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow> + for<'r> sqlx::FromRow<'r, SqliteRow>,
        T: Send + Unpin,
    {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.count_statement();
        Ok(match &mut self.conn {
            TxConn::Postgres(conn) => {
                sqlx::query_as(query.postgres.as_str())
                    .bind(ids)
                    .fetch_all(&mut **conn)
                    .await?
            }
            TxConn::Sqlite(conn) => {
                let json = serde_json::to_string(ids)
                    .map_err(|e| StoreError::Corrupt(format!("ids to read: {e}")))?;
                sqlx::query_as(query.sqlite.as_str())
                    .bind(json)
                    .fetch_all(&mut **conn)
                    .await?
            }
        })
    }

    /// Runs `query` (a statement returning no rows) for `ids`, with `now`
    /// as `$2` when given; returns the rows it affected.
    pub(crate) async fn execute_listed(
        &mut self,
        query: &'static ListQuery,
        ids: &[&str],
        now: Option<i64>,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.count_statement();
        let done = match &mut self.conn {
            TxConn::Postgres(conn) => {
                let mut statement = sqlx::query(query.postgres.as_str()).bind(ids);
                if let Some(now) = now {
                    statement = statement.bind(now);
                }
                statement.execute(&mut **conn).await?.rows_affected()
            }
            TxConn::Sqlite(conn) => {
                let json = serde_json::to_string(ids)
                    .map_err(|e| StoreError::Corrupt(format!("ids to write: {e}")))?;
                let mut statement = sqlx::query(query.sqlite.as_str()).bind(json);
                if let Some(now) = now {
                    statement = statement.bind(now);
                }
                statement.execute(&mut **conn).await?.rows_affected()
            }
        };
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_text_for_any_number_of_rows_on_postgres_and_values_on_sqlite() {
        let insert = InsertRows::new(
            "t",
            &["id", "n"],
            "ON CONFLICT (id) DO NOTHING RETURNING id",
        );
        let (postgres, sqlite) = insert.texts(2);
        assert_eq!(
            postgres,
            "INSERT INTO t (id, n) SELECT * FROM UNNEST($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id"
        );
        assert_eq!(
            sqlite,
            "INSERT INTO t (id, n) VALUES (?, ?), (?, ?) ON CONFLICT (id) DO NOTHING RETURNING id"
        );
    }

    #[test]
    fn inserts_together_are_ctes_with_their_own_parameters() {
        let a = InsertRows::new(
            "a",
            &["id", "n"],
            "ON CONFLICT (id) DO NOTHING RETURNING id",
        );
        let b = InsertRows::new("b", &["id"], "RETURNING id");
        assert_eq!(
            InsertRows::postgres_together(&[&a, &b], &[]),
            "WITH p0 AS (INSERT INTO a (id, n) SELECT * FROM UNNEST($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id), \
             p1 AS (INSERT INTO b (id) SELECT * FROM UNNEST($3) RETURNING id) \
             SELECT 0 AS part, p0.* FROM p0 UNION ALL SELECT 1 AS part, p1.* FROM p1"
        );
    }

    #[test]
    fn owned_rows_follow_what_their_owner_wrote_in_the_same_statement() {
        let owner = InsertRows::new("s", &["id"], "ON CONFLICT (id) DO NOTHING RETURNING id");
        let items = OwnedRows::new(
            InsertRows::new(
                "items",
                &["id", "s_id"],
                "ON CONFLICT (id) DO UPDATE SET s_id = excluded.s_id RETURNING id",
            ),
            "s_id",
        );
        assert_eq!(
            InsertRows::postgres_together(&[&owner], &[(0, &items)]),
            "WITH p0 AS (INSERT INTO s (id) SELECT * FROM UNNEST($1) ON CONFLICT (id) DO NOTHING RETURNING id), \
             o0 AS (INSERT INTO items (id, s_id) SELECT * FROM UNNEST($2, $3) AS given(id, s_id) \
             WHERE given.s_id IN (SELECT id FROM p0) \
             ON CONFLICT (id) DO UPDATE SET s_id = excluded.s_id RETURNING id), \
             d0 AS (DELETE FROM items WHERE s_id = ANY(ARRAY(SELECT id FROM p0)) \
             AND id <> ALL(ARRAY(SELECT id FROM o0))) \
             SELECT 0 AS part, p0.* FROM p0"
        );
    }

    #[test]
    fn a_filtered_insert_names_the_given_rows_on_both_backends() {
        let insert = InsertRows::filtered(
            "t",
            &["id", "n"],
            "given.n > 0",
            "ON CONFLICT (id) DO NOTHING RETURNING id",
        );
        let (postgres, sqlite) = insert.texts(2);
        assert_eq!(
            postgres,
            "INSERT INTO t (id, n) SELECT * FROM UNNEST($1, $2) AS given(id, n) WHERE given.n > 0 \
             ON CONFLICT (id) DO NOTHING RETURNING id"
        );
        assert_eq!(
            sqlite,
            "WITH given(id, n) AS (VALUES (?, ?), (?, ?)) INSERT INTO t (id, n) \
             SELECT * FROM given WHERE given.n > 0 ON CONFLICT (id) DO NOTHING RETURNING id"
        );
    }

    #[test]
    fn a_sqlite_statement_stays_within_its_limit_on_parameters() {
        let columns: Vec<String> = (0..27).map(|i| format!("c{i}")).collect();
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        let insert = InsertRows::new("t", &names, "");
        assert_eq!(insert.sqlite_rows_per_statement(), 1_213);
        assert!(insert.sqlite_rows_per_statement() * 27 <= SQLITE_MAX_PARAMETERS);
    }
}
