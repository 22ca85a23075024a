//! The test and benchmark database: a fresh one per run (a SQLite file, or a
//! new schema in a PostgreSQL database), and a handle for the SQL a test or
//! a benchmark runs itself. Shared by `tests/service` and `benches/`.
#![allow(dead_code)]

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

/// A fresh database: a SQLite file in `dir`, or, when `postgres_base` is a
/// PostgreSQL URL, a new schema in that database (`prefix` names it, and
/// schemas with that prefix more than an hour old are dropped).
pub async fn fresh_database_url(
    dir: &std::path::Path,
    postgres_base: Option<&str>,
    prefix: &str,
) -> Result<String, sqlx::Error> {
    match postgres_base {
        Some(base) if base.starts_with("postgres") => fresh_postgres_schema(base, prefix).await,
        _ => Ok(format!("sqlite://{}/test.db", dir.display())),
    }
}

async fn fresh_postgres_schema(base: &str, prefix: &str) -> Result<String, sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(base).await?;
    drop_stale_schemas(&mut conn, prefix).await;
    let schema = format!("{prefix}_{}_{}", now(), uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await?;
    let separator = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{separator}options[search_path]={schema}"))
}

/// Drops the schema `fresh_database_url` made for `url`, if it made one:
/// callable from `Drop`, inside a runtime or not, so a benchmark's tables
/// (a hundred megabytes over 1,000 organizations) do not slow the runs after
/// it for the hour before `drop_stale_schemas` would take them.
pub fn drop_schema_of(url: &str) {
    let Some((base, schema)) = url.rsplit_once("options[search_path]=") else {
        return;
    };
    let base = base.trim_end_matches(['?', '&']).to_owned();
    let schema = schema.to_owned();
    let dropping = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                drop_schema(&mut conn, &schema).await;
            }
        });
    });
    let _ = dropping.join();
}

/// Drops `schema` and its tables; a failure leaves it to the hourly sweep.
async fn drop_schema(conn: &mut sqlx::PgConnection, schema: &str) {
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(conn)
    .await;
}

/// Schemas from runs more than an hour old, so the database does not grow forever.
async fn drop_stale_schemas(conn: &mut sqlx::PgConnection, prefix: &str) {
    let cutoff = now() - 3600;
    let pattern = format!("{prefix}\\_%");
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
            .bind(pattern)
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|name: &String| {
                name.strip_prefix(prefix)
                    .and_then(|rest| rest.split('_').nth(1))
                    .and_then(|ts| ts.parse::<i64>().ok())
                    .is_some_and(|ts| ts < cutoff)
            })
            .collect();
    for schema in stale {
        drop_schema(conn, &schema).await;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A connection pool to the database under test, on its backend.
#[derive(Clone)]
pub enum TestDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds; the body is
/// expanded once per backend, so it type-checks against both.
#[macro_export]
macro_rules! with_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::TestDb::Sqlite($pool) => $body,
            $crate::db::TestDb::Postgres($pool) => $body,
        }
    };
}

impl TestDb {
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        Ok(if url.starts_with("postgres") {
            Self::Postgres(PgPool::connect(url).await?)
        } else {
            Self::Sqlite(SqlitePool::connect(url).await?)
        })
    }

    /// A query returning one integer.
    pub async fn scalar(&self, sql: &'static str) -> Result<i64, sqlx::Error> {
        with_db!(self, |pool| sqlx::query_scalar(sql).fetch_one(pool).await)
    }

    /// A query of the test's own making returning one integer.
    pub async fn scalar_of(&self, sql: &str) -> Result<i64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        with_db!(self, |pool| sqlx::query_scalar(sql).fetch_one(pool).await)
    }

    /// A statement.
    pub async fn execute(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        with_db!(self, |pool| Ok(sqlx::query(sql)
            .execute(pool)
            .await?
            .rows_affected()))
    }
}
