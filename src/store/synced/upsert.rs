//! The one SQL shape every synced write takes: an insert of a batch's rows
//! that updates a stored row only when the incoming version is newer, named
//! column by column from a table's declaration (`tables`).

use crate::store::sets::InsertRows;

/// The source of a version read from Stripe's API rather than an event: the
/// guard never lets it replace, or be replaced by, a version of its second.
pub const FETCHED: &str = "sync";

/// How an upsert updates a stored row's column.
pub(crate) enum Update {
    /// Keep the stored value when the new one is NULL.
    KeepWhenNull(&'static str),
    /// A SQL expression of `excluded.*` and the stored row instead.
    With(&'static str, &'static str),
}

/// An `INSERT … ON CONFLICT (id) DO UPDATE … RETURNING id` of `columns` (the
/// first is `id`), each column taking the new value unless `updates` says
/// otherwise. With `guarded`, the row changes only when the incoming version
/// is greater than the stored one, in SQL, so the guard holds across
/// instances. The rows written are returned; one statement may not write a
/// row twice, so each id comes once (see `layers::layers`).
pub(crate) fn upsert_sql(
    table: &str,
    columns: &[&str],
    special: &[Update],
    guarded: bool,
) -> InsertRows {
    let updates: Vec<String> = columns
        .iter()
        .skip(1)
        .map(|c| {
            let rule = special.iter().find(|u| match u {
                Update::KeepWhenNull(col) | Update::With(col, _) => col == c,
            });
            match rule {
                Some(Update::KeepWhenNull(_)) => {
                    format!("{c} = COALESCE(excluded.{c}, {table}.{c})")
                }
                Some(Update::With(_, expression)) => format!("{c} = {expression}"),
                None => format!("{c} = excluded.{c}"),
            }
        })
        .collect();
    let mut tail = format!("ON CONFLICT (id) DO UPDATE SET {}", updates.join(", "));
    if guarded {
        // No string comparison: the source only tells a fetch (which never
        // replaces a version of its own second, nor is replaced by one).
        tail.push_str(&format!(
            " WHERE ({table}.event_created, {table}.event_rank) \
             < (excluded.event_created, excluded.event_rank) \
             AND NOT ({table}.event_created = excluded.event_created \
             AND '{FETCHED}' IN ({table}.event_source, excluded.event_source))"
        ));
    }
    tail.push_str(" RETURNING id");
    InsertRows::new(table, columns, &tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_upsert_names_each_column_once_and_compares_versions() {
        let sql = upsert_sql(
            "t",
            &["id", "a", "b", "event_created"],
            &[Update::KeepWhenNull("b")],
            true,
        );
        assert_eq!(
            sql.texts(1).0,
            "INSERT INTO t (id, a, b, event_created) SELECT * FROM UNNEST($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET a = excluded.a, b = COALESCE(excluded.b, t.b), \
             event_created = excluded.event_created \
             WHERE (t.event_created, t.event_rank) < (excluded.event_created, excluded.event_rank) \
             AND NOT (t.event_created = excluded.event_created \
             AND 'sync' IN (t.event_source, excluded.event_source)) RETURNING id"
        );
    }

    #[test]
    fn an_unguarded_upsert_has_no_version_comparison() {
        let sql = upsert_sql("t", &["id", "a"], &[], false);
        let sqlite = sql.texts(1).1;
        assert!(
            sqlite.ends_with("DO UPDATE SET a = excluded.a RETURNING id"),
            "{sqlite}"
        );
    }
}
