//! Set-based statements: many rows written, or many ids looked up, with one
//! statement. PostgreSQL gets one array a column (`UNNEST`), so the text
//! does not depend on how many and is prepared once a connection; inserts
//! into tables that do not depend on each other go together, as CTEs of one
//! statement (`insert_together`), since each statement is a round trip.
//! SQLite, where a statement costs no round trip and preparing one is cheap,
//! gets multi-row `VALUES` within its limit on parameters (faster here than
//! one JSON array of rows: 6,977 against 5,423 events/s in the ingest
//! benchmark), and a JSON array of ids (`json_each`) for a lookup. A batch of
//! events thus costs a statement a table, not a statement an event.

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
    head: String,
    tail: String,
    columns: usize,
}

/// SQLite's default SQLITE_MAX_VARIABLE_NUMBER (since 3.32).
const SQLITE_MAX_PARAMETERS: usize = 32_766;

impl InsertRows {
    /// `INSERT INTO table (columns) <the rows> tail`; `tail` is the conflict
    /// clause and `RETURNING` (of one column, which the insert returns).
    pub(crate) fn new(table: &str, columns: &[&str], tail: &str) -> Self {
        let head = format!("INSERT INTO {table} ({})", columns.join(", "));
        let mut insert = Self {
            postgres: String::new(),
            head,
            tail: tail.to_owned(),
            columns: columns.len(),
        };
        insert.postgres = insert.postgres_from(1);
        insert
    }

    /// The PostgreSQL statement, its arrays bound from `$first` on.
    fn postgres_from(&self, first: usize) -> String {
        let arrays: Vec<String> = (first..first + self.columns)
            .map(|i| format!("${i}"))
            .collect();
        format!(
            "{} SELECT * FROM UNNEST({}) {}",
            self.head,
            arrays.join(", "),
            self.tail
        )
    }

    /// One PostgreSQL statement running `inserts` (of distinct tables) as
    /// data-modifying CTEs, each with its own arrays; it returns each row
    /// written as (the insert's index, its `RETURNING` value).
    fn postgres_together(inserts: &[&InsertRows]) -> String {
        let mut first = 1;
        let mut parts = Vec::with_capacity(inserts.len());
        let mut results = Vec::with_capacity(inserts.len());
        for (i, insert) in inserts.iter().enumerate() {
            parts.push(format!("p{i} AS ({})", insert.postgres_from(first)));
            results.push(format!("SELECT {i} AS part, p{i}.* FROM p{i}"));
            first += insert.columns;
        }
        format!("WITH {} {}", parts.join(", "), results.join(" UNION ALL "))
    }

    /// The most rows one SQLite statement may carry.
    fn sqlite_rows_per_statement(&self) -> usize {
        (SQLITE_MAX_PARAMETERS / self.columns.max(1)).max(1)
    }

    /// The SQLite statement for `rows` rows: `VALUES (?, …), (…), …`.
    /// Anonymous parameters, bound in order: sqlx asks SQLite the name of
    /// each parameter it binds, a scan of all named ones, so numbered
    /// parameters cost time quadratic in their number (a fifth of the
    /// SQLite thread's time at 320 a statement).
    fn sqlite_values(&self, rows: usize) -> String {
        let row = format!("({})", vec!["?"; self.columns].join(", "));
        let tuples = vec![row.as_str(); rows].join(", ");
        format!("{} VALUES {tuples} {}", self.head, self.tail)
    }

    #[cfg(test)]
    pub(crate) fn texts(&self, sqlite_rows: usize) -> (String, String) {
        (self.postgres.clone(), self.sqlite_values(sqlite_rows))
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
    /// another writes) as one statement on PostgreSQL, where each statement
    /// is a round trip, and one after another on SQLite, where it is not.
    /// Returns, for each insert, what `insert_rows` would have.
    pub(crate) async fn insert_together(
        &mut self,
        inserts: Vec<(&'static InsertRows, Vec<Values>)>,
    ) -> Result<Vec<Vec<String>>, StoreError> {
        if inserts.len() < 2 || !matches!(self.conn, TxConn::Postgres(_)) {
            let mut written = Vec::with_capacity(inserts.len());
            for (insert, columns) in inserts {
                written.push(self.insert_rows(insert, columns).await?);
            }
            return Ok(written);
        }
        let statements: Vec<&InsertRows> = inserts.iter().map(|(insert, _)| *insert).collect();
        let sql = sqlx::AssertSqlSafe(InsertRows::postgres_together(&statements));
        let all_columns = inserts.into_iter().flat_map(|(_, columns)| columns);
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
            InsertRows::postgres_together(&[&a, &b]),
            "WITH p0 AS (INSERT INTO a (id, n) SELECT * FROM UNNEST($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id), \
             p1 AS (INSERT INTO b (id) SELECT * FROM UNNEST($3) RETURNING id) \
             SELECT 0 AS part, p0.* FROM p0 UNION ALL SELECT 1 AS part, p1.* FROM p1"
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
