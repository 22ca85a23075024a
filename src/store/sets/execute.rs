//! Set-based statements run inside a `Tx`, on either backend.

use std::collections::HashSet;
use std::ops::Range;

use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteArguments, SqliteRow};

use super::values::{arrays, bind_rows};
use super::{InsertRows, ListQuery, OwnedRows, Values};
use crate::store::pool::Pool;
use crate::store::{Store, StoreError, Tx, TxConn};

impl Tx {
    /// Inserts the rows `columns` hold (the same count in each) with one
    /// statement (on SQLite, one per its limit on parameters); returns the
    /// first `RETURNING` column of each row written.
    pub(crate) async fn insert_rows(
        &mut self,
        insert: &'static InsertRows,
        mut columns: Vec<Values>,
    ) -> Result<Vec<String>, StoreError> {
        let Some(rows) = rows_in(&columns) else {
            return Ok(Vec::new());
        };
        if let TxConn::Postgres(conn) = &mut self.conn {
            let written = sqlx::query_scalar_with(insert.postgres.as_str(), arrays(columns)?)
                .fetch_all(&mut **conn)
                .await?;
            self.count_statement();
            return Ok(written);
        }
        let mut written = Vec::with_capacity(rows);
        for chunk in insert.sqlite_chunks(rows) {
            let TxConn::Sqlite(conn) = &mut self.conn else {
                unreachable!("PostgreSQL returned above");
            };
            let (sql, arguments) = sqlite_insert(insert, &mut columns, chunk)?;
            written.extend(
                sqlx::query_scalar_with(sql, arguments)
                    .fetch_all(&mut **conn)
                    .await?,
            );
            self.count_statement();
        }
        Ok(written)
    }

    /// Runs inserts of distinct tables, none of which returns rows, in one
    /// round trip: one statement on PostgreSQL, and on SQLite one query of
    /// several statements, which the connection's thread runs in one go.
    pub(crate) async fn insert_all(
        &mut self,
        inserts: Vec<(&'static InsertRows, Vec<Values>)>,
    ) -> Result<(), StoreError> {
        let inserts: Vec<_> = inserts
            .into_iter()
            .filter(|(_, columns)| columns.first().is_some_and(|c| c.len() > 0))
            .collect();
        if inserts.is_empty() {
            return Ok(());
        }
        self.count_statement();
        match &mut self.conn {
            TxConn::Postgres(conn) => {
                let statements: Vec<&InsertRows> = inserts.iter().map(|(i, _)| *i).collect();
                let sql = sqlx::AssertSqlSafe(InsertRows::postgres_all(&statements));
                let columns = inserts.into_iter().flat_map(|(_, columns)| columns);
                sqlx::query_with(sql, arrays(columns)?)
                    .execute(&mut **conn)
                    .await?;
            }
            TxConn::Sqlite(conn) => {
                let mut text = String::new();
                let mut arguments = SqliteArguments::default();
                for (insert, mut columns) in inserts {
                    for chunk in insert.sqlite_chunks(columns[0].len()) {
                        text.push_str(&insert.sqlite_values(chunk.len()));
                        text.push_str(";\n");
                        bind_rows(&mut arguments, &mut columns, chunk)?;
                    }
                }
                sqlx::query_with(sqlx::AssertSqlSafe(text), arguments)
                    .execute(&mut **conn)
                    .await?;
            }
        }
        Ok(())
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

impl Store {
    /// Inserts the rows `columns` hold with one statement of its own, which
    /// is atomic by itself: one round trip to the database where a `Tx`
    /// takes three (begin, insert, commit). Rows beyond what one SQLite
    /// statement may carry are written in a `Tx`, to stay atomic. Returns
    /// the first `RETURNING` column of each row written.
    pub(crate) async fn insert_rows_alone(
        &self,
        insert: &'static InsertRows,
        mut columns: Vec<Values>,
    ) -> Result<Vec<String>, StoreError> {
        let Some(rows) = rows_in(&columns) else {
            return Ok(Vec::new());
        };
        let written = match &self.pool {
            Pool::Postgres { writes, .. } => {
                sqlx::query_scalar_with(insert.postgres.as_str(), arrays(columns)?)
                    .fetch_all(writes)
                    .await?
            }
            Pool::Sqlite { writes, .. } if rows <= insert.sqlite_rows_per_statement() => {
                let (sql, arguments) = sqlite_insert(insert, &mut columns, 0..rows)?;
                sqlx::query_scalar_with(sql, arguments)
                    .fetch_all(writes)
                    .await?
            }
            Pool::Sqlite { .. } => {
                let mut tx = self.begin().await?;
                let written = tx.insert_rows(insert, columns).await?;
                tx.commit().await?;
                return Ok(written);
            }
        };
        self.count_write_statement();
        Ok(written)
    }
}

/// How many rows `columns` hold (the same count in each); none when empty.
fn rows_in(columns: &[Values]) -> Option<usize> {
    let rows = columns.first().map_or(0, Values::len);
    debug_assert!(columns.iter().all(|c| c.len() == rows));
    (rows > 0).then_some(rows)
}

/// The SQLite statement writing the `rows` of `columns`, and its arguments.
fn sqlite_insert(
    insert: &InsertRows,
    columns: &mut [Values],
    rows: Range<usize>,
) -> Result<(sqlx::AssertSqlSafe<String>, SqliteArguments), StoreError> {
    let sql = sqlx::AssertSqlSafe(insert.sqlite_values(rows.len()));
    let mut arguments = SqliteArguments::default();
    bind_rows(&mut arguments, columns, rows)?;
    Ok((sql, arguments))
}
