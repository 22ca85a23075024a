//! The texts of set-based statements, built once per shape: inserts of many
//! rows, rows owned by other rows, and queries of a list of ids.

use std::ops::Range;

/// An `INSERT` of any number of rows, in both backends' words.
pub(crate) struct InsertRows {
    pub(super) postgres: String,
    pub(super) table: String,
    pub(super) tail: String,
    pub(super) names: Vec<String>,
    /// Which of the given rows to insert: a condition on `given.<column>`.
    pub(super) filter: Option<String>,
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

    pub(super) fn build(table: &str, columns: &[&str], filter: Option<&str>, tail: &str) -> Self {
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
    pub(super) fn head(&self) -> String {
        format!("INSERT INTO {} ({})", self.table, self.names.join(", "))
    }

    pub(super) fn columns(&self) -> usize {
        self.names.len()
    }

    /// The PostgreSQL statement, its arrays bound from `$first` on, of the
    /// rows `filter` admits (all without one).
    pub(super) fn postgres_from(&self, first: usize, filter: Option<&str>) -> String {
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
    pub(super) fn postgres_together(
        inserts: &[&InsertRows],
        owned: &[(usize, &OwnedRows)],
    ) -> String {
        let (statements, mut first) = Self::postgres_in_turn(inserts);
        let mut parts = Vec::with_capacity(inserts.len() + 2 * owned.len());
        let mut results = Vec::with_capacity(inserts.len());
        for (i, statement) in statements.iter().enumerate() {
            parts.push(format!("p{i} AS ({statement})"));
            results.push(format!("SELECT {i} AS part, p{i}.* FROM p{i}"));
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

    /// One PostgreSQL statement running `inserts` (of distinct tables, none
    /// returning rows) one after another in effect: all but the last as
    /// data-modifying CTEs, each with its own arrays.
    pub(super) fn postgres_all(inserts: &[&InsertRows]) -> String {
        let (mut statements, _) = Self::postgres_in_turn(inserts);
        let last = statements.pop().unwrap_or_default();
        if statements.is_empty() {
            return last;
        }
        let ctes: Vec<String> = statements
            .iter()
            .enumerate()
            .map(|(i, statement)| format!("p{i} AS ({statement})"))
            .collect();
        format!("WITH {} {last}", ctes.join(", "))
    }

    /// Each insert's PostgreSQL statement, their arrays numbered one after
    /// another from `$1`, and the first number left.
    fn postgres_in_turn(inserts: &[&InsertRows]) -> (Vec<String>, usize) {
        let mut first = 1;
        let statements = inserts
            .iter()
            .map(|insert| {
                let statement = insert.postgres_from(first, insert.filter.as_deref());
                first += insert.columns();
                statement
            })
            .collect();
        (statements, first)
    }

    /// The most rows one SQLite statement may carry.
    pub(super) fn sqlite_rows_per_statement(&self) -> usize {
        (SQLITE_MAX_PARAMETERS / self.columns().max(1)).max(1)
    }

    /// The rows of each SQLite statement that writes `rows` rows, in order:
    /// as many as its limit on parameters lets one statement carry.
    pub(super) fn sqlite_chunks(&self, rows: usize) -> impl Iterator<Item = Range<usize>> {
        let per_statement = self.sqlite_rows_per_statement();
        (0..rows)
            .step_by(per_statement)
            .map(move |start| start..(start + per_statement).min(rows))
    }

    /// The SQLite statement for `rows` rows: `VALUES (?, …), (…), …`.
    /// Anonymous parameters, bound in order: sqlx asks SQLite the name of
    /// each parameter it binds, a scan of all named ones, so numbered
    /// parameters cost time quadratic in their number (a fifth of the
    /// SQLite thread's time at 320 a statement).
    pub(super) fn sqlite_values(&self, rows: usize) -> String {
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
    pub(super) upsert: InsertRows,
    pub(super) owner_column: String,
    pub(super) delete_owned: ListQuery,
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
/// for "is in the list", and `{listed}` for the list as rows of one column,
/// `id`; the list is the statement's first parameter.
pub(crate) struct ListQuery {
    pub(super) postgres: String,
    pub(super) sqlite: String,
}

impl ListQuery {
    pub(crate) fn new(template: &str) -> Self {
        Self {
            // `= ANY` lets PostgreSQL use an index for each side of an OR.
            postgres: template
                .replace("{in_ids}", "= ANY($1::text[])")
                .replace("{listed}", "UNNEST($1::text[]) AS listed (id)"),
            sqlite: template
                .replace("{in_ids}", "IN (SELECT value FROM json_each($1))")
                .replace(
                    "{listed}",
                    "(SELECT value AS id FROM json_each($1)) AS listed",
                ),
        }
    }

    /// A query whose rows stay locked until the commit: `FOR UPDATE` on
    /// PostgreSQL; SQLite's one writer holds the whole database anyway.
    pub(crate) fn locking(template: &str) -> Self {
        let mut query = Self::new(template);
        query.postgres.push_str(" FOR UPDATE");
        query
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
    fn inserts_returning_nothing_run_as_one_statement_the_last_after_ctes() {
        let a = InsertRows::new("a", &["id", "n"], "");
        let b = InsertRows::new("b", &["id"], "ON CONFLICT (id) DO NOTHING");
        assert_eq!(
            InsertRows::postgres_all(&[&a, &b]),
            "WITH p0 AS (INSERT INTO a (id, n) SELECT * FROM UNNEST($1, $2) ) \
             INSERT INTO b (id) SELECT * FROM UNNEST($3) ON CONFLICT (id) DO NOTHING"
        );
        assert_eq!(InsertRows::postgres_all(&[&b]), b.postgres);
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

    #[test]
    fn a_list_is_a_condition_or_rows_of_ids() {
        let query = ListQuery::new("INSERT INTO t (id) SELECT id FROM {listed} WHERE id {in_ids}");
        assert_eq!(
            query.postgres,
            "INSERT INTO t (id) SELECT id FROM UNNEST($1::text[]) AS listed (id) \
             WHERE id = ANY($1::text[])"
        );
        assert_eq!(
            query.sqlite,
            "INSERT INTO t (id) SELECT id FROM (SELECT value AS id FROM json_each($1)) AS listed \
             WHERE id IN (SELECT value FROM json_each($1))"
        );
    }
}
