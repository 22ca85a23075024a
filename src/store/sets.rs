//! Set-based statements: many rows written, or many ids looked up, in one
//! statement whose text does not depend on how many. PostgreSQL gets one array
//! a column (`UNNEST`, `= ANY`); SQLite gets one JSON array (`json_each`), which
//! also keeps it clear of its limit on parameters. A batch of events thus costs
//! a statement a table, not a statement an event, and each text is prepared
//! once a connection.

use serde::ser::{Serialize, SerializeSeq, Serializer};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::{StoreError, Tx, TxConn};

/// One column's values, a row each.
#[derive(Debug)]
pub(crate) enum Values {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<bool>),
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
    sqlite: String,
}

impl InsertRows {
    /// `INSERT INTO table (columns) <the rows> tail`; `tail` is the conflict
    /// clause and `RETURNING` (whose first column the insert returns).
    pub(crate) fn new(table: &str, columns: &[&str], tail: &str) -> Self {
        let head = format!("INSERT INTO {table} ({})", columns.join(", "));
        let arrays: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let fields: Vec<String> = (0..columns.len())
            .map(|i| format!("value ->> {i}"))
            .collect();
        Self {
            postgres: format!("{head} SELECT * FROM UNNEST({}) {tail}", arrays.join(", ")),
            // `WHERE true` tells SQLite's parser the ON CONFLICT is the upsert's.
            sqlite: format!(
                "{head} SELECT {} FROM json_each($1) WHERE true {tail}",
                fields.join(", ")
            ),
        }
    }

    #[cfg(test)]
    pub(crate) fn texts(&self) -> (&str, &str) {
        (&self.postgres, &self.sqlite)
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
    /// statement; returns the first `RETURNING` column of each row written.
    pub(crate) async fn insert_rows(
        &mut self,
        insert: &'static InsertRows,
        columns: Vec<Values>,
    ) -> Result<Vec<String>, StoreError> {
        let rows = columns.first().map_or(0, Values::len);
        if rows == 0 {
            return Ok(Vec::new());
        }
        debug_assert!(columns.iter().all(|c| c.len() == rows));
        self.count_statement();
        Ok(match &mut self.conn {
            TxConn::Postgres(conn) => {
                let mut query = sqlx::query_scalar(insert.postgres.as_str());
                for column in columns {
                    query = match column {
                        Values::Text(v) => query.bind(v),
                        Values::Int(v) => query.bind(v),
                        Values::Bool(v) => query.bind(v),
                    };
                }
                query.fetch_all(&mut **conn).await?
            }
            TxConn::Sqlite(conn) => {
                let json = serde_json::to_string(&RowsAsJson {
                    columns: &columns,
                    rows,
                })
                .map_err(|e| StoreError::Corrupt(format!("rows to write: {e}")))?;
                sqlx::query_scalar(insert.sqlite.as_str())
                    .bind(json)
                    .fetch_all(&mut **conn)
                    .await?
            }
        })
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

/// `[[row 0's values], [row 1's values], …]`, for SQLite's `json_each`.
struct RowsAsJson<'a> {
    columns: &'a [Values],
    rows: usize,
}

struct RowAsJson<'a> {
    columns: &'a [Values],
    row: usize,
}

impl Serialize for RowsAsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.rows))?;
        for row in 0..self.rows {
            seq.serialize_element(&RowAsJson {
                columns: self.columns,
                row,
            })?;
        }
        seq.end()
    }
}

impl Serialize for RowAsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.columns.len()))?;
        for column in self.columns {
            match column {
                Values::Text(v) => seq.serialize_element(&v[self.row])?,
                Values::Int(v) => seq.serialize_element(&v[self.row])?,
                Values::Bool(v) => seq.serialize_element(&v[self.row])?,
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_text_for_any_number_of_rows_on_each_backend() {
        let insert = InsertRows::new(
            "t",
            &["id", "n"],
            "ON CONFLICT (id) DO NOTHING RETURNING id",
        );
        let (postgres, sqlite) = insert.texts();
        assert_eq!(
            postgres,
            "INSERT INTO t (id, n) SELECT * FROM UNNEST($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id"
        );
        assert_eq!(
            sqlite,
            "INSERT INTO t (id, n) SELECT value ->> 0, value ->> 1 FROM json_each($1) WHERE true \
             ON CONFLICT (id) DO NOTHING RETURNING id"
        );
    }

    #[test]
    fn rows_become_a_json_array_of_arrays() {
        let columns = [
            Values::Text(vec![Some("a".into()), None]),
            Values::Int(vec![Some(1), None]),
            Values::Bool(vec![true, false]),
        ];
        let json = serde_json::to_string(&RowsAsJson {
            columns: &columns,
            rows: 2,
        })
        .unwrap();
        assert_eq!(json, r#"[["a",1,true],[null,null,false]]"#);
    }
}
