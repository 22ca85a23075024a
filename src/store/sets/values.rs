//! One column's values, a row each, bound the way each backend takes them.

use std::ops::Range;

use sqlx::Arguments;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteArguments;

use crate::store::StoreError;

/// One column's values, a row each.
#[derive(Debug)]
pub(crate) enum Values {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<bool>),
}

/// The columns as PostgreSQL arrays, bound in order.
pub(super) fn arrays(columns: impl IntoIterator<Item = Values>) -> Result<PgArguments, StoreError> {
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

/// Rows `rows` of the columns, bound row by row after what `arguments`
/// holds, as SQLite's `VALUES (?, …), …` takes them. Each value is moved
/// out, not copied (payloads are KiBs).
pub(super) fn bind_rows(
    arguments: &mut SqliteArguments,
    columns: &mut [Values],
    rows: Range<usize>,
) -> Result<(), StoreError> {
    for row in rows {
        for column in columns.iter_mut() {
            match column {
                Values::Text(v) => arguments.add(v[row].take()),
                Values::Int(v) => arguments.add(v[row]),
                Values::Bool(v) => arguments.add(v[row]),
            }
            .map_err(sqlx::Error::Encode)?;
        }
    }
    Ok(())
}

impl Values {
    pub(super) fn len(&self) -> usize {
        match self {
            Values::Text(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    /// The rows `keep` says yes to, in order.
    pub(super) fn only(self, keep: &[bool]) -> Values {
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
