//! SQLite, the embedded default, on its native driver: a file in the data directory
//! in WAL mode, timestamps as INTEGER milliseconds, migrations of its own
//! (`migrations/sqlite`). The query code is shared with PostgreSQL (`sql/`) and
//! compiled once per backend against the items below.

use super::{Backend, StoreError, StoreResult};
use crate::model::Millis;
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

// Deliberately the same files as the other backend's: one source, compiled per driver.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub(crate) use sql::SqlStore;

pub(crate) type Db = sqlx::Sqlite;
pub(crate) const BACKEND: Backend = Backend::Sqlite;

/// A point in time as the column type holds it: milliseconds since the epoch.
pub(crate) type Ts = i64;

pub(crate) fn ts(ms: Millis) -> Ts {
    ms
}

pub(crate) fn ms(t: Ts) -> Millis {
    t
}

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("src/store/migrations/sqlite");

/// The database's clock in milliseconds (one clock for every process on the machine).
pub(crate) const NOW: &str = "(CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))";

pub(crate) fn plus_ms(at: &str, param: &str) -> String {
    format!("({at} + {param})")
}

pub(crate) fn ms_between(a: &str, b: &str) -> String {
    format!("({a} - {b})")
}

pub(crate) async fn connect(
    url: &str,
    connect_timeout_secs: u64,
    max_connections: u32,
) -> StoreResult<SqlStore> {
    let path = file_path(url)?;
    // Owner-only from the start: SQLite gives the -wal and -shm files the same mode.
    crate::fsutil::ensure_private_file(std::path::Path::new(&path))
        .map_err(|e| StoreError::Config(format!("cannot create the database file {path}: {e}")))?;
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| StoreError::Config(format!("database URL '{url}': {e}")))?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // WAL lets the console read while `flametree serve` or the CLI writes; with
        // synchronous=NORMAL it survives any process crash, and only a power cut can
        // take back the last commits. FULL would fsync every ledger write.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .disable_statement_logging();
    let pool_options = |max: u32| {
        SqlitePoolOptions::new()
            .max_connections(max)
            // A file has no connection to lose: sqlx's ping before every acquire was a
            // round trip to the connection's thread, and a second wake-up, per query.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(connect_timeout_secs.max(1)))
    };
    let pool = pool_options(max_connections.max(1))
        .connect_with(options.clone())
        .await
        .map_err(sql::unavailable)?;
    sql::migrate::run(&pool).await?;
    let writer_pool = pool_options(1).connect_lazy_with(options);
    SqlStore::ready(pool, writer_pool, format!("sqlite://{path}")).await
}

/// The database file named by the URL, its directory created private if missing.
fn file_path(url: &str) -> StoreResult<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Config(
            "an in-memory SQLite database would lose everything on exit: give a file path, \
             e.g. sqlite:///var/lib/flametree/flametree.db"
                .into(),
        ));
    }
    if let Some(dir) = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        crate::fsutil::create_private_dir(dir).map_err(|e| {
            StoreError::Config(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(path.to_string())
}
